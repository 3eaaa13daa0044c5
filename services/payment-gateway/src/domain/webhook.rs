//! Stripe's webhook signatures: the `Stripe-Signature` header carries
//! `t=<unix seconds>` and one or more `v1=<hex HMAC-SHA256>` of
//! `"<t>.<raw body>"` under the endpoint's signing secret. A delivery is
//! accepted when one `v1` matches (compared in constant time) and `t` is
//! within the tolerance of now, so an old delivery cannot be replayed.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::provider::WebhookError;

/// Stripe's default tolerance.
pub const TOLERANCE_SECS: i64 = 300;

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn mac(secret: &str) -> Hmac<Sha256> {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Checks `header` against `payload` signed with `secret` at most
/// `tolerance_secs` from `now`.
pub fn verify(
    payload: &[u8],
    header: &str,
    secret: &str,
    now: DateTime<Utc>,
    tolerance_secs: i64,
) -> Result<(), WebhookError> {
    let mut timestamp: Option<i64> = None;
    let mut signatures: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else { continue };
        match k {
            "t" => {
                timestamp = Some(
                    v.parse()
                        .map_err(|_| WebhookError::MalformedSignature("the timestamp (t=) is not a number".into()))?,
                )
            }
            "v1" => signatures.extend(hex_decode(v)),
            _ => {}
        }
    }
    let t = timestamp.ok_or_else(|| WebhookError::MalformedSignature("no timestamp (t=)".into()))?;
    if signatures.is_empty() {
        return Err(WebhookError::MalformedSignature("no v1 signature".into()));
    }
    let mut signed = t.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(payload);
    // Every candidate is checked (constant time each), whatever matched.
    let matched = signatures.iter().fold(false, |found, sig| {
        let mut m = mac(secret);
        m.update(&signed);
        m.verify_slice(sig).is_ok() | found
    });
    if !matched {
        return Err(WebhookError::SignatureMismatch);
    }
    let age = now.timestamp() - t;
    if age.abs() > tolerance_secs {
        return Err(WebhookError::OutsideTolerance { age_secs: age });
    }
    Ok(())
}

/// A `Stripe-Signature` header for `payload` at `t` (what Stripe sends; for
/// tests and for tools that replay deliveries).
pub fn sign(payload: &[u8], secret: &str, t: i64) -> String {
    let mut m = mac(secret);
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(payload);
    let hex: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).expect("valid")
    }

    #[test]
    fn accepts_its_own_signature_within_tolerance() {
        let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let header = sign(body, SECRET, 1_800_000_000);
        assert_eq!(verify(body, &header, SECRET, at(1_800_000_000), TOLERANCE_SECS), Ok(()));
        assert_eq!(verify(body, &header, SECRET, at(1_800_000_300), TOLERANCE_SECS), Ok(()), "300 s is allowed");
        assert_eq!(
            verify(body, &header, SECRET, at(1_800_000_301), TOLERANCE_SECS),
            Err(WebhookError::OutsideTolerance { age_secs: 301 })
        );
        assert_eq!(
            verify(body, &header, SECRET, at(1_799_999_000), TOLERANCE_SECS),
            Err(WebhookError::OutsideTolerance { age_secs: -1000 }),
            "from the future"
        );
    }

    #[test]
    fn refuses_tampering_and_other_secrets() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(body, SECRET, 1_800_000_000);
        let now = at(1_800_000_010);
        assert_eq!(verify(br#"{"id":"evt_2"}"#, &header, SECRET, now, 300), Err(WebhookError::SignatureMismatch));
        assert_eq!(verify(body, &header, "whsec_other", now, 300), Err(WebhookError::SignatureMismatch));
        // The timestamp is signed too: moving it breaks the signature.
        let moved = header.replace("t=1800000000", "t=1800000005");
        assert_eq!(verify(body, &moved, SECRET, now, 300), Err(WebhookError::SignatureMismatch));
    }

    #[test]
    fn any_v1_may_match_during_secret_rotation() {
        let body = b"{}";
        let good = sign(body, SECRET, 1_800_000_000);
        let v1 = good.split_once(",v1=").map(|(_, s)| s.to_string()).expect("v1");
        let header = format!("t=1800000000,v1={},v1={v1},v0=ignored", "ab".repeat(32));
        assert_eq!(verify(body, &header, SECRET, at(1_800_000_000), 300), Ok(()));
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let now = at(1_800_000_000);
        assert!(matches!(verify(b"{}", "", SECRET, now, 300), Err(WebhookError::MalformedSignature(_))));
        assert!(matches!(verify(b"{}", "v1=abcd", SECRET, now, 300), Err(WebhookError::MalformedSignature(_))));
        assert!(matches!(verify(b"{}", "t=1800000000", SECRET, now, 300), Err(WebhookError::MalformedSignature(_))));
        assert!(matches!(verify(b"{}", "t=soon,v1=ab", SECRET, now, 300), Err(WebhookError::MalformedSignature(_))));
        assert!(verify(b"{}", "t=1800000000,v1=zz", SECRET, now, 300).is_err(), "not hex");
    }
}
