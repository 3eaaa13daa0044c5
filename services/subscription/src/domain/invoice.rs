//! Invoices made from what pricing quoted: one line per charged item of a
//! priced offering, its totals the sums of its (already rounded) lines, so
//! an invoice always adds up and equals the quote it came from.

use chrono::{DateTime, Duration, Utc};
use recur_money::Currency;
use rust_decimal::Decimal;

use super::{BillGroup, Invoice, InvoiceLine, InvoiceReason, InvoiceStatus, LineKind, Subscription, TierLine};

/// What pricing answered for one offering of a cart, in domain terms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PricedOffering {
    pub offering_id: String,
    pub rate_id: String,
    pub items: Vec<PricedItem>,
    pub amount: Decimal,
    pub recurring_amount: Decimal,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    pub next_billing_at: Option<DateTime<Utc>>,
    /// The anchor pricing gives the contract (day 0: none given).
    pub billing_anchor: super::BillingAnchor,
    /// The part of a whole period the first period is ("1" unless a
    /// billing day shortened it).
    pub first_fraction: String,
}

impl PricedOffering {
    /// The items a contract priced by this offering keeps: every priced
    /// product with its quantity (setup fees are not items).
    pub fn contract_items(&self) -> Vec<super::Item> {
        self.items.iter().filter(|i| !i.setup_fee).map(|i| super::Item::new(i.product_id.clone(), i.quantity)).collect()
    }

    /// The anchor a contract made from this offering keeps: pricing's, or
    /// (from a pricing that gives none) the day of `start_date`.
    pub fn anchor_or(&self, start_date: chrono::NaiveDate) -> super::BillingAnchor {
        if self.billing_anchor.is_set() { self.billing_anchor } else { super::BillingAnchor::of(start_date, false) }
    }
}

/// A quote's item.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PricedItem {
    pub product_id: String,
    pub description: String,
    /// A setup fee rather than a product.
    pub setup_fee: bool,
    pub quantity: Decimal,
    pub unit_amount: String,
    pub tiers: Vec<TierLine>,
    pub tax_rate: String,
    pub amount_without_tax: Decimal,
    pub discount: Decimal,
    pub tax: Decimal,
    pub amount: Decimal,
    pub recurring_amount: Decimal,
}

/// A whole quote: its currency, start and total, and its offerings.
#[derive(Clone, Debug, PartialEq)]
pub struct PricedQuote {
    pub currency: Currency,
    pub start: Option<DateTime<Utc>>,
    pub start_date: String,
    pub amount: Decimal,
    pub offerings: Vec<PricedOffering>,
    /// Each FIXED_AMOUNT coupon discounting the invoice, with what of its
    /// amount the quoted lines left (for the invoice's in-arrears lines).
    pub fixed_left: Vec<(String, Decimal)>,
}

/// A line's proration fraction as it is shown and kept: six decimal
/// places (the amount was computed from the exact fraction; a long run of
/// digits on a line reads like a card number to the card-data guard).
pub fn shown_fraction(exact: &str) -> String {
    match exact.parse::<Decimal>() {
        Ok(f) => f.round_dp(6).normalize().to_string(),
        Err(_) => exact.to_string(),
    }
}

/// How long a bill group that pays by remittance has to pay an invoice,
/// unless the tenant says otherwise.
pub const REMITTANCE_TERMS_DAYS: u32 = 30;

/// The first invoice of `sub` on `bill_group`: what is due now for the
/// priced offering, one line per item that costs something, due now or
/// (remittance) after `due_days`. `None` when nothing is due.
pub fn first_invoice(
    sub: &Subscription,
    bill_group: &BillGroup,
    priced: &PricedOffering,
    now: DateTime<Utc>,
    due_days: u32,
) -> Option<Invoice> {
    if priced.amount.is_zero() {
        return None;
    }
    let mut inv = period_invoice(sub, bill_group, priced_lines(sub, priced), now, due_days);
    inv.total_lines();
    Some(inv)
}

