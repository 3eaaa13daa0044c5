//! Keyset pagination. A page token names the last row of the previous page
//! by its sort key and id, so pages stay correct while rows are inserted
//! (an offset would skip or repeat rows).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};

pub const DEFAULT_PAGE_SIZE: i64 = 20;
pub const MAX_PAGE_SIZE: i64 = 200;

/// The page size to use: 0 (unset) means the default; more than the maximum
/// is clamped. Negative sizes are the caller's error and are refused earlier.
pub fn page_size(requested: i32) -> i64 {
    match requested {
        n if n <= 0 => DEFAULT_PAGE_SIZE,
        n => i64::from(n).min(MAX_PAGE_SIZE),
    }
}

/// A page token this API did not issue (or that was altered).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPageToken;

impl std::fmt::Display for BadPageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("is not a page token this API issued")
    }
}

impl std::error::Error for BadPageToken {}

/// Position after the last row of a page ordered by creation time, then id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub time: DateTime<Utc>,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        B64.encode(format!("{}|{}", self.time.timestamp_micros(), self.id))
    }

    /// `None` for an empty token; `Err` for a token Recur did not issue.
    pub fn decode(token: &str) -> Result<Option<Cursor>, BadPageToken> {
        if token.is_empty() {
            return Ok(None);
        }
        let raw = B64.decode(token).map_err(|_| BadPageToken)?;
        let text = String::from_utf8(raw).map_err(|_| BadPageToken)?;
        let (micros, id) = text.split_once('|').ok_or(BadPageToken)?;
        let micros: i64 = micros.parse().map_err(|_| BadPageToken)?;
        let time = DateTime::from_timestamp_micros(micros).ok_or(BadPageToken)?;
        if id.is_empty() {
            return Err(BadPageToken);
        }
        Ok(Some(Cursor { time, id: id.to_string() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_clamped() {
        assert_eq!(page_size(0), 20);
        assert_eq!(page_size(-5), 20);
        assert_eq!(page_size(50), 50);
        assert_eq!(page_size(1000), 200);
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor {
            time: DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"),
            id: "prod_x".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(Some(c)));
        assert_eq!(Cursor::decode(""), Ok(None));
        assert!(Cursor::decode("not base64!").is_err());
        assert!(Cursor::decode(&B64.encode("abc|x")).is_err());
    }
}
