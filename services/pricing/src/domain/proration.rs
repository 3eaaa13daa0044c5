//! Previewing a change to a contract: what is credited for the unused part
//! of what was paid, what is charged for the rest of the period at the new
//! price, and what recurs afterwards.
//!
//! A change that takes effect at `at` inside `[start, end)` credits each
//! in-advance line of the old price × (end − at) / (end − start) and charges
//! each in-advance line of the new price × the same fraction. By DAY the
//! fraction counts whole days in the account's time zone (the day of the
//! change belongs to the new price); by SECOND it counts seconds. Each line
//! is `price × remaining ÷ total`, multiplied before dividing and rounded
//! once, so an unchanged plan prorates to exactly zero. In-arrears lines
//! (usage) are billed at the period's end and are not prorated in advance;
//! one-time lines are not prorated at all. A change to a rate with another
//! billing period starts a new period at the change: the old period's unused
//! part is credited and the new period is charged in full.
//!
//! Periods keep the contract's [`Anchor`]: at the end of the term the next
//! period runs from the current period's end to the next start on the
//! anchor (a contract anchored on the 31st renews from Feb 28 to Mar 31),
//! also when the new rate has another month or year period (the day is
//! kept; a yearly anchor's month only from yearly to yearly). From a day or
//! week period to a month or year one, the new period is anchored on its own
//! start. An immediate change to another period starts a new schedule at the
//! change, anchored on the change's day (as Stripe resets the billing cycle
//! anchor when the interval changes): the new period is charged in full, so
//! it must be a full period.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use recur_money::Currency;
use rust_decimal::Decimal;

use super::period::{Anchor, Period, Unit, local_date, local_midnight, next_start};
use super::quote::{Billing, CartLine};
use super::rating::rate;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Day,
    Second,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    Immediate,
    EndOfTerm,
}

/// One side of a change: the rate and the lines priced by it.
#[derive(Clone, Debug)]
pub struct Side {
    pub rate_id: String,
    pub period: Period,
    pub lines: Vec<CartLine>,
}