/// The lines of the priced offering for `sub`'s current period: one per
/// item that costs something before its discounts (a fully discounted item
/// shows, with its discount).
pub fn priced_lines(sub: &Subscription, priced: &PricedOffering) -> Vec<InvoiceLine> {
    priced
        .items
        .iter()
        .filter(|i| !i.amount.is_zero() || !i.amount_without_tax.is_zero())
        .map(|i| {
            let kind = if i.setup_fee {
                LineKind::SetupFee
            } else if i.recurring_amount.is_zero() {
                LineKind::OneOff
            } else {
                LineKind::Subscription
            };
            let in_period = kind == LineKind::Subscription;
            InvoiceLine {
                id: recur_id::new_id(recur_id::Kind::InvoiceLine),
                kind,
                description: i.description.clone(),
                subscription_id: sub.id.clone(),
                offering_id: priced.offering_id.clone(),
                rate_id: priced.rate_id.clone(),
                product_id: i.product_id.clone(),
                period_start: if in_period { Some(sub.current_period_start) } else { None },
                period_end: if in_period { Some(sub.current_period_end) } else { None },
                quantity: i.quantity,
                unit_amount: i.unit_amount.clone(),
                proration_fraction: if in_period { shown_fraction(&priced.first_fraction) } else { "1".into() },
                tiers: i.tiers.clone(),
                amount_without_tax: i.amount_without_tax,
                discount: i.discount,
                tax: i.tax,
                tax_rate: i.tax_rate.clone(),
                amount: i.amount,
            }
        })
        .collect()
}

/// An OPEN invoice of `sub`'s current period with `lines` (not totaled
/// yet), made at `now`, due now on a bill group that pays automatically,
/// else after `due_days`.
pub fn period_invoice(
    sub: &Subscription,
    bill_group: &BillGroup,
    lines: Vec<InvoiceLine>,
    now: DateTime<Utc>,
    due_days: u32,
) -> Invoice {
    Invoice {
        id: recur_id::new_id(recur_id::Kind::Invoice),
        number: String::new(),
        account_id: sub.account_id.clone(),
        bill_group_id: bill_group.id.clone(),
        subscription_id: sub.id.clone(),
        status: InvoiceStatus::Open,
        currency: sub.currency,
        lines,
        amount_without_tax: Decimal::ZERO,
        discount: Decimal::ZERO,
        tax: Decimal::ZERO,
        amount: Decimal::ZERO,
        amount_paid: Decimal::ZERO,
        period_start: Some(sub.current_period_start),
        period_end: Some(sub.current_period_end),
        issued_at: Some(now),
        due_at: Some(if bill_group.can_charge_automatically() {
            now
        } else {
            now + Duration::days(i64::from(due_days))
        }),
        paid_at: None,
        payment_ids: Vec::new(),
        created_at: now,
        updated_at: now,
        reason: InvoiceReason::SubscriptionCreate,
        // Paid by the customer: the billing clock finds it overdue then.
        next_action_at: (!bill_group.can_charge_automatically()).then(|| now + Duration::days(i64::from(due_days))),
        attempt_count: 0,
        first_failed_at: None,
        collection_paused: String::new(),
        usage_coupon_left: Some(Vec::new()),
        credit_applied: Decimal::ZERO,
    }
}

