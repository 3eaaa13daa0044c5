//! Invoices after they are made: paying one now (optionally with another
//! payment method), voiding it, marking it uncollectible; one-off charges
//! (invoiced now, or waiting for a subscription's next invoice); and the
//! preview of a subscription's next invoice.
//!
//! Only an OPEN invoice is paid, voided or marked uncollectible; any other
//! is FAILED_PRECONDITION with the reason `INVOICE_<STATUS>`. Each is
//! written over the status it read, so two calls at once never both act.
//! Voiding gives back the account credit an invoice consumed.

use std::str::FromStr;

use chrono::Duration;
use recur_auth::CallContext;
use recur_error::{AppError, AppResult, Violations};
use recur_storage::idem::{check_replay, insert_once};
use rust_decimal::Decimal;

use super::collect::charge_key;
use super::{App, Idem};
use crate::domain::invoice::first_invoice;
use crate::domain::lifecycle::{self, Terms};
use crate::domain::{
    CreditEntry, Event, Invoice, InvoiceLine, InvoiceReason, InvoiceStatus, LineKind, PendingCharge, SubscriptionEvent,
    SubscriptionState,
};
use crate::peers::QuoteInput;

/// A one-off charge as the caller asks for it.
#[derive(Clone, Debug, Default)]
pub struct OneOffInput {
    pub account_id: String,
    pub bill_group_id: String,
    pub subscription_id: String,
    pub product_id: String,
    pub description: String,
    pub quantity: String,
    /// Decimal amount and its currency code.
    pub unit_amount: Option<(String, String)>,
}

/// What a one-off charge made: an invoice (charged now), or a line waiting
/// for the subscription's next invoice.
#[derive(Clone, Debug)]
pub struct OneOff {
    pub invoice: Option<Invoice>,
    pub payment_id: String,
    pub line_id: String,
}

/// When the billing clock looks at an invoice of `bill_group` made at
/// `now` again: at its due date when the customer pays it (overdue then),
/// never when it is charged at once.
fn inv_due_for_remittance(
    bill_group: &crate::domain::BillGroup,
    now: chrono::DateTime<chrono::Utc>,
    due_days: u32,
) -> Option<chrono::DateTime<chrono::Utc>> {
    (!bill_group.can_charge_automatically()).then(|| now + Duration::days(i64::from(due_days)))
}

fn not_open(inv: &Invoice, what: &str) -> AppError {
    AppError::failed_precondition(
        format!("INVOICE_{}", inv.status.as_str().to_ascii_uppercase()),
        format!("a {} invoice cannot be {what}", inv.status.as_str()),
    )
}

impl App {
    /// Collects OPEN invoice `id` now: the account's credit first, then the
    /// bill group's payment method or `payment_method_id`.
    pub async fn pay_invoice(
        &self,
        ctx: &CallContext,
        id: &str,
        payment_method_id: &str,
        idem: &Idem,
    ) -> AppResult<(Invoice, String)> {
        let tenant = ctx.tenant_id.as_str();
        let mut inv = self.invoice(tenant, id).await?;
        if inv.status == InvoiceStatus::Paid && idem.key.is_some() {
            // A retry of the call that paid it.
            let payment_id = inv.payment_ids.last().cloned().unwrap_or_default();
            return Ok((inv, payment_id));
        }
        if inv.status != InvoiceStatus::Open {
            return Err(not_open(&inv, "paid"));
        }
        let mut bill_group = self.bill_group(tenant, &inv.bill_group_id).await?;
        if !payment_method_id.is_empty() {
            self.payments
                .check_method(ctx, &bill_group.gateway_customer_id, payment_method_id, "payment_method_id")
                .await?;
            bill_group.payment_method_id = payment_method_id.to_string();
        }
        // The account's credit goes first.
        let before = inv.clone();
        let balance = self.credit_balance(tenant, &inv.account_id, inv.currency.code()).await?;
        let taken = inv.apply_credit(balance);
        if !taken.is_zero() {
            let now = self.now(tenant);
            let mut e = CreditEntry::new(
                &inv.account_id,
                inv.currency,
                -taken,
                format!("pay:{}:{}", inv.id, inv.payment_ids.len()),
                now,
            );
            e.invoice_id = inv.id.clone();
            e.subscription_id = inv.subscription_id.clone();
            e.description = "applied to invoice".into();
            let mut events = vec![Event::new(
                SubscriptionEvent::AccountCreditChanged {
                    account_id: inv.account_id.clone(),
                    amount: e.amount.to_string(),
                    currency: inv.currency.code().into(),
                    source: e.source.clone(),
                },
                now,
            )];
            if inv.amount_due().is_zero() {
                inv.status = InvoiceStatus::Paid;
                inv.paid_at = Some(now);
                events.push(Event::new(
                    SubscriptionEvent::InvoicePaid { invoice_id: inv.id.clone(), payment_id: String::new() },
                    now,
                ));
            }
            inv.updated_at = now;
            if !self.repo.update_invoice(tenant, &inv, before.status, before.updated_at, &[e], &events).await? {
                return Err(AppError::aborted("CONCURRENT_CHANGE", "the invoice changed meanwhile; retry"));
            }
            if inv.status == InvoiceStatus::Paid {
                self.settled(ctx, &inv).await?;
                return Ok((inv, String::new()));
            }
        }
        if !bill_group.can_charge_automatically() && payment_method_id.is_empty() {
            return Err(AppError::failed_precondition(
                "NO_PAYMENT_METHOD",
                "the bill group has no payment method to charge; give payment_method_id",
            ));
        }
        // Each attempt has its own key at the gateway (a declined attempt
        // is not answered again); a retry of this call, under its key, is
        // the same attempt.
        let key = match &idem.key {
            Some(k) => format!("{}:pay:{k}", charge_key(&inv.id)),
            None if inv.payment_ids.is_empty() => charge_key(&inv.id),
            None => format!("{}:attempt:{}", charge_key(&inv.id), inv.payment_ids.len() + 1),
        };
        let collected = self.collect_with(ctx, &bill_group, inv, key, false).await?;
        if collected.invoice.status == InvoiceStatus::Paid {
            self.settled(ctx, &collected.invoice).await?;
        }
        Ok((collected.invoice, collected.payment_id))
    }

