//! What the billing clock does when a subscription's next billing time has
//! come ([`due_step`]), the subscription in its next period
//! ([`next_period`]), the invoice of that period ([`cycle_invoice`]) and
//! how a draft is made final ([`finalize`]).
//!
//! A renewal at `B` (the end of the period that closes) starts the period
//! `B`..`E`, where `E` is the next end on the contract's anchor (Jan 31 →
//! Feb 28 → Mar 31) in the account's time zone; a change scheduled for the
//! period end is in force from `B`. A trial's end starts the first paid
//! period, which pricing already gave the contract. The period's invoice
//! is a DRAFT dated `B` until the grace period has passed (late usage for
//! the closed period still counts), then it is finalized and collected.

use chrono::{DateTime, Duration, Utc};

use super::invoice::{PricedOffering, first_invoice, period_invoice, priced_lines};
use super::lifecycle::{Terms, pause_scheduled, period_end_at_or_after};
use super::state::Action;
use super::{
    BillGroup, Invoice, InvoiceLine, InvoiceReason, InvoiceStatus, LineKind, PendingCharge, Subscription,
    SubscriptionState,
};

/// What is due for a subscription at its next billing time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// A contract with a later start date starts.
    Activate,
    /// The next period starts (a trial's end included).
    Renew,
    /// A cancellation scheduled for the period end takes effect.
    Cancel,
    /// A pause scheduled for the period end begins.
    Pause,
    /// A paused contract resumes by itself.
    Resume,
}

/// What the clock does for `sub` at its next billing time; `None` when
/// nothing (a contract that ended, or a pending one waiting to be
/// activated by hand).
pub fn due_step(sub: &Subscription) -> Option<Due> {
    let at = sub.next_billing_at?;
    match sub.state {
        SubscriptionState::Pending => Some(Due::Activate),
        SubscriptionState::Paused => sub.resume_at.is_some().then_some(Due::Resume),
        SubscriptionState::Active | SubscriptionState::PastDue | SubscriptionState::Trialing => {
            if sub.cancel_at_period_end && sub.expires_at.is_none_or(|e| e <= at) {
                Some(Due::Cancel)
            } else if pause_scheduled(sub) && sub.paused_at.is_some_and(|p| p <= at) {
                Some(Due::Pause)
            } else {
                Some(Due::Renew)
            }
        }
        SubscriptionState::Canceled | SubscriptionState::Expired => None,
    }
}

/// `sub` (renewed at its next billing time) in its next period: a
/// scheduled change applied, the period after the one that closes (a
/// trialing contract: its first paid period), ACTIVE after a trial. `terms`
/// are those of the rate in force from then. `None` when `sub` has no next
/// billing time or its state does not renew.
pub fn next_period(sub: &Subscription, terms: &Terms, at: DateTime<Utc>) -> Option<Subscription> {
    let billed_at = sub.next_billing_at?;
    let state = sub.state.after(Action::Renew).ok()?;
    let mut next = sub.clone();
    next.state = state;
    next.updated_at = at;
    if sub.state == SubscriptionState::Trialing {
        // Pricing gave the contract its first paid period, from the trial's end.
        next.next_billing_at = Some(sub.current_period_end);
        return Some(next);
    }
    if let Some(change) = next.scheduled_change.take() {
        if !change.offering_id.is_empty() {
            next.offering_id = change.offering_id;
        }
        next.rate_id = change.rate_id;
        next.items = change.items;
        next.recurring_amount = change.next_recurring_amount;
    }
    // The period starts when it is billed: the end of the last one (an
    // import billed before its period ended starts there).
    let start = billed_at.min(sub.current_period_end);
    let end = period_end_at_or_after(sub, terms, start + Duration::microseconds(1));
    next.current_period_start = start;
    next.current_period_end = end;
    next.next_billing_at = Some(end);
    Some(next)
}

