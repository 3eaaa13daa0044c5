//! Keyset pagination. A page token names the last row of the previous page
//! by its sort value and id, so pages stay correct while rows are inserted
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

/// A page token this API did not issue (or that was altered, or that belongs
/// to another ordering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPageToken;

impl std::fmt::Display for BadPageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("is not a page token this API issued for this ordering")
    }
}

impl std::error::Error for BadPageToken {}

/// The sort value of the last row of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SortValue {
    Time(DateTime<Utc>),
    Text(String),
}

/// Position after the last row of a page: its sort value, then its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub value: SortValue,
    pub id: String,
}

impl Cursor {
    pub fn time(time: DateTime<Utc>, id: impl Into<String>) -> Cursor {
        Cursor { value: SortValue::Time(time), id: id.into() }
    }

    pub fn text(text: impl Into<String>, id: impl Into<String>) -> Cursor {
        Cursor { value: SortValue::Text(text.into()), id: id.into() }
    }

    /// The time of a time-ordered cursor.
    pub fn as_time(&self) -> Option<DateTime<Utc>> {
        match &self.value {
            SortValue::Time(t) => Some(*t),
            SortValue::Text(_) => None,
        }
    }

    pub fn encode(&self) -> String {
        let raw = match &self.value {
            SortValue::Time(t) => format!("t|{}|{}", t.timestamp_micros(), self.id),
            SortValue::Text(s) => format!("s|{}|{}", B64.encode(s), self.id),
        };
        B64.encode(raw)
    }

    /// `None` for an empty token; `Err` for a token Recur did not issue.
    pub fn decode(token: &str) -> Result<Option<Cursor>, BadPageToken> {
        // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z.
        const MIN_MICROS: i64 = -62_135_596_800_000_000;
        const MAX_MICROS: i64 = 253_402_300_799_999_999;
        if token.is_empty() {
            return Ok(None);
        }
        let raw = B64.decode(token).map_err(|_| BadPageToken)?;
        let text = String::from_utf8(raw).map_err(|_| BadPageToken)?;
        let mut parts = text.splitn(3, '|');
        let (Some(kind), Some(value), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(BadPageToken);
        };
        if id.is_empty() {
            return Err(BadPageToken);
        }
        let value = match kind {
            "t" => {
                let micros: i64 = value.parse().map_err(|_| BadPageToken)?;
                // Recur never writes times outside years 1–9999, and
                // Postgres refuses some outside them: such a token is forged.
                if !(MIN_MICROS..=MAX_MICROS).contains(&micros) {
                    return Err(BadPageToken);
                }
                SortValue::Time(DateTime::from_timestamp_micros(micros).ok_or(BadPageToken)?)
            }
            "s" => SortValue::Text(
                String::from_utf8(B64.decode(value).map_err(|_| BadPageToken)?).map_err(|_| BadPageToken)?,
            ),
            _ => return Err(BadPageToken),
        };
        Ok(Some(Cursor { value, id: id.to_string() }))
    }

    /// Decodes a token that must continue a time-ordered listing.
    pub fn decode_time(token: &str) -> Result<Option<(DateTime<Utc>, String)>, BadPageToken> {
        match Cursor::decode(token)? {
            None => Ok(None),
            Some(Cursor { value: SortValue::Time(t), id }) => Ok(Some((t, id))),
            Some(_) => Err(BadPageToken),
        }
    }
}

/// The end of a keyset listing: `rows` were fetched with a limit of
/// `limit + 1`, so one more row than the page means there is a next page,
/// named by the cursor of the page's last row. Returns the page and the next
/// page's token (empty after the last page).
pub fn finish<T>(mut rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> Cursor) -> (Vec<T>, String) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() <= limit {
        return (rows, String::new());
    }
    rows.truncate(limit);
    let token = rows.last().map(|r| cursor(r).encode()).unwrap_or_default();
    (rows, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_fetched_one_long_has_a_next_page() {
        let at = |i: i64| DateTime::from_timestamp(1_700_000_000 + i, 0).expect("valid");
        let rows: Vec<(i64, String)> = (0..3).map(|i| (i, format!("r{i}"))).collect();
        let (page, next) = finish(rows.clone(), 2, |r| Cursor::time(at(r.0), r.1.clone()));
        assert_eq!(page.len(), 2);
        assert_eq!(Cursor::decode(&next), Ok(Some(Cursor::time(at(1), "r1"))));
        let (page, next) = finish(rows, 3, |r| Cursor::time(at(r.0), r.1.clone()));
        assert_eq!((page.len(), next.as_str()), (3, ""));
    }

    #[test]
    fn page_sizes_are_clamped() {
        assert_eq!(page_size(0), 20);
        assert_eq!(page_size(-5), 20);
        assert_eq!(page_size(50), 50);
        assert_eq!(page_size(1000), 200);
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let c = Cursor::time(DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("valid"), "prod_x");
        assert_eq!(Cursor::decode(&c.encode()), Ok(Some(c.clone())));
        let n = Cursor::text("Gold | plan", "prod_y");
        assert_eq!(Cursor::decode(&n.encode()), Ok(Some(n.clone())));
        assert_eq!(Cursor::decode(""), Ok(None));
        let far = Cursor::time(DateTime::from_timestamp_micros(-6_000_000_000_000_000_000).expect("chrono"), "p");
        assert_eq!(Cursor::decode(&far.encode()), Err(BadPageToken), "before year 1");
        let year_9999 = DateTime::from_timestamp_micros(253_402_300_799_999_999).expect("valid");
        assert!(Cursor::decode(&Cursor::time(year_9999, "p").encode()).is_ok());
        assert!(Cursor::decode("not base64!").is_err());
        assert!(Cursor::decode(&B64.encode("abc|x")).is_err());
        assert!(Cursor::decode_time(&n.encode()).is_err(), "a name cursor cannot continue a time listing");
        assert!(Cursor::decode_time(&c.encode()).is_ok());
    }
}