    /// A subscription PAST_DUE whose invoice is now paid is ACTIVE again.
    pub(crate) async fn settled(&self, ctx: &CallContext, inv: &Invoice) -> AppResult<()> {
        if inv.subscription_id.is_empty() {
            return Ok(());
        }
        let tenant = ctx.tenant_id.as_str();
        let sub = self.subscription(tenant, &inv.subscription_id).await?;
        if sub.state == SubscriptionState::PastDue {
            let at = self.now(tenant);
            let event = Event::new(
                SubscriptionEvent::SubscriptionActivated {
                    subscription_id: sub.id.clone(),
                    account_id: sub.account_id.clone(),
                },
                at,
            );
            self.repo.set_subscription_state(tenant, &sub.id, SubscriptionState::Active, at, &event).await?;
        }
        Ok(())
    }

    /// Voids OPEN invoice `id` (nothing is owed any more; credit it used is
    /// given back), or marks it uncollectible (still owed, no longer
    /// collected).
    pub async fn close_invoice(&self, ctx: &CallContext, id: &str, void: bool) -> AppResult<Invoice> {
        let tenant = ctx.tenant_id.as_str();
        let mut inv = self.invoice(tenant, id).await?;
        let target = if void { InvoiceStatus::Void } else { InvoiceStatus::Uncollectible };
        if inv.status == target {
            return Ok(inv);
        }
        if inv.status != InvoiceStatus::Open && inv.status != InvoiceStatus::Draft {
            return Err(not_open(&inv, if void { "voided" } else { "marked uncollectible" }));
        }
        let before = (inv.status, inv.updated_at);
        let now = self.now(tenant);
        inv.status = target;
        inv.updated_at = now;
        // A voided draft is not finalized or collected by the billing clock.
        inv.next_action_at = None;
        let mut credits = Vec::new();
        let mut events = Vec::new();
        if void && !inv.credit_applied.is_zero() {
            let mut e =
                CreditEntry::new(&inv.account_id, inv.currency, inv.credit_applied, format!("void:{}", inv.id), now);
            e.invoice_id = inv.id.clone();
            e.subscription_id = inv.subscription_id.clone();
            e.description = "returned by a voided invoice".into();
            events.push(super::mutate::credit_event(&e, now));
            credits.push(e);
            inv.credit_applied = Decimal::ZERO;
        }
        events.push(Event::new(
            if void {
                SubscriptionEvent::InvoiceVoided { invoice_id: inv.id.clone(), reason: "voided".into() }
            } else {
                SubscriptionEvent::InvoiceMarkedUncollectible { invoice_id: inv.id.clone() }
            },
            now,
        ));
        if !self.repo.update_invoice(tenant, &inv, before.0, before.1, &credits, &events).await? {
            return Err(AppError::aborted("CONCURRENT_CHANGE", "the invoice changed meanwhile; retry"));
        }
        Ok(inv)
    }

