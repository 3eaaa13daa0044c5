//! A customer's postal address as every service keeps it, and the checks
//! of e-mail addresses and country codes that sign-up and the subscription
//! service apply alike (a sign-up's customer becomes an account: both must
//! accept and refuse the same input).

use serde::{Deserialize, Serialize};

/// A postal address; every part may be empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 (`US`), or empty.
    pub country: String,
}

/// Whether `s` reads as an e-mail address: one `@`, something before it, a
/// dotted domain after it, no whitespace, at most 254 characters.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s.chars().any(char::is_whitespace)
}

/// Whether `c` is empty or shaped like an ISO 3166-1 alpha-2 code (`US`).
pub fn is_country_code(c: &str) -> bool {
    c.is_empty() || (c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
}

/// What a refused country code is told.
pub const COUNTRY_CODE_RULE: &str = "must be an ISO 3166-1 alpha-2 code such as \"US\"";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(is_email("jdoe@example.com"));
        for bad in ["", "jdoe", "@x.com", "a@b", "a b@c.com", "a@.com", "a@b.com.", "a@b@c.com"] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn countries() {
        assert!(is_country_code("US") && is_country_code(""));
        assert!(!is_country_code("us") && !is_country_code("USA"));
    }
}