/// The invoice of a change made during a period (`lines`, each already
/// rounded, credits negative): a charge when they add up to more than zero
/// (OPEN, due now on an automatic bill group, else after `due_days`), a
/// credit note when they add up to zero or less (PAID at once: what it
/// credits goes to the account's credit balance, never lost). `None`
/// without lines.
pub fn adjustment_invoice(
    sub: &Subscription,
    bill_group: &BillGroup,
    lines: Vec<InvoiceLine>,
    now: DateTime<Utc>,
    due_days: u32,
) -> Option<Invoice> {
    if lines.is_empty() {
        return None;
    }
    let mut inv = Invoice {
        id: recur_id::new_id(recur_id::Kind::Invoice),
        number: String::new(),
        account_id: sub.account_id.clone(),
        bill_group_id: bill_group.id.clone(),
        subscription_id: sub.id.clone(),
        status: InvoiceStatus::Open,
        currency: sub.currency,
        period_start: lines.iter().filter_map(|l| l.period_start).min(),
        period_end: lines.iter().filter_map(|l| l.period_end).max(),
        lines,
        amount_without_tax: Decimal::ZERO,
        discount: Decimal::ZERO,
        tax: Decimal::ZERO,
        amount: Decimal::ZERO,
        amount_paid: Decimal::ZERO,
        credit_applied: Decimal::ZERO,
        issued_at: Some(now),
        due_at: Some(if bill_group.can_charge_automatically() {
            now
        } else {
            now + Duration::days(i64::from(due_days))
        }),
        paid_at: None,
        payment_ids: Vec::new(),
        created_at: now,
        updated_at: now,
        reason: InvoiceReason::SubscriptionUpdate,
        next_action_at: (!bill_group.can_charge_automatically()).then(|| now + Duration::days(i64::from(due_days))),
        attempt_count: 0,
        first_failed_at: None,
        collection_paused: String::new(),
        usage_coupon_left: Some(Vec::new()),
    };
    inv.total_lines();
    if inv.amount <= Decimal::ZERO {
        inv.status = InvoiceStatus::Paid;
        inv.paid_at = Some(now);
        inv.due_at = Some(now);
        inv.next_action_at = None;
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::domain::{BillingAnchor, CollectionMethod};

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("literal")
    }

    fn item(product: &str, amount: &str, tax: &str, recurring: bool) -> PricedItem {
        PricedItem {
            product_id: product.into(),
            quantity: Decimal::ONE,
            amount_without_tax: d(amount),
            tax: d(tax),
            amount: d(amount) + d(tax),
            recurring_amount: if recurring { d(amount) } else { Decimal::ZERO },
            ..Default::default()
        }
    }

    fn fixtures(now: DateTime<Utc>) -> (Subscription, BillGroup) {
        let sub = Subscription {
            recurring_amount: d("100"),
            start_date: now.date_naive(),
            billing_anchor: BillingAnchor::of(now.date_naive(), false),
            current_period_start: now,
            current_period_end: now + Duration::days(30),
            next_billing_at: None,
            activated_at: Some(now),
            created_at: now,
            updated_at: now,
            ..crate::domain::test_subscription()
        };
        let bg = BillGroup {
            id: "bg_1".into(),
            account_id: "acct_1".into(),
            name: String::new(),
            auto_email_invoice: true,
            collect_automatically: false,
            payment_method_id: String::new(),
            gateway_customer_id: String::new(),
            billing_day: 0,
            collection_method: CollectionMethod::Remittance,
            currency: "USD".into(),
            contact_id: String::new(),
            created_at: now,
            updated_at: now,
        };
        (sub, bg)
    }

    #[test]
    fn a_first_invoice_is_the_sum_of_its_lines_and_skips_free_items() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        let (sub, bg) = fixtures(now);
        let mut setup = item("prod_setup", "25.00", "0", false);
        setup.setup_fee = true;
        let priced = PricedOffering {
            offering_id: "offr_1".into(),
            rate_id: "rate_1".into(),
            items: vec![
                item("prod_1", "33.33", "2.75", true),
                item("prod_2", "33.34", "2.75", true),
                item("prod_free", "0", "0", true),
                setup,
            ],
            amount: d("97.17"),
            ..Default::default()
        };
        let inv = first_invoice(&sub, &bg, &priced, now, REMITTANCE_TERMS_DAYS).expect("something due");
        assert_eq!(inv.lines.len(), 3, "the free item makes no line");
        assert_eq!(inv.amount, d("97.17"));
        assert_eq!(inv.tax, d("5.50"));
        assert_eq!(inv.lines[2].kind, LineKind::SetupFee);
        assert_eq!(inv.lines[2].period_start, None);
        assert_eq!(inv.due_at, Some(now + Duration::days(30)), "remittance: 30 days to pay");
        assert!(first_invoice(&sub, &bg, &PricedOffering::default(), now, REMITTANCE_TERMS_DAYS).is_none());
    }
}
