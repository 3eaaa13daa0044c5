//! Card numbers must never reach Recur. Any request text holding a run of
//! 13–19 digits (spaces and dashes allowed between them) that passes the
//! Luhn check is refused before it is logged or stored.

/// Whether `s` contains something that looks like a card number.
pub fn contains_card_number(s: &str) -> bool {
    let mut digits: Vec<u8> = Vec::with_capacity(19);
    let flush = |digits: &mut Vec<u8>| -> bool {
        let found = (13..=19).contains(&digits.len()) && luhn(digits)
            // A longer run may hide a card number inside it.
            || (digits.len() > 19 && (0..=digits.len() - 13).any(|i| {
                (13..=19).any(|n| i + n <= digits.len() && luhn(&digits[i..i + n]))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