#[derive(Clone, Debug)]
pub struct ChangeInput {
    pub currency: Currency,
    pub tz: Tz,
    pub mode: Mode,
    pub timing: Timing,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// The contract's anchor; `None`: the day (and, for a yearly period,
    /// the month) `period_start` falls on in `tz`.
    pub anchor: Option<Anchor>,
    pub at: DateTime<Utc>,
    pub old: Side,
    pub new: Side,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    Credit,
    Charge,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProratedLine {
    pub kind: LineKind,
    pub product_id: String,
    pub rate_id: String,
    pub quantity: Decimal,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    /// The share of the period, as remaining / total.
    pub remaining: i64,
    pub total: i64,
    /// Negative for a credit; rounded to the currency.
    pub amount: Decimal,
    pub description: String,
}

impl ProratedLine {
    pub fn fraction(&self) -> Decimal {
        if self.total == 0 { Decimal::ZERO } else { Decimal::from(self.remaining) / Decimal::from(self.total) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeOutcome {
    pub lines: Vec<ProratedLine>,
    /// Sum of the lines; negative when the change leaves a credit.
    pub due_now: Decimal,
    /// What each following period costs (before tax and discounts).
    pub next_recurring: Decimal,
    pub effective: DateTime<Utc>,
    pub new_period_start: DateTime<Utc>,
    pub new_period_end: DateTime<Utc>,
    /// The anchor the periods keep from the new period on.
    pub anchor: Anchor,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeError {
    /// The period is empty or inverted.
    BadPeriod,
    /// An immediate change must fall inside the current period.
    OutsidePeriod,
    OutOfRange,
}

/// (remaining, total) of `[start, end)` from `at`, in whole local days or
/// in seconds.
pub fn share(mode: Mode, tz: Tz, start: DateTime<Utc>, end: DateTime<Utc>, at: DateTime<Utc>) -> (i64, i64) {
    match mode {
        Mode::Second => ((end - at).num_seconds(), (end - start).num_seconds()),
        Mode::Day => {
            let (s, e, d) = (local_date(start, tz), local_date(end, tz), local_date(at, tz));
            ((e - d).num_days(), (e - s).num_days())
        }
    }
}

/// (part, whole) of `[start, end)` inside the whole period
/// `[full_start, full_end)`, in whole local days or in seconds: what a
/// per-period item billed for part of a period is prorated by.
pub fn part_of(
    mode: Mode,
    tz: Tz,
    (full_start, full_end): (DateTime<Utc>, DateTime<Utc>),
    (start, end): (DateTime<Utc>, DateTime<Utc>),
) -> (i64, i64) {
    let (from_start, total) = share(mode, tz, full_start, full_end, start);
    let (from_end, _) = share(mode, tz, full_start, full_end, end);
    ((from_start - from_end).max(0), total)
}

/// `amount × remaining ÷ total`, rounded once.
pub fn prorate(amount: Decimal, remaining: i64, total: i64, currency: Currency) -> Decimal {
    if total == 0 {
        return currency.round(Decimal::ZERO);
    }
    currency.round(amount * Decimal::from(remaining) / Decimal::from(total))
}

fn full(line: &CartLine, currency: Currency) -> Decimal {
    currency.round(rate(&line.price, line.quantity).amount)
}

/// The anchor a schedule keeps when its period changes from `old` to
/// `new` at `start`, the new period's first day: the day while both are
/// month or year periods (the month only from yearly to yearly), else
/// `start`'s own.
pub fn carried(anchor: Anchor, old: Period, new: Period, start: NaiveDate) -> Anchor {
    if !old.is_calendar() || !new.is_calendar() {
        return Anchor::of(start, new);
    }
    let month = if old.unit == Unit::Year && new.unit == Unit::Year { anchor.month } else { 0 };
    let month = if new.unit == Unit::Year && month == 0 { start.month() } else { month };
    Anchor { day: anchor.day, month }
}

pub fn preview(c: &ChangeInput) -> Result<ChangeOutcome, ChangeError> {
    if c.period_end <= c.period_start {
        return Err(ChangeError::BadPeriod);
    }
    let anchor = c.anchor.unwrap_or_else(|| Anchor::of(local_date(c.period_start, c.tz), c.old.period));
    let next_recurring: Decimal =
        c.new.lines.iter().filter(|l| l.billing != Billing::OneTime).map(|l| full(l, c.currency)).sum();
    if c.timing == Timing::EndOfTerm {
        let next_begins = local_date(c.period_end, c.tz);
        let anchor = carried(anchor, c.old.period, c.new.period, next_begins);
        let next_end = next_start(next_begins, anchor, c.new.period).ok_or(ChangeError::OutOfRange)?;
        return Ok(ChangeOutcome {
            lines: Vec::new(),
            due_now: c.currency.round(Decimal::ZERO),
            next_recurring,
            effective: c.period_end,
            new_period_start: c.period_end,
            new_period_end: local_midnight(next_end, c.tz),
            anchor,
        });
    }
    if c.at < c.period_start || c.at >= c.period_end {
        return Err(ChangeError::OutsidePeriod);
    }
    let (remaining, total) = share(c.mode, c.tz, c.period_start, c.period_end, c.at);
    // The instant the new price takes over: the start of the day of the
    // change by DAY, the change itself by SECOND.
    let effective = match c.mode {
        Mode::Day => local_midnight(local_date(c.at, c.tz), c.tz),
        Mode::Second => c.at,
    };
    let same_period = c.old.period == c.new.period;
    let (new_start, new_end, anchor) = if same_period {
        (c.period_start, c.period_end, anchor)
    } else {
        let begins = local_date(effective, c.tz);
        let anchor = Anchor::of(begins, c.new.period);
        let end = next_start(begins, anchor, c.new.period).ok_or(ChangeError::OutOfRange)?;
        let end = match c.mode {
            Mode::Day => local_midnight(end, c.tz),
            // A new period by seconds runs from the change to the same wall
            // time a period later.
            Mode::Second => local_midnight(end, c.tz) + (c.at - local_midnight(local_date(c.at, c.tz), c.tz)),
        };
        (effective, end, anchor)
    };
    let in_advance = |l: &&CartLine| l.billing == Billing::InAdvance && !l.quantity.is_zero();
    let mut lines = Vec::new();
    for l in c.old.lines.iter().filter(in_advance) {
        let amount = -prorate(full(l, c.currency), remaining, total, c.currency);
        lines.push(ProratedLine {
            kind: LineKind::Credit,
            product_id: l.product_id.clone(),
            rate_id: c.old.rate_id.clone(),
            quantity: l.quantity,
            period_start: effective,
            period_end: c.period_end,
            remaining,
            total,
            amount,
            description: format!("Unused time on {} × {}", l.quantity.normalize(), l.name),
        });
    }
    for l in c.new.lines.iter().filter(in_advance) {
        let (amount, remaining, total, start, end) = if same_period {
            (prorate(full(l, c.currency), remaining, total, c.currency), remaining, total, effective, c.period_end)
        } else {
            (full(l, c.currency), 1, 1, new_start, new_end)
        };
        lines.push(ProratedLine {
            kind: LineKind::Charge,
            product_id: l.product_id.clone(),
            rate_id: c.new.rate_id.clone(),
            quantity: l.quantity,
            period_start: start,
            period_end: end,
            remaining,
            total,
            amount,
            description: format!("Remaining time on {} × {}", l.quantity.normalize(), l.name),
        });
    }
    let due_now = c.currency.round(lines.iter().map(|l| l.amount).sum());
    Ok(ChangeOutcome {
        lines,
        due_now,
        next_recurring,
        effective,
        new_period_start: new_start,
        new_period_end: new_end,
        anchor,
    })
}
