//! What canceling, pausing and reactivating do to a subscription, and what
//! the unused part of a paid period is worth: pure rules over the records,
//! with `now`, the rate's period and the account's time zone given.
//!
//! A paid period's unused part is reckoned from what was invoiced for it:
//! every line of a PAID invoice of the subscription whose period ends with
//! the current period (its subscription lines, and the charge and credit
//! lines of changes made during it) is worth `amount × unused ÷ length`,
//! rounded once per line. The line's unused part is counted from the later
//! of its start and `at`, in whole days of the account's time zone (the day
//! of the change is not used) or in seconds, by the tenant's proration
//! mode, the rule pricing prorates changes by.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use recur_money::Currency;
use recur_period::{Anchor, Period, local_date, local_midnight, next_start};
use rust_decimal::Decimal;

use super::state::{Action, Refusal};
use super::{Invoice, InvoiceLine, InvoiceStatus, LineKind, Subscription, SubscriptionState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelTiming {
    Immediate,
    EndOfTerm,
    /// At the first period end at least the rate's notice period away.
    WithNotice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProrationMode {
    Day,
    Second,
}

/// What the rules need to know beside the subscription.
#[derive(Clone, Copy, Debug)]
pub struct Terms {
    pub period: Period,
    pub notice_days: u32,
    pub tz: Tz,
    pub mode: ProrationMode,
}

fn refuse(reason: &str, message: &str) -> Refusal {
    Refusal { reason: reason.into(), message: message.into() }
}

fn state_allows(sub: &Subscription, action: Action) -> Result<SubscriptionState, Refusal> {
    sub.state.after(action)
}

/// The anchor periods of `sub` keep, in `recur_period`'s terms.
pub fn anchor_of(sub: &Subscription, terms: &Terms) -> Anchor {
    Anchor::new(sub.billing_anchor.day, sub.billing_anchor.month)
        .unwrap_or_else(|| Anchor::of(local_date(sub.current_period_start, terms.tz), terms.period))
}

/// The first end of a period of `sub` at or after `not_before`.
pub fn period_end_at_or_after(sub: &Subscription, terms: &Terms, not_before: DateTime<Utc>) -> DateTime<Utc> {
    let anchor = anchor_of(sub, terms);
    let mut end = sub.current_period_end;
    // Bounded: a notice of years on daily periods is still a few thousand.
    for _ in 0..10_000 {
        if end >= not_before {
            break;
        }
        match next_start(local_date(end, terms.tz), anchor, terms.period) {
            Some(next) => end = local_midnight(next, terms.tz),
            None => break,
        }
    }
    end
}

/// `sub` canceled at `now` with `timing`: at once (CANCELED), or scheduled
/// for a period end (`cancel_at_period_end`, `expires_at` the end). A
/// PENDING or trialing contract with nothing paid ends at once or at its
/// trial's end. Refused when the state forbids it, or when a cancellation is
/// already scheduled and this one is not immediate.
pub fn cancel(
    sub: &Subscription,
    timing: CancelTiming,
    terms: &Terms,
    now: DateTime<Utc>,
    reason: &str,
    comment: &str,
) -> Result<Subscription, Refusal> {
    let canceled = state_allows(sub, Action::Cancel)?;
    let mut s = sub.clone();
    s.cancel_reason = reason.to_string();
    s.cancel_comment = comment.to_string();
    s.canceled_at = Some(now);
    s.updated_at = now;
    let end = match (timing, sub.state) {
        (CancelTiming::Immediate, _) | (_, SubscriptionState::Pending) => None,
        (_, SubscriptionState::Trialing) => sub.trial_end.filter(|t| *t > now),
        (CancelTiming::EndOfTerm, _) => Some(sub.current_period_end),
        (CancelTiming::WithNotice, _) => {
            Some(period_end_at_or_after(sub, terms, now + Duration::days(i64::from(terms.notice_days))))
        }
    };
    match end {
        Some(end) if end > now => {
            if sub.cancel_at_period_end {
                return Err(refuse(
                    "CANCELLATION_SCHEDULED",
                    "a cancellation is already scheduled; reactivate the subscription first, or cancel it immediately",
                ));
            }
            s.cancel_at_period_end = true;
            s.expires_at = Some(end);
        }
        _ => end_now(&mut s, canceled, now),
    }
    Ok(s)
}

/// `s` ended at `at` in `state` (CANCELED): nothing scheduled or billed
/// any more.
pub fn end_now(s: &mut Subscription, state: SubscriptionState, at: DateTime<Utc>) {
    s.state = state;
    s.cancel_at_period_end = false;
    s.expires_at = Some(at);
    s.next_billing_at = None;
    s.scheduled_change = None;
    s.paused_at = None;
    s.resume_at = None;
    s.updated_at = at;
}

/// `sub` with its scheduled cancellation undone (ReactivateSubscription on a
/// subscription that has not ended yet). `None` when none is scheduled.
pub fn undo_cancellation(sub: &Subscription, now: DateTime<Utc>) -> Option<Subscription> {
    if sub.state == SubscriptionState::Canceled || !sub.cancel_at_period_end {
        return None;
    }
    let mut s = sub.clone();
    s.cancel_at_period_end = false;
    s.expires_at = None;
    s.canceled_at = None;
    s.cancel_reason.clear();
    s.cancel_comment.clear();
    s.updated_at = now;
    Some(s)
}

/// `sub` paused at `now` (PAUSED: no invoices until it resumes) or, with
/// `at_period_end`, scheduled to pause when its period ends. `resume_at`,
/// when given, must come after the pause.
pub fn pause(
    sub: &Subscription,
    at_period_end: bool,
    resume_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Subscription, Refusal> {
    let paused = state_allows(sub, Action::Pause)?;
    if sub.paused_at.is_some() {
        return Err(refuse("PAUSE_SCHEDULED", "a pause is already scheduled; resume the subscription to drop it"));
    }
    if sub.cancel_at_period_end {
        return Err(refuse("CANCELLATION_SCHEDULED", "a subscription that is to end cannot be paused"));
    }
    let starts = if at_period_end { sub.current_period_end } else { now };
    let mut s = sub.clone();
    s.paused_at = Some(starts);
    s.resume_at = resume_at;
    s.updated_at = now;
    if !at_period_end {
        s.state = paused;
        s.next_billing_at = None;
        s.scheduled_change = None;
    }
    Ok(s)
}

/// Whether `sub` has a pause scheduled (ACTIVE, pausing at its period end).
pub fn pause_scheduled(sub: &Subscription) -> bool {
    sub.state != SubscriptionState::Paused && sub.paused_at.is_some()
}

/// The lines that credit the unused part of the current period of `sub`
/// at `at`, one per paid line covering it (see the module docs); their
/// amounts are negative. Empty when nothing paid is left unused.
pub fn unused_credit_lines(
    sub: &Subscription,
    invoices: &[Invoice],
    at: DateTime<Utc>,
    terms: &Terms,
    currency: Currency,
    description: &str,
) -> Vec<InvoiceLine> {
    let mut out = Vec::new();
    for inv in invoices.iter().filter(|i| i.status == InvoiceStatus::Paid) {
        for l in &inv.lines {
            let (Some(start), Some(end)) = (l.period_start, l.period_end) else { continue };
            if end != sub.current_period_end || start >= end || at >= end {
                continue;
            }
            let from = at.max(start);
            let (unused, length) = match terms.mode {
                ProrationMode::Second => ((end - from).num_seconds(), (end - start).num_seconds()),
                ProrationMode::Day => (
                    (local_date(end, terms.tz) - local_date(from, terms.tz)).num_days(),
                    (local_date(end, terms.tz) - local_date(start, terms.tz)).num_days(),
                ),
            };
            if unused <= 0 || length <= 0 {
                continue;
            }
            let amount = currency.round(l.amount * Decimal::from(unused) / Decimal::from(length));
            let without_tax = currency.round(l.amount_without_tax * Decimal::from(unused) / Decimal::from(length));
            if amount.is_zero() {
                continue;
            }
            let fraction = (Decimal::from(unused) / Decimal::from(length)).round_dp(6).normalize();
            out.push(InvoiceLine {
                id: recur_id::new_id(recur_id::Kind::InvoiceLine),
                kind: LineKind::Proration,
                description: format!("{description}: {}", l.description),
                subscription_id: sub.id.clone(),
                offering_id: l.offering_id.clone(),
                rate_id: l.rate_id.clone(),
                product_id: l.product_id.clone(),
                period_start: Some(from),
                period_end: Some(end),
                quantity: l.quantity,
                unit_amount: l.unit_amount.clone(),
                proration_fraction: fraction.to_string(),
                tiers: Vec::new(),
                amount_without_tax: -without_tax,
                discount: Decimal::ZERO,
                tax: -(amount - without_tax),
                tax_rate: l.tax_rate.clone(),
                amount: -amount,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use recur_period::Unit;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().expect("date")
    }

    fn terms(notice_days: u32) -> Terms {
        Terms {
            period: Period { unit: Unit::Month, count: 1 },
            notice_days,
            tz: chrono_tz::UTC,
            mode: ProrationMode::Day,
        }
    }

    fn sub() -> Subscription {
        crate::domain::test_subscription()
    }

    #[test]
    fn a_notice_ends_the_contract_at_the_first_period_end_it_allows_on_the_anchor() {
        let now = at(2023, 2, 10);
        // 10 days of notice from Feb 10: Feb 20, within the period: Feb 28.
        let s = cancel(&sub(), CancelTiming::WithNotice, &terms(10), now, "", "").expect("cancel");
        assert_eq!(s.expires_at, Some(at(2023, 2, 28)));
        assert!(s.cancel_at_period_end);
        assert_eq!(s.state, SubscriptionState::Active);
        // 30 days: Mar 12, so the period ending Mar 31 (the anchor, not Mar 28).
        let s = cancel(&sub(), CancelTiming::WithNotice, &terms(30), now, "", "").expect("cancel");
        assert_eq!(s.expires_at, Some(at(2023, 3, 31)));
        // 60 days: Apr 11, so Apr 30.
        let s = cancel(&sub(), CancelTiming::WithNotice, &terms(60), now, "", "").expect("cancel");
        assert_eq!(s.expires_at, Some(at(2023, 4, 30)));
    }

    #[test]
    fn immediate_cancellation_ends_now_and_twice_is_refused() {
        let now = at(2023, 2, 10);
        let s = cancel(&sub(), CancelTiming::Immediate, &terms(0), now, "too expensive", "n/a").expect("cancel");
        assert_eq!(s.state, SubscriptionState::Canceled);
        assert_eq!(s.expires_at, Some(now));
        assert_eq!(s.next_billing_at, None);
        assert_eq!(s.cancel_reason, "too expensive");
        let again = cancel(&s, CancelTiming::Immediate, &terms(0), now, "", "").expect_err("twice");
        assert_eq!(again.reason, "SUBSCRIPTION_CANCELED");
        let scheduled = cancel(&sub(), CancelTiming::EndOfTerm, &terms(0), now, "", "").expect("schedule");
        let twice = cancel(&scheduled, CancelTiming::EndOfTerm, &terms(0), now, "", "").expect_err("twice");
        assert_eq!(twice.reason, "CANCELLATION_SCHEDULED");
        assert!(cancel(&scheduled, CancelTiming::Immediate, &terms(0), now, "", "").is_ok());
        let undone = undo_cancellation(&scheduled, now).expect("undo");
        assert!(!undone.cancel_at_period_end && undone.expires_at.is_none());
    }

    #[test]
    fn the_unused_part_of_a_paid_line_is_credited_by_days_left() {
        // $28.00 for Jan 31..Feb 28 (28 days); canceled on Feb 21: 7 days
        // unused, 28.00 × 7 / 28 = 7.00.
        let s = sub();
        let line = InvoiceLine {
            id: "invl_1".into(),
            kind: LineKind::Subscription,
            description: "Seat".into(),
            subscription_id: s.id.clone(),
            offering_id: s.offering_id.clone(),
            rate_id: s.rate_id.clone(),
            product_id: "prod_1".into(),
            period_start: Some(s.current_period_start),
            period_end: Some(s.current_period_end),
            quantity: Decimal::ONE,
            unit_amount: "28".into(),
            proration_fraction: "1".into(),
            tiers: Vec::new(),
            amount_without_tax: Decimal::from(28),
            discount: Decimal::ZERO,
            tax: Decimal::ZERO,
            tax_rate: String::new(),
            amount: Decimal::from(28),
        };
        let inv = Invoice {
            id: "inv_1".into(),
            number: "INV-000001".into(),
            account_id: s.account_id.clone(),
            bill_group_id: s.bill_group_id.clone(),
            subscription_id: s.id.clone(),
            status: InvoiceStatus::Paid,
            currency: s.currency,
            lines: vec![line],
            amount_without_tax: Decimal::from(28),
            discount: Decimal::ZERO,
            tax: Decimal::ZERO,
            amount: Decimal::from(28),
            amount_paid: Decimal::from(28),
            credit_applied: Decimal::ZERO,
            period_start: None,
            period_end: None,
            issued_at: None,
            due_at: None,
            paid_at: None,
            payment_ids: Vec::new(),
            created_at: at(2023, 1, 31),
            updated_at: at(2023, 1, 31),
            reason: crate::domain::InvoiceReason::SubscriptionCycle,
            next_action_at: None,
            attempt_count: 0,
            first_failed_at: None,
            collection_paused: String::new(),
            usage_coupon_left: None,
        };
        let lines =
            unused_credit_lines(&s, std::slice::from_ref(&inv), at(2023, 2, 21), &terms(0), s.currency, "Unused");
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].amount, Decimal::from(-7));
        assert_eq!(lines[0].proration_fraction, "0.25");
        let mut open = inv;
        open.status = InvoiceStatus::Open;
        assert!(unused_credit_lines(&s, &[open], at(2023, 2, 21), &terms(0), s.currency, "Unused").is_empty());
    }
}