/// The invoice of `sub`'s period (as [`next_period`] made it) priced as
/// `priced`, after `arrears` (the in-arrears lines of the period that
/// closed), with the one-off charges waiting for it: a DRAFT dated `at`
/// that the clock finalizes at `finalize_at`. `None` when nothing is due.
/// A closed period with in-arrears items always has its invoice, even at
/// zero, so that usage arriving during the grace period is still counted.
pub fn cycle_invoice(
    sub: &Subscription,
    bill_group: &BillGroup,
    priced: &PricedOffering,
    arrears: Vec<InvoiceLine>,
    pending: &[PendingCharge],
    at: DateTime<Utc>,
    finalize_at: DateTime<Utc>,
) -> Option<Invoice> {
    let mut inv = match first_invoice(sub, bill_group, priced, at, 0) {
        Some(inv) => inv,
        None if pending.is_empty() && arrears.is_empty() => return None,
        // Nothing due in advance (a free or fully discounted period): its
        // lines still show beside the usage and charges billed with them.
        None => period_invoice(sub, bill_group, priced_lines(sub, priced), at, 0),
    };
    inv.lines.splice(0..0, arrears);
    for p in pending {
        inv.lines.push(InvoiceLine {
            // The line is the charge: its id marks the charge as billed.
            id: p.id.clone(),
            kind: LineKind::OneOff,
            description: p.description.clone(),
            subscription_id: sub.id.clone(),
            offering_id: String::new(),
            rate_id: String::new(),
            product_id: p.product_id.clone(),
            period_start: None,
            period_end: None,
            quantity: p.quantity,
            unit_amount: p.unit_amount.clone(),
            proration_fraction: "1".into(),
            tiers: Vec::new(),
            amount_without_tax: p.amount,
            discount: rust_decimal::Decimal::ZERO,
            tax: rust_decimal::Decimal::ZERO,
            tax_rate: String::new(),
            amount: p.amount,
        });
    }
    inv.total_lines();
    inv.status = InvoiceStatus::Draft;
    inv.reason = InvoiceReason::SubscriptionCycle;
    inv.issued_at = None;
    inv.due_at = None;
    inv.next_action_at = Some(finalize_at);
    Some(inv)
}

/// The invoice of the in-arrears lines of `sub`'s period that closes at
/// `at` without a next one (a cancellation or pause at the period end): a
/// DRAFT of that period, finalized at `finalize_at`. `None` without lines.
pub fn closing_invoice(
    sub: &Subscription,
    bill_group: &BillGroup,
    arrears: Vec<InvoiceLine>,
    at: DateTime<Utc>,
    finalize_at: DateTime<Utc>,
) -> Option<Invoice> {
    if arrears.is_empty() {
        return None;
    }
    let mut inv = period_invoice(sub, bill_group, arrears, at, 0);
    inv.period_end = Some(at.min(sub.current_period_end));
    inv.total_lines();
    inv.status = InvoiceStatus::Draft;
    inv.reason = InvoiceReason::PeriodClose;
    inv.issued_at = None;
    inv.due_at = None;
    inv.next_action_at = Some(finalize_at);
    Some(inv)
}

