//! Billing periods: half-open `[start, end)` in the account's time zone,
//! keeping their anchor day. Period n starts at `anchor + n × period`,
//! computed from the anchor every time, so a subscription anchored on the
//! 31st bills on Feb 28 (29), then Mar 31, never drifting to the 28th.

use chrono::{DateTime, Days, LocalResult, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Day,
    Week,
    Month,
    Year,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub unit: Unit,
    pub count: u32,
}

/// The start date of period `n` (0-based) of a schedule anchored on `anchor`.
pub fn nth_start(anchor: NaiveDate, period: Period, n: u32) -> Option<NaiveDate> {
    let steps = period.count.checked_mul(n)?;
    match period.unit {
        Unit::Day => anchor.checked_add_days(Days::new(u64::from(steps))),
        Unit::Week => anchor.checked_add_days(Days::new(u64::from(steps) * 7)),
        Unit::Month => anchor.checked_add_months(Months::new(steps)),
        Unit::Year => anchor.checked_add_months(Months::new(steps.checked_mul(12)?)),
    }
}

/// Midnight at the start of `date` in `tz`, as an instant. Where midnight
/// does not exist (a DST jump at 00:00), the first instant of the day.
pub fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            // Skipped hour: walk forward to the first instant that exists.
            (1..=180)
                .filter_map(|m| tz.from_local_datetime(&(midnight + chrono::Duration::minutes(m))).earliest())
                .next()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&midnight))
        }
    }
}

/// Today's date in `tz`.
pub fn local_date(now: DateTime<Utc>, tz: Tz) -> NaiveDate {
    now.with_timezone(&tz).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    const MONTHLY: Period = Period { unit: Unit::Month, count: 1 };

    #[test]
    fn month_ends_keep_their_anchor() {
        let anchor = date(2023, 1, 31);
        let starts: Vec<_> = (0..5).map(|n| nth_start(anchor, MONTHLY, n).expect("in range")).collect();
        assert_eq!(
            starts,
            vec![date(2023, 1, 31), date(2023, 2, 28), date(2023, 3, 31), date(2023, 4, 30), date(2023, 5, 31)]
        );
        assert_eq!(nth_start(date(2024, 1, 31), MONTHLY, 1), Some(date(2024, 2, 29)), "leap year");
    }

    #[test]
    fn leap_day_anchors_bill_on_feb_28_in_common_years() {
        let yearly = Period { unit: Unit::Year, count: 1 };
        let anchor = date(2024, 2, 29);
        assert_eq!(nth_start(anchor, yearly, 1), Some(date(2025, 2, 28)));
        assert_eq!(nth_start(anchor, yearly, 4), Some(date(2028, 2, 29)));
    }

    #[test]
    fn days_weeks_and_multi_month_periods() {
        let anchor = date(2024, 1, 1);
        assert_eq!(nth_start(anchor, Period { unit: Unit::Day, count: 10 }, 3), Some(date(2024, 1, 31)));
        assert_eq!(nth_start(anchor, Period { unit: Unit::Week, count: 2 }, 1), Some(date(2024, 1, 15)));
        assert_eq!(nth_start(anchor, Period { unit: Unit::Month, count: 3 }, 1), Some(date(2024, 4, 1)));
    }

    #[test]
    fn local_midnight_in_time_zones() {
        let ny: Tz = "America/New_York".parse().expect("zone");
        // EST is UTC−5 in January.
        assert_eq!(local_midnight(date(2024, 1, 1), ny).to_rfc3339(), "2024-01-01T05:00:00+00:00");
        // EDT is UTC−4 in July.
        assert_eq!(local_midnight(date(2024, 7, 1), ny).to_rfc3339(), "2024-07-01T04:00:00+00:00");
        // Chile springs forward at midnight: 2024-09-08 00:00 does not exist.
        let santiago: Tz = "America/Santiago".parse().expect("zone");
        assert_eq!(local_midnight(date(2024, 9, 8), santiago).to_rfc3339(), "2024-09-08T04:00:00+00:00");
    }
}