    /// A one-off charge; see the module docs.
    pub async fn one_off(&self, ctx: &CallContext, r: &OneOffInput, idem: &Idem) -> AppResult<OneOff> {
        let tenant = ctx.tenant_id.as_str();
        let mut v = Violations::new();
        v.check(!r.account_id.is_empty(), "account_id", "is required");
        v.check(!r.bill_group_id.is_empty() || !r.subscription_id.is_empty(), "bill_group_id", "is required");
        let quantity = if r.quantity.is_empty() { Ok(Decimal::ONE) } else { Decimal::from_str(&r.quantity) };
        let quantity = quantity.ok().filter(|q| *q > Decimal::ZERO).unwrap_or_else(|| {
            v.add("quantity", "must be a positive decimal");
            Decimal::ONE
        });
        let unit = match &r.unit_amount {
            Some((amount, code)) => match (Decimal::from_str(amount), recur_money::Currency::from_code(code)) {
                (Ok(a), Some(c)) if a > Decimal::ZERO => Some((a, c)),
                (_, None) => {
                    v.add("unit_amount.currency_code", "unknown currency");
                    None
                }
                _ => {
                    v.add("unit_amount.amount", "must be a positive decimal");
                    None
                }
            },
            None => {
                v.add("unit_amount", "is required");
                None
            }
        };
        v.check(!r.description.is_empty() || !r.product_id.is_empty(), "description", "is required without a product");
        v.finish()?;
        let Some((unit_amount, currency)) = unit else { return Err(AppError::internal("validated unit amount")) };
        // Past any ceiling, however large the numbers: refused, not overflowed.
        let ceiling = currency.default_ceiling();
        let too_large = |field: &str| recur_money::AmountTooLarge { field: field.to_string(), ceiling };
        let amount = unit_amount
            .checked_mul(quantity)
            .map(|a| currency.round(a))
            .ok_or_else(|| recur_money::AmountTooLarge::into_error(vec![too_large("quantity")]))?;
        recur_money::check_ceiling("quantity", amount, ceiling)
            .map_err(|e| recur_money::AmountTooLarge::into_error(vec![e]))?;
        let account =
            self.account_alone(tenant, &r.account_id, "account_id").await.map_err(AppError::into_invalid_reference)?;
        let description = if r.description.is_empty() {
            self.catalog.product(ctx, &r.product_id).await?.map(|(_, name)| name).ok_or_else(|| {
                AppError::not_found("product", &r.product_id)
                    .into_invalid_reference()
                    .with_field("product_id", "no such product")
            })?
        } else {
            if !r.product_id.is_empty() && self.catalog.product(ctx, &r.product_id).await?.is_none() {
                return Err(AppError::not_found("product", &r.product_id)
                    .into_invalid_reference()
                    .with_field("product_id", "no such product"));
            }
            r.description.clone()
        };
        let now = self.now(tenant);
        if !r.subscription_id.is_empty() {
            // On the subscription's next invoice.
            let sub = self
                .subscription(tenant, &r.subscription_id)
                .await
                .map_err(|e| e.into_invalid_reference().with_field("subscription_id", "no such subscription"))?;
            if sub.account_id != account.id {
                return Err(AppError::invalid("subscription_id", "is not a subscription of this account"));
            }
            if sub.currency != currency {
                return Err(AppError::invalid("unit_amount.currency_code", "must be the subscription's currency"));
            }
            if matches!(sub.state, SubscriptionState::Canceled | SubscriptionState::Expired) {
                return Err(AppError::failed_precondition(
                    format!("SUBSCRIPTION_{}", sub.state.as_str().to_ascii_uppercase()),
                    "an ended subscription has no next invoice",
                ));
            }
            let charge = PendingCharge {
                id: recur_id::new_id(recur_id::Kind::InvoiceLine),
                account_id: account.id.clone(),
                subscription_id: sub.id.clone(),
                product_id: r.product_id.clone(),
                description,
                quantity,
                unit_amount: unit_amount.normalize().to_string(),
                amount,
                currency,
                created_at: now,
            };
            let stored =
                insert_once(idem.key.is_some(), || self.repo.insert_pending_charge(tenant, &charge, idem.as_repo()))
                    .await?;
            let (charge, _) = check_replay(stored, &idem.hash)?;
            return Ok(OneOff { invoice: None, payment_id: String::new(), line_id: charge.id });
        }
        let bill_group = self.bill_group_of(tenant, &account.id, &r.bill_group_id).await?;
        let policy = self.catalog.policy(ctx).await?;
        let line = InvoiceLine {
            id: recur_id::new_id(recur_id::Kind::InvoiceLine),
            kind: LineKind::OneOff,
            description,
            subscription_id: String::new(),
            offering_id: String::new(),
            rate_id: String::new(),
            product_id: r.product_id.clone(),
            period_start: None,
            period_end: None,
            quantity,
            unit_amount: unit_amount.normalize().to_string(),
            proration_fraction: "1".into(),
            tiers: Vec::new(),
            amount_without_tax: amount,
            discount: Decimal::ZERO,
            tax: Decimal::ZERO,
            tax_rate: String::new(),
            amount,
        };
        let line_id = line.id.clone();
        let mut inv = Invoice {
            id: recur_id::new_id(recur_id::Kind::Invoice),
            number: String::new(),
            account_id: account.id.clone(),
            bill_group_id: bill_group.id.clone(),
            subscription_id: String::new(),
            status: InvoiceStatus::Open,
            currency,
            lines: vec![line],
            amount_without_tax: Decimal::ZERO,
            discount: Decimal::ZERO,
            tax: Decimal::ZERO,
            amount: Decimal::ZERO,
            amount_paid: Decimal::ZERO,
            credit_applied: Decimal::ZERO,
            period_start: None,
            period_end: None,
            issued_at: Some(now),
            due_at: Some(if bill_group.can_charge_automatically() {
                now
            } else {
                now + Duration::days(i64::from(policy.invoice_due_days))
            }),
            paid_at: None,
            payment_ids: Vec::new(),
            created_at: now,
            updated_at: now,
            reason: InvoiceReason::Manual,
            next_action_at: inv_due_for_remittance(&bill_group, now, policy.invoice_due_days),
            attempt_count: 0,
            first_failed_at: None,
            collection_paused: String::new(),
            usage_coupon_left: Some(Vec::new()),
        };
        inv.total_lines();
        if bill_group.can_charge_automatically() {
            self.payments
                .check_method(ctx, &bill_group.gateway_customer_id, &bill_group.payment_method_id, "bill_group_id")
                .await?;
        }
        let events = vec![Event::new(
            SubscriptionEvent::InvoiceCreated { invoice_id: inv.id.clone(), amount: inv.amount.to_string() },
            now,
        )];
        let stored =
            insert_once(idem.key.is_some(), || self.repo.insert_invoice_once(tenant, &inv, idem.as_repo(), &events))
                .await?;
        let (invoice_id, _) = check_replay(stored, &idem.hash)?;
        let inv = self.invoice(tenant, &invoice_id).await?;
        let line_id = inv.lines.first().map(|l| l.id.clone()).unwrap_or(line_id);
        if inv.status == InvoiceStatus::Open && bill_group.can_charge_automatically() {
            let collected = self.collect(ctx, &bill_group, inv).await?;
            return Ok(OneOff { invoice: Some(collected.invoice), payment_id: collected.payment_id, line_id });
        }
        let payment_id = inv.payment_ids.last().cloned().unwrap_or_default();
        Ok(OneOff { invoice: Some(inv), payment_id, line_id })
    }

