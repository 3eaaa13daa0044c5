//! Billing periods: half-open `[start, end)` in the account's time zone,
//! keeping their anchor. A contract's [`Anchor`] is fixed for its whole
//! life: the day of the month its periods start on (and, for yearly
//! periods, the month). A month without that day starts the period on its
//! last day, and the next month is back on the anchor: anchored on the 31st,
//! Jan 31 → Feb 28 (29) → Mar 31 → Apr 30 → May 31; anchored on Feb 29,
//! yearly periods start on Feb 28 in common years and Feb 29 in leap years.
//! The day is always taken from the anchor, never from the previous start,
//! so a short month never drags the schedule to a shorter day.
//!
//! Day and week periods are fixed lengths counted from their start and
//! ignore the anchor (their anchor is the start's day, month 0, for the
//! record only).

use chrono::{DateTime, Datelike, Days, LocalResult, NaiveDate, TimeZone, Utc};
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

impl Period {
    /// Month and year periods follow the calendar (and an anchor day); day
    /// and week periods do not.
    pub fn is_calendar(self) -> bool {
        matches!(self.unit, Unit::Month | Unit::Year)
    }
}

/// The day a contract's periods start on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// Day of the month, 1-31; a month without it starts on its last day.
    pub day: u32,
    /// For yearly periods, the month (1-12); 0: the month of the period's
    /// start (always so for other periods). A day the month never has (Feb
    /// 30, Apr 31) is that month's last day.
    pub month: u32,
}

impl Anchor {
    /// An anchor from its parts, if they are in range (day 1-31, month 0-12).
    pub fn new(day: u32, month: u32) -> Option<Anchor> {
        ((1..=31).contains(&day) && month <= 12).then_some(Anchor { day, month })
    }

    /// The anchor of a schedule whose first period starts on `start`: its
    /// day, and for yearly periods its month too.
    pub fn of(start: NaiveDate, period: Period) -> Anchor {
        Anchor { day: start.day(), month: if period.unit == Unit::Year { start.month() } else { 0 } }
    }
}

/// The number of days in `month` (1-12) of `year`.
pub fn days_in_month(year: i32, month: u32) -> Option<u32> {
    let first = NaiveDate::from_ymd_opt(year, month, 1)?;
    let next =
        if month == 12 { NaiveDate::from_ymd_opt(year.checked_add(1)?, 1, 1)? } else { first.with_month(month + 1)? };
    u32::try_from((next - first).num_days()).ok()
}

/// `day` of `year`-`month`, or the month's last day if it is shorter.
fn clamped(year: i32, month: u32, day: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, day.min(days_in_month(year, month)?))
}

/// The start of the period `n` periods after the one starting on `start`,
/// in a schedule anchored on `anchor`, computed in one step (so chaining
/// [`next_start`] gives the same dates). Month periods start on the anchor
/// day of the month `n × count` months on; year periods on the anchor day of
/// the anchor's month (else `start`'s) `n × count` years on. A `start` off
/// its anchor (periods should not be) is thereby realigned to it. `None`
/// when the date leaves the calendar.
pub fn nth_after(start: NaiveDate, anchor: Anchor, period: Period, n: u32) -> Option<NaiveDate> {
    let steps = period.count.checked_mul(n)?;
    match period.unit {
        Unit::Day => start.checked_add_days(Days::new(u64::from(steps))),
        Unit::Week => start.checked_add_days(Days::new(u64::from(steps) * 7)),
        Unit::Month => {
            let index = i64::from(start.year()) * 12 + i64::from(start.month0()) + i64::from(steps);
            let year = i32::try_from(index.div_euclid(12)).ok()?;
            let month = u32::try_from(index.rem_euclid(12)).ok()? + 1;
            clamped(year, month, anchor.day)
        }
        Unit::Year => {
            let year = start.year().checked_add(i32::try_from(steps).ok()?)?;
            let month = if anchor.month == 0 { start.month() } else { anchor.month };
            clamped(year, month, anchor.day)
        }
    }
}

