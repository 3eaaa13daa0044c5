//! Usage billed in arrears: how a METERED product's events of a period add
//! up ([`Aggregate`], by the product's [`Aggregation`] in the catalog), and
//! the invoice line of a closed period's in-arrears item
//! ([`arrears_line`]): a metered product at its aggregate, or a licensed
//! product of a rate billed in arrears at its quantity.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{InvoiceLine, LineKind, TierLine};

/// How a metered product's usage of a period adds up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    /// The sum of the events' quantities.
    Sum,
    /// How many events there were.
    Count,
    /// The largest quantity.
    Max,
    /// How many distinct values the events' property has (events without
    /// it are not counted).
    UniqueCount,
    /// The quantity of the last event (by its time, then its id).
    Latest,
}

/// A metered product's aggregation and, for UNIQUE_COUNT, its property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meter {
    pub aggregation: Aggregation,
    pub property: String,
}

/// A product a rate bills at the end of each period.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrearsItem {
    pub product_id: String,
    pub name: String,
    /// A metered product's meter; `None`: a licensed product of a rate
    /// billed in arrears, billed at the contract's quantity.
    pub meter: Option<Meter>,
}

/// A running aggregate of a period's events, fed one event at a time (so
/// a period's events need not be held at once).
#[derive(Clone, Debug)]
pub struct Aggregate {
    aggregation: Aggregation,
    sum: Decimal,
    count: u64,
    max: Option<Decimal>,
    latest: Option<(DateTime<Utc>, String, Decimal)>,
    distinct: HashSet<String>,
}

impl Aggregate {
    pub fn new(aggregation: Aggregation) -> Aggregate {
        Aggregate { aggregation, sum: Decimal::ZERO, count: 0, max: None, latest: None, distinct: HashSet::new() }
    }

    /// Counts one event: its quantity, time, id and (UNIQUE_COUNT) the
    /// value of the meter's property, if it has one.
    pub fn add(&mut self, quantity: Decimal, at: DateTime<Utc>, event_id: &str, property: Option<&str>) {
        self.count += 1;
        match self.aggregation {
            Aggregation::Sum => self.sum += quantity,
            Aggregation::Count => {}
            Aggregation::Max => self.max = Some(self.max.map_or(quantity, |m| m.max(quantity))),
            Aggregation::UniqueCount => {
                if let Some(p) = property
                    && !self.distinct.contains(p)
                {
                    self.distinct.insert(p.to_string());
                }
            }
            Aggregation::Latest => {
                let later = self.latest.as_ref().is_none_or(|(t, id, _)| (at, event_id) > (*t, id.as_str()));
                if later {
                    self.latest = Some((at, event_id.to_string(), quantity));
                }
            }
        }
    }

    /// The period's quantity so far (zero without events).
    pub fn value(&self) -> Decimal {
        match self.aggregation {
            Aggregation::Sum => self.sum,
            Aggregation::Count => Decimal::from(self.count),
            Aggregation::Max => self.max.unwrap_or_default(),
            Aggregation::UniqueCount => Decimal::from(self.distinct.len() as u64),
            Aggregation::Latest => self.latest.as_ref().map(|(_, _, q)| *q).unwrap_or_default(),
        }
        .normalize()
    }

    /// How many events it has counted.
    pub fn events(&self) -> u64 {
        self.count
    }
}

/// The closed period a renewal, cancellation or pause of `sub` at `at`
/// bills in arrears: from the current period's start to its end (or `at`,
/// for an import billed before its period ended). A trial bills nothing.
pub fn closed_period(sub: &super::Subscription, at: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    (sub.state != super::SubscriptionState::Trialing)
        .then(|| (sub.current_period_start, at.min(sub.current_period_end)))
        .filter(|(start, end)| start < end)
}

/// The whole period of `sub`'s schedule (`period` long, days counted in
/// `tz`) that ends where its current period ends, when the closed part
/// `closed` is only part of it: a cancellation or pause before the period
/// ends, or a first period shortened by a billing day. A per-period item
/// billed in arrears over such a part is prorated.
pub fn full_period(
    sub: &super::Subscription,
    period: recur_period::Period,
    tz: chrono_tz::Tz,
    closed: (DateTime<Utc>, DateTime<Utc>),
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    use recur_period::{Anchor, local_date, local_midnight, previous_start};
    let end = sub.current_period_end;
    let last_day = local_date(end, tz);
    let anchor = Anchor::new(sub.billing_anchor.day, sub.billing_anchor.month)
        .unwrap_or_else(|| Anchor::of(local_date(sub.current_period_start, tz), period));
    let start = local_midnight(previous_start(last_day, anchor, period)?, tz).min(closed.0);
    (closed.0 > start || closed.1 < end).then_some((start, end))
}