    /// The next invoice of subscription `id` as it would be made now: the
    /// next period of the contract in force then (a scheduled change
    /// applied), one-off charges waiting for it, the account's credit
    /// applied. Nothing is saved.
    pub async fn upcoming_invoice(&self, ctx: &CallContext, id: &str) -> AppResult<Invoice> {
        let tenant = ctx.tenant_id.as_str();
        let sub = self.subscription(tenant, id).await?;
        if matches!(sub.state, SubscriptionState::Canceled | SubscriptionState::Expired | SubscriptionState::Paused)
            || sub.cancel_at_period_end
            || lifecycle::pause_scheduled(&sub)
        {
            return Err(AppError::failed_precondition(
                "NO_UPCOMING_INVOICE",
                "the subscription is not invoiced again (it ends, or is paused)",
            ));
        }
        if sub.state != SubscriptionState::Pending {
            // Exactly what the billing clock will make at the period end.
            let at = sub.next_billing_at.unwrap_or(sub.current_period_end);
            if let Some(mut inv) = self.renewal(ctx, &sub, at).await?.invoice {
                inv.id = String::new();
                inv.issued_at = Some(at);
                inv.next_action_at = None;
                inv.created_at = self.now(tenant);
                inv.updated_at = inv.created_at;
                let balance = self.credit_balance(tenant, &sub.account_id, sub.currency.code()).await?;
                inv.apply_credit(balance);
                return Ok(inv);
            }
        }
        let account = self.account_alone(tenant, &sub.account_id, "id").await?;
        let bill_group = self.bill_group(tenant, &sub.bill_group_id).await?;
        let policy = self.catalog.policy(ctx).await?;
        let mut next = sub.clone();
        if let Some(change) = &sub.scheduled_change {
            next.rate_id = change.rate_id.clone();
            next.items = change.items.clone();
        }
        let rate = self.catalog.rate_terms(ctx, &next.rate_id).await?;
        let zone = account.zone(&policy.time_zone).to_string();
        let tz = account.tz(&policy.time_zone);
        let terms = Terms { period: rate.period, notice_days: rate.notice_days, tz, mode: policy.proration };
        // A PENDING or trialing contract is invoiced first at its period's
        // start; a running one at its period's end, for the period after.
        let (start, end) = if matches!(sub.state, SubscriptionState::Pending | SubscriptionState::Trialing) {
            (sub.current_period_start, sub.current_period_end)
        } else {
            let start = sub.current_period_end;
            (start, lifecycle::period_end_at_or_after(&sub, &terms, start + Duration::microseconds(1)))
        };
        let quote = self
            .pricing
            .quote(
                ctx,
                &QuoteInput {
                    offering: match &sub.scheduled_change {
                        Some(c) if !c.offering_id.is_empty() => c.offering_id.clone(),
                        _ => next.offering_id.clone(),
                    },
                    rate: next.rate_id.clone(),
                    items: next
                        .items
                        .iter()
                        .map(|i| (i.product_id.clone(), i.quantity.normalize().to_string()))
                        .collect(),
                    coupon_codes: next.coupon_codes.clone(),
                    tax_address: account.billing_address.clone(),
                    tax_exempt: account.tax_exempt,
                    compute_tax: !account.billing_address.country.is_empty(),
                    start_date: String::new(),
                    time_zone: zone,
                    continuation: sub.state != SubscriptionState::Pending,
                    coupon_usages: self.coupon_usages_of(tenant, &sub).await?,
                    custom_prices: crate::domain::custom_prices(&next.items),
                    billing_day: 0,
                },
            )
            .await?;
        let offering = quote.offerings.first().ok_or_else(|| AppError::internal("quote without offering"))?;
        next.current_period_start = start;
        next.current_period_end = end;
        let now = self.now(tenant);
        let mut inv =
            first_invoice(&next, &bill_group, offering, now, policy.invoice_due_days).unwrap_or_else(|| Invoice {
                id: String::new(),
                number: String::new(),
                account_id: sub.account_id.clone(),
                bill_group_id: sub.bill_group_id.clone(),
                subscription_id: sub.id.clone(),
                status: InvoiceStatus::Draft,
                currency: sub.currency,
                lines: Vec::new(),
                amount_without_tax: Decimal::ZERO,
                discount: Decimal::ZERO,
                tax: Decimal::ZERO,
                amount: Decimal::ZERO,
                amount_paid: Decimal::ZERO,
                credit_applied: Decimal::ZERO,
                period_start: Some(start),
                period_end: Some(end),
                issued_at: None,
                due_at: None,
                paid_at: None,
                payment_ids: Vec::new(),
                created_at: now,
                updated_at: now,
                reason: InvoiceReason::SubscriptionCycle,
                next_action_at: None,
                attempt_count: 0,
                first_failed_at: None,
                collection_paused: String::new(),
                usage_coupon_left: Some(Vec::new()),
            });
        for pending in self.repo.pending_charges(tenant, &sub.id).await? {
            inv.lines.push(InvoiceLine {
                id: pending.id.clone(),
                kind: LineKind::OneOff,
                description: pending.description.clone(),
                subscription_id: sub.id.clone(),
                offering_id: String::new(),
                rate_id: String::new(),
                product_id: pending.product_id.clone(),
                period_start: None,
                period_end: None,
                quantity: pending.quantity,
                unit_amount: pending.unit_amount.clone(),
                proration_fraction: "1".into(),
                tiers: Vec::new(),
                amount_without_tax: pending.amount,
                discount: Decimal::ZERO,
                tax: Decimal::ZERO,
                tax_rate: String::new(),
                amount: pending.amount,
            });
        }
        inv.total_lines();
        // A preview: no id or number yet, dated when it will be issued.
        inv.id = String::new();
        inv.status = InvoiceStatus::Draft;
        inv.issued_at = Some(start);
        inv.due_at = None;
        inv.created_at = now;
        inv.updated_at = now;
        let balance = self.credit_balance(tenant, &sub.account_id, sub.currency.code()).await?;
        inv.apply_credit(balance);
        Ok(inv)
    }
}
