//! A contract's billing anchor: the day of the month its periods start on,
//! and for yearly periods the month too. It is fixed when the contract is
//! made and passed to pricing with every question about its periods, so a
//! contract that started on Jan 31 bills on Feb 28 (29), then Mar 31, and a
//! yearly one that started on Feb 29 bills on Feb 28 in common years and
//! Feb 29 in leap years: the anchor never drifts to a shorter month's day.

use chrono::{Datelike, NaiveDate};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BillingAnchor {
    /// 1–31; 0 only for records made before anchors were kept.
    pub day: u32,
    /// 1–12 for yearly periods, else 0.
    pub month: u32,
}

impl BillingAnchor {
    /// The anchor of periods starting on `start`: its day, and its month
    /// when the periods are yearly.
    pub fn of(start: NaiveDate, yearly: bool) -> BillingAnchor {
        BillingAnchor { day: start.day(), month: if yearly { start.month() } else { 0 } }
    }

    /// Whether the anchor is set (records made before anchors were kept
    /// have none; pricing then takes the period's start).
    pub fn is_set(&self) -> bool {
        self.day != 0
    }

    /// Whether the parts are in range (day 1–31, month 0–12).
    pub fn is_valid(&self) -> bool {
        (1..=31).contains(&self.day) && self.month <= 12
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_anchor_is_the_start_day_and_for_yearly_periods_its_month() {
        let jan31 = NaiveDate::from_ymd_opt(2023, 1, 31).expect("date");
        assert_eq!(BillingAnchor::of(jan31, false), BillingAnchor { day: 31, month: 0 });
        let feb29 = NaiveDate::from_ymd_opt(2024, 2, 29).expect("date");
        assert_eq!(BillingAnchor::of(feb29, true), BillingAnchor { day: 29, month: 2 });
        assert!(BillingAnchor::of(feb29, true).is_valid());
        assert!(!BillingAnchor::default().is_set());
        assert!(!BillingAnchor { day: 32, month: 0 }.is_valid());
    }
}