/// Draft `inv` made final at `at`: OPEN (PAID when nothing is left to pay
/// after `credit` is applied), issued now, due now on a bill group that
/// pays automatically, else after `due_days`. Answers the credit it took.
pub fn finalize(inv: &mut Invoice, credit: rust_decimal::Decimal, at: DateTime<Utc>, auto: bool, due_days: u32) {
    inv.apply_credit(credit);
    inv.status = InvoiceStatus::Open;
    inv.issued_at = Some(at);
    inv.due_at = Some(if auto { at } else { at + Duration::days(i64::from(due_days)) });
    inv.next_action_at = None;
    inv.updated_at = at;
    if inv.amount_due().is_zero() && inv.amount >= rust_decimal::Decimal::ZERO {
        inv.status = InvoiceStatus::Paid;
        inv.paid_at = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lifecycle::ProrationMode;
    use crate::domain::{Item, ScheduledChange};
    use chrono::TimeZone;
    use recur_period::{Period, Unit};
    use rust_decimal::Decimal;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().expect("date")
    }

    fn terms() -> Terms {
        Terms {
            period: Period { unit: Unit::Month, count: 1 },
            notice_days: 0,
            tz: chrono_tz::UTC,
            mode: ProrationMode::Day,
        }
    }

    fn sub() -> Subscription {
        Subscription { recurring_amount: Decimal::from(10), version: 3, ..crate::domain::test_subscription() }
    }

    #[test]
    fn renewals_keep_the_anchor_day_after_a_short_month() {
        let mut s = sub();
        let mut ends = Vec::new();
        for _ in 0..4 {
            s = next_period(&s, &terms(), s.next_billing_at.expect("due")).expect("renews");
            assert_eq!(s.next_billing_at, Some(s.current_period_end));
            ends.push(s.current_period_end);
        }
        assert_eq!(ends, vec![at(2023, 3, 31), at(2023, 4, 30), at(2023, 5, 31), at(2023, 6, 30)]);
    }

    #[test]
    fn a_scheduled_change_is_in_force_from_the_period_end() {
        let mut s = sub();
        s.scheduled_change = Some(ScheduledChange {
            offering_id: String::new(),
            rate_id: "rate_2".into(),
            items: vec![Item::new("prod_1", Decimal::from(3))],
            effective_at: at(2023, 2, 28),
            next_recurring_amount: Decimal::from(30),
        });
        let n = next_period(&s, &terms(), at(2023, 2, 28)).expect("renews");
        assert_eq!((n.rate_id.as_str(), n.offering_id.as_str()), ("rate_2", "offr_1"));
        assert_eq!(n.recurring_amount, Decimal::from(30));
        assert!(n.scheduled_change.is_none());
        assert_eq!(n.current_period_start, at(2023, 2, 28));
    }

    fn bill_group() -> BillGroup {
        BillGroup {
            id: "bg_1".into(),
            account_id: "acct_1".into(),
            name: String::new(),
            auto_email_invoice: false,
            collect_automatically: true,
            payment_method_id: "pm_1".into(),
            gateway_customer_id: "cus_1".into(),
            billing_day: 0,
            collection_method: crate::domain::CollectionMethod::Automatic,
            currency: "USD".into(),
            contact_id: String::new(),
            created_at: at(2023, 1, 1),
            updated_at: at(2023, 1, 1),
        }
    }

    fn usage_line(amount: &str) -> InvoiceLine {
        use crate::domain::usage::{Aggregation, ArrearsItem, ClosedPeriod, Meter, RatedUsage, arrears_line};
        let closed = ClosedPeriod {
            subscription_id: "sub_1",
            offering_id: "offr_1",
            rate_id: "rate_1",
            start: at(2023, 1, 31),
            end: at(2023, 2, 28),
        };
        let item = ArrearsItem {
            product_id: "prod_calls".into(),
            name: "Calls".into(),
            meter: Some(Meter { aggregation: Aggregation::Sum, property: String::new() }),
        };
        let amount: Decimal = amount.parse().expect("amount");
        let rated = RatedUsage { amount_without_tax: amount, amount, ..Default::default() };
        arrears_line(closed, &item, Decimal::from(7), rated)
    }

    #[test]
    fn a_closed_periods_usage_comes_first_on_the_next_periods_invoice() {
        let s = next_period(&sub(), &terms(), at(2023, 2, 28)).expect("renews");
        let priced = PricedOffering { amount: Decimal::from(10), ..Default::default() };
        let mut priced = priced;
        priced.items.push(crate::domain::invoice::PricedItem {
            product_id: "prod_1".into(),
            quantity: Decimal::ONE,
            amount_without_tax: Decimal::from(10),
            amount: Decimal::from(10),
            recurring_amount: Decimal::from(10),
            ..Default::default()
        });
        let grace = at(2023, 2, 28) + Duration::hours(1);
        let inv = cycle_invoice(&s, &bill_group(), &priced, vec![usage_line("3.50")], &[], at(2023, 2, 28), grace)
            .expect("invoice");
        assert_eq!(
            (inv.status, inv.reason, inv.next_action_at),
            (InvoiceStatus::Draft, InvoiceReason::SubscriptionCycle, Some(grace))
        );
        assert_eq!(inv.lines.len(), 2);
        assert_eq!(inv.lines[0].kind, LineKind::Usage);
        assert_eq!(
            (inv.lines[0].period_start, inv.lines[0].period_end),
            (Some(at(2023, 1, 31)), Some(at(2023, 2, 28)))
        );
        assert_eq!(
            (inv.lines[1].period_start, inv.lines[1].period_end),
            (Some(at(2023, 2, 28)), Some(at(2023, 3, 31)))
        );
        assert_eq!(inv.amount, "13.50".parse::<Decimal>().expect("d"), "lines add up to the total");
        // Nothing in advance: the usage alone, even at zero (late usage
        // during the grace period still counts), but no usage and nothing
        // else is no invoice.
        let nothing = PricedOffering::default();
        let zero = cycle_invoice(&s, &bill_group(), &nothing, vec![usage_line("0")], &[], at(2023, 2, 28), grace)
            .expect("an invoice at zero");
        assert_eq!((zero.amount, zero.lines.len()), (Decimal::ZERO, 1));
        assert!(cycle_invoice(&s, &bill_group(), &nothing, vec![], &[], at(2023, 2, 28), grace).is_none());
        // A fee discounted to nothing still shows beside the usage, with
        // its discount.
        let mut free = priced.clone();
        free.amount = Decimal::ZERO;
        free.items[0].discount = Decimal::from(10);
        free.items[0].amount = Decimal::ZERO;
        let inv = cycle_invoice(&s, &bill_group(), &free, vec![usage_line("3.50")], &[], at(2023, 2, 28), grace)
            .expect("invoice");
        assert_eq!(inv.lines.len(), 2);
        assert_eq!((inv.lines[1].amount_without_tax, inv.lines[1].discount), (Decimal::from(10), Decimal::from(10)));
        assert_eq!((inv.discount, inv.amount), (Decimal::from(10), "3.50".parse::<Decimal>().expect("d")));
    }

    #[test]
    fn a_last_period_is_invoiced_on_its_own() {
        let s = sub();
        let grace = at(2023, 2, 28) + Duration::hours(1);
        let inv =
            closing_invoice(&s, &bill_group(), vec![usage_line("2.25")], at(2023, 2, 28), grace).expect("invoice");
        assert_eq!((inv.status, inv.reason), (InvoiceStatus::Draft, InvoiceReason::PeriodClose));
        assert_eq!((inv.period_start, inv.period_end), (Some(at(2023, 1, 31)), Some(at(2023, 2, 28))));
        assert_eq!((inv.amount, inv.next_action_at), ("2.25".parse::<Decimal>().expect("d"), Some(grace)));
        assert!(closing_invoice(&s, &bill_group(), vec![], at(2023, 2, 28), grace).is_none(), "nothing in arrears");
    }

    #[test]
    fn what_is_due_follows_the_state_and_what_is_scheduled() {
        let mut s = sub();
        assert_eq!(due_step(&s), Some(Due::Renew));
        s.cancel_at_period_end = true;
        s.expires_at = Some(at(2023, 2, 28));
        assert_eq!(due_step(&s), Some(Due::Cancel));
        // A notice ending later: the periods before it still renew.
        s.expires_at = Some(at(2023, 3, 31));
        assert_eq!(due_step(&s), Some(Due::Renew));
        let mut p = sub();
        p.paused_at = Some(at(2023, 2, 28));
        assert_eq!(due_step(&p), Some(Due::Pause));
        p.state = SubscriptionState::Paused;
        assert_eq!(due_step(&p), None, "no resume date: stays paused");
        p.resume_at = Some(at(2023, 4, 1));
        assert_eq!(due_step(&p), Some(Due::Resume));
        let mut t = sub();
        t.state = SubscriptionState::Trialing;
        let n = next_period(&t, &terms(), at(2023, 2, 28)).expect("trial ends");
        assert_eq!(n.state, SubscriptionState::Active);
        assert_eq!(n.current_period_end, t.current_period_end, "the first paid period is the trial's");
        t.state = SubscriptionState::Canceled;
        assert_eq!(due_step(&t), None);
    }
}
