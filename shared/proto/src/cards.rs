//! Card numbers must never reach Recur. Any request text holding a run of
//! 13–19 digits (spaces and dashes allowed between them) that passes the
//! Luhn check is refused before it is logged or stored.
//!
//! [`find_in_message`] walks every field of a request — strings, map keys
//! and values, nested and repeated messages, integers — by the message's
//! descriptor ([`crate::fields`]), so a field added to a request later is
//! covered without anyone remembering to list it.

use prost::Message;
use prost_types::field_descriptor_proto::Type;

use crate::fields::{self, Probe};
use crate::limits::Kind;

/// A digest as text without a single digit (hex with the letters `a`–`p`),
/// for fingerprints that are stored or logged: hex digits of a hash now and
/// then form a Luhn-valid run that no card-number scan could tell from a
/// card.
pub fn digest_text(bytes: &[u8]) -> String {
    const LETTERS: &[u8; 16] = b"abcdefghijklmnop";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(LETTERS[usize::from(b >> 4)] as char);
        s.push(LETTERS[usize::from(b & 15)] as char);
    }
    s
}

/// Whether `s` contains something that looks like a card number.
pub fn contains_card_number(s: &str) -> bool {
    contains_card_number_of(s, 13)
}

/// Whether `s` contains a Luhn-valid run of `min`–19 digits. Phone numbers
/// are checked from 16 digits: E.164 numbers have at most 15, so a longer
/// run in a phone field is no phone number.
fn contains_card_number_of(s: &str, min: usize) -> bool {
    let mut digits: Vec<u8> = Vec::with_capacity(19);
    let flush = |digits: &mut Vec<u8>| -> bool {
        let found = (min..=19).contains(&digits.len()) && luhn(digits)
            // A longer run may hide a card number inside it.
            || (digits.len() > 19 && (0..=digits.len() - min).any(|i| {
                (min..=19).any(|n| i + n <= digits.len() && luhn(&digits[i..i + n]))
            }));
        digits.clear();
        found
    };
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_digit() {
            digits.push(b - b'0');
        } else if (b == b' ' || b == b'-') && !digits.is_empty() && bytes.get(i + 1).is_some_and(|n| n.is_ascii_digit())
        {
            // Separators inside a number ("4242 4242 …") are skipped.
        } else if flush(&mut digits) {
            return true;
        }
    }
    flush(&mut digits)
}

fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Card numbers in text fields (and unknown fields read as text), map keys
/// and values. Decimal amounts and quantities (`"1" + 30 zeros` is a valid
/// amount, refused by its ceiling, not as a card) and numbers are no place
/// a card number is typed; phone numbers are checked past 15 digits.
const CARDS: Probe = Probe {
    text: |bytes, field| {
        let min = match field {
            Some(f) if !matches!(f.r#type(), Type::String | Type::Bytes) => return false,
            Some(f) => match crate::limits::kind_of("", f.name()) {
                Kind::Decimal => return false,
                Kind::Phone => 16,
                _ => 13,
            },
            None => 13,
        };
        contains_card_number_of(&String::from_utf8_lossy(bytes), min)
    },
    number: |_| false,
};

/// The path of the first field of `message` (of the proto type `full_name`,
/// e.g. `recur.payment.v1.ChargeRequest`) that holds a card number, such as
/// `payment_token`, `metadata[note]` or `items[2].name`.
pub fn find_in_message<M: Message>(full_name: &str, message: &M) -> Option<String> {
    fields::find_in(full_name, message, &CARDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_as_text_hold_no_digits() {
        assert_eq!(digest_text(&[0x00, 0x4f, 0xff]), "aaeppp");
        // Hex of these bytes is 16 digits that pass the Luhn check.
        let bytes = [0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42];
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert!(contains_card_number(&hex), "hex can look like a card number");
        assert!(!contains_card_number(&digest_text(&bytes)));
        assert!(!digest_text(&[0x12; 32]).bytes().any(|b| b.is_ascii_digit()));
    }

    #[test]
    fn finds_card_numbers_in_any_spelling() {
        for s in [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "card: 5555555555554444 thanks",
            "378282246310005",
            "x4000056655665556x",
        ] {
            assert!(contains_card_number(s), "{s}");
        }
    }

    #[test]
    fn leaves_other_numbers_alone() {
        for s in [
            "tok_visa",
            "4242424242424241",
            "1234",
            "inv_123456789012",
            "pm_1EzglsEeeXxFpLJtjuEvd123",
            "2024-01-01",
            "+1 415 555 0100",
        ] {
            assert!(!contains_card_number(s), "{s}");
        }
    }

    #[test]
    fn finds_card_numbers_in_any_field_of_a_request() {
        use crate::payment::v1 as pb;
        let name = "recur.payment.v1.ChargeRequest";
        let clean = pb::ChargeRequest {
            customer_id: "cus_1".into(),
            amount: Some(crate::common::v1::Money { amount: "10.00".into(), currency_code: "USD".into() }),
            metadata: [("order".to_string(), "1234".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(find_in_message(name, &clean), None);
        let mut r = clean.clone();
        r.description = "card 4242 4242 4242 4242".into();
        assert_eq!(find_in_message(name, &r).as_deref(), Some("description"));
        let mut r = clean.clone();
        r.metadata.insert("note".into(), "5555555555554444".into());
        assert_eq!(find_in_message(name, &r).as_deref(), Some("metadata[note]"));
        let mut r = clean.clone();
        r.metadata.insert("4000056655665556".into(), "x".into());
        assert_eq!(find_in_message(name, &r).as_deref(), Some("metadata (a key)"));
    }

    #[test]
    fn amounts_quantities_numbers_and_phone_numbers_are_no_cards() {
        use crate::payment::v1 as pb;
        let name = "recur.payment.v1.ChargeRequest";
        // A Luhn-valid 16-digit amount, and "1" + 30 zeros (which hides
        // Luhn-valid runs): amounts, refused by their ceiling if at all.
        for amount in ["4242424242424242", &format!("1{}", "0".repeat(30))] {
            let r = pb::ChargeRequest {
                customer_id: "cus_1".into(),
                amount: Some(crate::common::v1::Money { amount: amount.to_string(), currency_code: "USD".into() }),
                ..Default::default()
            };
            assert_eq!(find_in_message(name, &r), None, "{amount}");
        }
        let events = pb::ListPaymentEventsRequest { after_sequence: 4242424242424242, page_size: 1 };
        assert_eq!(find_in_message("recur.payment.v1.ListPaymentEventsRequest", &events), None);

        use crate::signup::v1 as su;
        let signup = |phone: &str, _: &str| su::CreateSignupRequest {
            customer: Some(su::CustomerInput { phone: phone.into(), ..Default::default() }),
            ..Default::default()
        };
        // 13 and 15 digits passing the Luhn check: a phone number can be that.
        assert_eq!(find_in_message("recur.signup.v1.CreateSignupRequest", &signup("+4222222222222", "")), None);
        assert_eq!(find_in_message("recur.signup.v1.CreateSignupRequest", &signup("378282246310005", "")), None);
        assert_eq!(
            find_in_message("recur.signup.v1.CreateSignupRequest", &signup("4242 4242 4242 4242", "")).as_deref(),
            Some("customer.phone"),
            "16 digits are no phone number"
        );
    }

    #[test]
    fn names_the_repeated_item_that_holds_one() {
        use crate::pricing::v1 as pr;
        use crate::signup::v1 as su;
        let mut req = su::CreateSignupRequest::default();
        let mut quote = su::QuoteInput::default();
        quote.offerings.push(pr::CartOffering { offering_id: "offr_1".into(), ..Default::default() });
        quote.offerings.push(pr::CartOffering { offering_id: "378282246310005".into(), ..Default::default() });
        req.quote = Some(quote);
        assert_eq!(
            find_in_message("recur.signup.v1.CreateSignupRequest", &req).as_deref(),
            Some("quote.offerings[1].offering_id")
        );
    }
}