/// What pricing says an in-arrears quantity costs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RatedUsage {
    pub unit_amount: String,
    pub tiers: Vec<TierLine>,
    pub tax_rate: String,
    pub amount_without_tax: Decimal,
    pub tax: Decimal,
    /// With tax (exclusive tax added; inclusive tax is part of it).
    pub amount: Decimal,
    /// What coupons took off (before tax).
    pub discount: Decimal,
    /// The share of the period billed ("1", or a part of a period of a
    /// per-period item; empty is read as "1").
    pub fraction: String,
    /// Each FIXED_AMOUNT coupon the line could take from, with what it has
    /// left after it (for the invoice's next line).
    pub fixed_left: Vec<(String, Decimal)>,
}

/// Where a closed period's in-arrears item is billed from.
#[derive(Clone, Copy, Debug)]
pub struct ClosedPeriod<'a> {
    pub subscription_id: &'a str,
    pub offering_id: &'a str,
    pub rate_id: &'a str,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The invoice line of `item` over the closed period `p`: `quantity` (the
/// aggregate, or the contract's quantity) at what pricing `rated`.
pub fn arrears_line(p: ClosedPeriod<'_>, item: &ArrearsItem, quantity: Decimal, rated: RatedUsage) -> InvoiceLine {
    let metered = item.meter.is_some();
    InvoiceLine {
        id: recur_id::new_id(recur_id::Kind::InvoiceLine),
        kind: if metered { LineKind::Usage } else { LineKind::Subscription },
        description: if metered { format!("{} (usage)", item.name) } else { format!("{} (in arrears)", item.name) },
        subscription_id: p.subscription_id.to_string(),
        offering_id: p.offering_id.to_string(),
        rate_id: p.rate_id.to_string(),
        product_id: item.product_id.clone(),
        period_start: Some(p.start),
        period_end: Some(p.end),
        quantity,
        unit_amount: rated.unit_amount,
        proration_fraction: if rated.fraction.is_empty() { "1".into() } else { rated.fraction },
        tiers: rated.tiers,
        amount_without_tax: rated.amount_without_tax,
        discount: rated.discount,
        tax: rated.tax,
        tax_rate: rated.tax_rate,
        amount: rated.amount,
    }
}

/// `line` re-rated: the same line at a new quantity and price (a usage
/// line counted again when its draft is finalized).
pub fn rerated(line: &InvoiceLine, quantity: Decimal, rated: RatedUsage) -> InvoiceLine {
    InvoiceLine {
        quantity,
        unit_amount: rated.unit_amount,
        tiers: rated.tiers,
        amount_without_tax: rated.amount_without_tax,
        discount: rated.discount,
        tax: rated.tax,
        tax_rate: rated.tax_rate,
        amount: rated.amount,
        ..line.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, s).single().expect("time")
    }

    fn of(aggregation: Aggregation, events: &[(&str, u32, &str, Option<&str>)]) -> Decimal {
        let mut a = Aggregate::new(aggregation);
        for (q, s, id, p) in events {
            a.add(q.parse().expect("qty"), t(*s), id, *p);
        }
        a.value()
    }

    #[test]
    fn each_aggregation_adds_up_its_own_way() {
        let events = [
            ("2.5", 3, "e1", Some("alice")),
            ("4", 1, "e2", Some("bob")),
            ("1", 2, "e3", Some("alice")),
            ("7", 0, "e4", None),
        ];
        assert_eq!(of(Aggregation::Sum, &events), "14.5".parse::<Decimal>().expect("d"));
        assert_eq!(of(Aggregation::Count, &events), Decimal::from(4));
        assert_eq!(of(Aggregation::Max, &events), Decimal::from(7));
        assert_eq!(of(Aggregation::UniqueCount, &events), Decimal::from(2), "alice, bob; e4 has no property");
        assert_eq!(of(Aggregation::Latest, &events), "2.5".parse::<Decimal>().expect("d"), "e1 is the last in time");
    }

    #[test]
    fn no_events_add_up_to_zero() {
        for a in [Aggregation::Sum, Aggregation::Count, Aggregation::Max, Aggregation::UniqueCount, Aggregation::Latest]
        {
            assert_eq!(of(a, &[]), Decimal::ZERO);
        }
    }

    #[test]
    fn the_closed_period_ends_at_the_renewal_and_a_trial_bills_none() {
        let mut s = crate::domain::test_subscription();
        let (start, end) = (s.current_period_start, s.current_period_end);
        assert_eq!(closed_period(&s, end), Some((start, end)));
        // An import billed before its period ended: up to then.
        let early = start + chrono::Duration::days(3);
        assert_eq!(closed_period(&s, early), Some((start, early)));
        assert_eq!(closed_period(&s, start), None, "an empty period");
        s.state = crate::domain::SubscriptionState::Trialing;
        assert_eq!(closed_period(&s, end), None);
    }

    #[test]
    fn latest_breaks_a_tie_in_time_by_event_id() {
        let events = [("5", 1, "b", None), ("9", 1, "a", None)];
        assert_eq!(of(Aggregation::Latest, &events), Decimal::from(5));
    }
}