/// The start of the period following the one starting on `start` (that
/// period's end).
pub fn next_start(start: NaiveDate, anchor: Anchor, period: Period) -> Option<NaiveDate> {
    nth_after(start, anchor, period, 1)
}

/// The start of the period that ends on `end` (the period before the one
/// starting there), in a schedule anchored on `anchor`: the inverse of
/// [`next_start`] for a date on the anchor. `None` when the date leaves the
/// calendar.
pub fn previous_start(end: NaiveDate, anchor: Anchor, period: Period) -> Option<NaiveDate> {
    match period.unit {
        Unit::Day => end.checked_sub_days(Days::new(u64::from(period.count))),
        Unit::Week => end.checked_sub_days(Days::new(u64::from(period.count) * 7)),
        Unit::Month => {
            let index = i64::from(end.year()) * 12 + i64::from(end.month0()) - i64::from(period.count);
            let year = i32::try_from(index.div_euclid(12)).ok()?;
            let month = u32::try_from(index.rem_euclid(12)).ok()? + 1;
            clamped(year, month, anchor.day)
        }
        Unit::Year => {
            let year = end.year().checked_sub(i32::try_from(period.count).ok()?)?;
            let month = if anchor.month == 0 { end.month() } else { anchor.month };
            clamped(year, month, anchor.day)
        }
    }
}

