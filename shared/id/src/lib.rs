//! Ids are `<prefix>_<random>`: the prefix says what the resource is (`prod_`,
//! `sub_`, `cart_` …), the random part is 16 base62 characters (about 95 bits),
//! so ids are URL-safe and cannot be guessed or enumerated.

use rand::Rng;

/// The kinds of resources Recur hands out ids for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Product,
    Offering,
    Rate,
    Coupon,
    Account,
    Contact,
    BillGroup,
    Subscription,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentMethod,
    Customer,
    SignupSession,
    Quote,
    Event,
    Refund,
    SetupIntent,
    WebhookEndpoint,
    CreditEntry,
}

impl Kind {
    pub const fn prefix(self) -> &'static str {
        match self {
            Kind::Product => "prod",
            Kind::Offering => "offr",
            Kind::Rate => "rate",
            Kind::Coupon => "coup",
            Kind::Account => "acct",
            Kind::Contact => "cont",
            Kind::BillGroup => "bg",
            Kind::Subscription => "sub",
            Kind::Invoice => "inv",
            Kind::InvoiceLine => "invl",
            Kind::Payment => "pay",
            Kind::PaymentMethod => "pm",
            Kind::Customer => "cus",
            Kind::SignupSession => "cart",
            Kind::Quote => "quot",
            Kind::Event => "evt",
            Kind::Refund => "rfnd",
            Kind::SetupIntent => "seti",
            Kind::WebhookEndpoint => "we",
            Kind::CreditEntry => "cred",
        }
    }
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 16;

/// A new random id of the given kind.
pub fn new_id(kind: Kind) -> String {
    let mut rng = rand::rng();
    let mut id = String::with_capacity(kind.prefix().len() + 1 + RANDOM_LEN);
    id.push_str(kind.prefix());
    id.push('_');
    for _ in 0..RANDOM_LEN {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

/// Whether `id` has the shape of an id of `kind`: its prefix, an underscore
/// and 1 to 64 URL-safe characters. Says nothing about whether it exists.
pub fn is_valid(kind: Kind, id: &str) -> bool {
    id.strip_prefix(kind.prefix()).and_then(|rest| rest.strip_prefix('_')).is_some_and(|body| {
        !body.is_empty()
            && body.len() <= 64
            && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// Whether a string looks like any Recur id (so it can't also be a handle).
pub fn looks_like_id(s: &str) -> bool {
    ALL_KINDS.iter().any(|&k| is_valid(k, s))
}

const ALL_KINDS: &[Kind] = &[
    Kind::Product,
    Kind::Offering,
    Kind::Rate,
    Kind::Coupon,
    Kind::Account,
    Kind::Contact,
    Kind::BillGroup,
    Kind::Subscription,
    Kind::Invoice,
    Kind::InvoiceLine,
    Kind::Payment,
    Kind::PaymentMethod,
    Kind::Customer,
    Kind::SignupSession,
    Kind::Quote,
    Kind::Event,
    Kind::Refund,
    Kind::SetupIntent,
    Kind::WebhookEndpoint,
    Kind::CreditEntry,
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_carry_their_prefix_and_are_unique() {
        let ids: HashSet<String> = (0..10_000).map(|_| new_id(Kind::SignupSession)).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert!(id.starts_with("cart_"), "{id}");
            assert_eq!(id.len(), 5 + 16);
            assert!(is_valid(Kind::SignupSession, id));
            assert!(!is_valid(Kind::Subscription, id));
        }
    }

    #[test]
    fn validates_shape() {
        assert!(is_valid(Kind::Offering, "offr_EoqyNVChm1kwT"));
        assert!(!is_valid(Kind::Offering, "offr_"));
        assert!(!is_valid(Kind::Offering, "offr"));
        assert!(!is_valid(Kind::Offering, "offrEoqy"));
        assert!(!is_valid(Kind::Offering, "offr_a b"));
        assert!(looks_like_id("rate_abc"));
        assert!(!looks_like_id("gold-plan"));
    }
}