/// The start date of period `n` (0-based) of a schedule whose first period
/// starts on `first`, anchored there.
pub fn nth_start(first: NaiveDate, period: Period, n: u32) -> Option<NaiveDate> {
    nth_after(first, Anchor::of(first, period), period, n)
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

    #[test]
    fn the_period_before_keeps_the_anchor() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let month = Period { unit: Unit::Month, count: 1 };
        let on_31 = Anchor { day: 31, month: 0 };
        // Anchored on the 31st: Jan 31 → Feb 29 → Mar 31, and back.
        assert_eq!(previous_start(date(2024, 3, 31), on_31, month), Some(date(2024, 2, 29)));
        assert_eq!(previous_start(date(2024, 2, 29), on_31, month), Some(date(2024, 1, 31)));
        assert_eq!(previous_start(date(2024, 1, 31), on_31, month), Some(date(2023, 12, 31)));
        let year = Period { unit: Unit::Year, count: 1 };
        let feb_29 = Anchor { day: 29, month: 2 };
        assert_eq!(previous_start(date(2025, 2, 28), feb_29, year), Some(date(2024, 2, 29)));
        let week = Period { unit: Unit::Week, count: 2 };
        assert_eq!(
            previous_start(date(2024, 3, 10), Anchor::of(date(2024, 3, 10), week), week),
            Some(date(2024, 2, 25))
        );
        for (start, anchor, period) in [(date(2024, 1, 31), on_31, month), (date(2024, 2, 29), feb_29, year)] {
            let next = next_start(start, anchor, period).unwrap();
            assert_eq!(previous_start(next, anchor, period), Some(start));
        }
    }
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

    // Every period start of 24 renewals (25 boundaries), written out (by
    // Python's `calendar`, not by this code).
    const JAN_31: &str = "2023-01-31 2023-02-28 2023-03-31 2023-04-30 2023-05-31 \
         2023-06-30 2023-07-31 2023-08-31 2023-09-30 2023-10-31 \
         2023-11-30 2023-12-31 2024-01-31 2024-02-29 2024-03-31 \
         2024-04-30 2024-05-31 2024-06-30 2024-07-31 2024-08-31 \
         2024-09-30 2024-10-31 2024-11-30 2024-12-31 2025-01-31";
    const FEB_29_MONTHLY: &str = "2024-02-29 2024-03-29 2024-04-29 2024-05-29 2024-06-29 \
         2024-07-29 2024-08-29 2024-09-29 2024-10-29 2024-11-29 \
         2024-12-29 2025-01-29 2025-02-28 2025-03-29 2025-04-29 \
         2025-05-29 2025-06-29 2025-07-29 2025-08-29 2025-09-29 \
         2025-10-29 2025-11-29 2025-12-29 2026-01-29 2026-02-28";
    const FEB_29_YEARLY: &str = "2024-02-29 2025-02-28 2026-02-28 2027-02-28 2028-02-29 \
         2029-02-28 2030-02-28 2031-02-28 2032-02-29 2033-02-28 \
         2034-02-28 2035-02-28 2036-02-29 2037-02-28 2038-02-28 \
         2039-02-28 2040-02-29 2041-02-28 2042-02-28 2043-02-28 \
         2044-02-29 2045-02-28 2046-02-28 2047-02-28 2048-02-29";
    const MAR_30: &str = "2023-03-30 2023-04-30 2023-05-30 2023-06-30 2023-07-30 \
         2023-08-30 2023-09-30 2023-10-30 2023-11-30 2023-12-30 \
         2024-01-30 2024-02-29 2024-03-30 2024-04-30 2024-05-30 \
         2024-06-30 2024-07-30 2024-08-30 2024-09-30 2024-10-30 \
         2024-11-30 2024-12-30 2025-01-30 2025-02-28 2025-03-30";
    const MAR_31: &str = "2023-03-31 2023-04-30 2023-05-31 2023-06-30 2023-07-31 \
         2023-08-31 2023-09-30 2023-10-31 2023-11-30 2023-12-31 \
         2024-01-31 2024-02-29 2024-03-31 2024-04-30 2024-05-31 \
         2024-06-30 2024-07-31 2024-08-31 2024-09-30 2024-10-31 \
         2024-11-30 2024-12-31 2025-01-31 2025-02-28 2025-03-31";

    const YEARLY: Period = Period { unit: Unit::Year, count: 1 };

    fn parse(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    /// 24 renewals, each period started from the previous one's start, as
    /// a contract renews; and each directly from the first.
    fn renews_as_written(written: &str, anchor: Anchor, period: Period) {
        let want: Vec<NaiveDate> = written.split_whitespace().map(parse).collect();
        assert_eq!(want.len(), 25);
        let first = want[0];
        assert_eq!(Anchor::of(first, period), anchor, "a schedule's anchor is its first start");
        let mut chained = vec![first];
        for _ in 0..24 {
            let last = *chained.last().expect("non-empty");
            chained.push(next_start(last, anchor, period).expect("in range"));
        }
        assert_eq!(chained, want, "renewed one period at a time");
        let direct: Vec<NaiveDate> = (0..25).map(|n| nth_after(first, anchor, period, n).expect("in range")).collect();
        assert_eq!(direct, want, "counted from the first start");
        let from_first: Vec<NaiveDate> = (0..25).map(|n| nth_start(first, period, n).expect("in range")).collect();
        assert_eq!(from_first, want, "nth_start");
    }

    #[test]
    fn renewals_from_jan_31() {
        renews_as_written(JAN_31, Anchor { day: 31, month: 0 }, MONTHLY);
    }

    #[test]
    fn renewals_from_feb_29_monthly() {
        renews_as_written(FEB_29_MONTHLY, Anchor { day: 29, month: 0 }, MONTHLY);
    }

    #[test]
    fn renewals_from_feb_29_yearly() {
        renews_as_written(FEB_29_YEARLY, Anchor { day: 29, month: 2 }, YEARLY);
    }

    #[test]
    fn renewals_from_mar_30() {
        renews_as_written(MAR_30, Anchor { day: 30, month: 0 }, MONTHLY);
    }

    #[test]
    fn renewals_from_mar_31() {
        renews_as_written(MAR_31, Anchor { day: 31, month: 0 }, MONTHLY);
    }

    #[test]
    fn the_anchor_not_the_clamped_start_gives_the_day() {
        // Issue 13: renewing from Feb 28 knowing only the start drifts to the
        // 28th; with the contract's anchor it is back on the 31st.
        let feb_28 = date(2023, 2, 28);
        assert_eq!(next_start(feb_28, Anchor::of(feb_28, MONTHLY), MONTHLY), Some(date(2023, 3, 28)));
        assert_eq!(next_start(feb_28, Anchor { day: 31, month: 0 }, MONTHLY), Some(date(2023, 3, 31)));
        // Yearly from a common year's Feb 28, anchored on Feb 29.
        let leap = Anchor { day: 29, month: 2 };
        assert_eq!(next_start(date(2027, 2, 28), leap, YEARLY), Some(date(2028, 2, 29)));
        assert_eq!(next_start(date(2025, 2, 28), leap, YEARLY), Some(date(2026, 2, 28)));
        // Multi-month periods keep it too: quarterly from Nov 30 anchored on the 31st.
        let quarterly = Period { unit: Unit::Month, count: 3 };
        assert_eq!(next_start(date(2023, 11, 30), Anchor { day: 31, month: 0 }, quarterly), Some(date(2024, 2, 29)));
        assert_eq!(next_start(date(2024, 2, 29), Anchor { day: 31, month: 0 }, quarterly), Some(date(2024, 5, 31)));
    }

    #[test]
    fn days_and_weeks_ignore_the_anchor() {
        let anchor = Anchor { day: 31, month: 12 };
        let start = date(2023, 2, 28);
        assert_eq!(next_start(start, anchor, Period { unit: Unit::Day, count: 3 }), Some(date(2023, 3, 3)));
        assert_eq!(next_start(start, anchor, Period { unit: Unit::Week, count: 1 }), Some(date(2023, 3, 7)));
        assert_eq!(Anchor::of(start, Period { unit: Unit::Week, count: 1 }), Anchor { day: 28, month: 0 });
    }

    #[test]
    fn anchors_in_range() {
        assert_eq!(Anchor::new(31, 0), Some(Anchor { day: 31, month: 0 }));
        assert_eq!(Anchor::new(1, 12), Some(Anchor { day: 1, month: 12 }));
        assert_eq!(Anchor::new(0, 0), None);
        assert_eq!(Anchor::new(32, 0), None);
        assert_eq!(Anchor::new(15, 13), None);
        // Feb 30 is Feb's last day.
        assert_eq!(next_start(date(2023, 2, 28), Anchor { day: 30, month: 2 }, YEARLY), Some(date(2024, 2, 29)));
        assert_eq!(nth_after(date(2023, 1, 31), Anchor { day: 31, month: 0 }, MONTHLY, u32::MAX), None);
        assert_eq!(days_in_month(2024, 2), Some(29));
        assert_eq!(days_in_month(2100, 2), Some(28));
        assert_eq!(days_in_month(2023, 12), Some(31));
    }

    /// The length of a month, independently of `days_in_month`.
    fn month_length(year: i32, month: u32) -> u32 {
        (28..=31).rev().find(|&d| NaiveDate::from_ymd_opt(year, month, d).is_some()).expect("a month has 28 days")
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2_000))]

        #[test]
        fn periods_advance_and_keep_the_anchor_day(
            day in 1u32..=31,
            month in 1u32..=12,
            year in 1900i32..2400,
            yearly in proptest::prelude::any::<bool>(),
            count in 1u32..=6,
            n in 0u32..300,
        ) {
            let (unit, anchor) = if yearly { (Unit::Year, Anchor { day, month }) } else { (Unit::Month, Anchor { day, month: 0 }) };
            let period = Period { unit, count };
            let first = NaiveDate::from_ymd_opt(year, month, day.min(month_length(year, month))).expect("date");
            let this = nth_after(first, anchor, period, n).expect("in range");
            let next = nth_after(first, anchor, period, n + 1).expect("in range");
            proptest::prop_assert!(next > this, "{} then {}", this, next);
            proptest::prop_assert_eq!(next_start(this, anchor, period), Some(next));
            for d in [this, next] {
                proptest::prop_assert_eq!(d.day(), day.min(month_length(d.year(), d.month())), "{}", d);
            }
            let months = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
            let step = if yearly { 12 * i64::from(count) } else { i64::from(count) };
            proptest::prop_assert_eq!(months(next) - months(this), step);
            proptest::prop_assert_eq!(months(this) - months(first), step * i64::from(n));
        }
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
