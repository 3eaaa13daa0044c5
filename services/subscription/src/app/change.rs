//! Changing a contract (seeds 003 and 004): another rate of the same or
//! another offering, quantities changed, components added or removed.
//!
//! PreviewChange and ChangeSubscription compute the change the same way
//! ([`App::price_change`]): pricing prorates it (credit lines for the
//! unused part of what was paid, charge lines for the rest of the period at
//! the new price, by the tenant's DAY or SECOND mode), and a quote of the
//! new contract gives what recurs (its coupons and tax included). Given the
//! same inputs and time, the change makes exactly the preview's amounts.
//!
//! - IMMEDIATE with something due: a proration invoice, the account's
//!   credit consumed first, the rest collected at once.
//! - IMMEDIATE with a net credit: a credit note, its amount added to the
//!   account's credit balance (never lost), which later invoices consume.
//! - IMMEDIATE to a rate with another billing period starts a new period:
//!   the old period's usage and in-arrears items until then are invoiced at
//!   the old contract (a DRAFT, finalized after the grace period). A change
//!   that keeps the period bills its usage at the period end, at the
//!   contract in force then.
//! - END_OF_TERM: the change waits on the subscription (`scheduled_change`)
//!   for the period end, where the billing clock applies it; it can be
//!   dropped until then (`cancel_scheduled_change`).
//! - A change to a free rate applies at once.
//! - Without a timing, the tenant's default (`change_at_period_end`).

use recur_auth::CallContext;
use recur_error::{AppError, AppResult, Violations};
use rust_decimal::Decimal;

use super::mutate::{Changed, Plan, refused};
use super::{App, Idem};
use crate::domain::invoice::adjustment_invoice;
use crate::domain::state::Action;
use crate::domain::{
    Event, Invoice, InvoiceLine, Item, LineKind, ScheduledChange, Subscription, SubscriptionEvent, SubscriptionState,
};
use crate::peers::{ChangePriced, ChangeQuestion, QuoteInput};

/// A change as the caller asks for it.
#[derive(Clone, Debug, Default)]
pub struct ChangeInput {
    /// Empty: keep the rate.
    pub rate: String,
    /// Product and quantity after the change (0 removes it).
    pub items: Vec<(String, String)>,
    /// `None`: the tenant's default.
    pub at_period_end: Option<bool>,
    pub cancel_scheduled: bool,
}

/// What a change would do, as PreviewChange answers.
#[derive(Clone, Debug)]
pub struct ChangePreview {
    pub priced: ChangePriced,
    pub at_period_end: bool,
    /// What recurs after the change (coupons and tax included).
    pub next_recurring: Decimal,
    /// Charged now, after the account's credit.
    pub amount_due_now: Decimal,
    pub credit: Decimal,
    pub credit_applied: Decimal,
    pub next_billing_at: chrono::DateTime<chrono::Utc>,
    pub currency: recur_money::Currency,
    /// The tenant's remittance terms, read with its policy.
    pub due_days: u32,
}

fn invoice_lines(sub: &Subscription, priced: &ChangePriced) -> Vec<InvoiceLine> {
    priced
        .lines
        .iter()
        .filter(|l| !l.amount.is_zero())
        .map(|l| InvoiceLine {
            id: recur_id::new_id(recur_id::Kind::InvoiceLine),
            kind: LineKind::Proration,
            description: l.description.clone(),
            subscription_id: sub.id.clone(),
            offering_id: if l.credit { sub.offering_id.clone() } else { priced.offering_id.clone() },
            rate_id: l.rate_id.clone(),
            product_id: l.product_id.clone(),
            period_start: l.period_start,
            period_end: l.period_end,
            quantity: l.quantity,
            unit_amount: String::new(),
            proration_fraction: crate::domain::invoice::shown_fraction(&l.fraction),
            tiers: Vec::new(),
            amount_without_tax: l.amount,
            discount: Decimal::ZERO,
            tax: Decimal::ZERO,
            tax_rate: String::new(),
            amount: l.amount,
        })
        .collect()
}

impl App {
    /// Prices `change` of `sub` now; see the module docs.
    pub async fn price_change(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        change: &ChangeInput,
    ) -> AppResult<ChangePreview> {
        let mut v = Violations::new();
        for (i, (p, _)) in change.items.iter().enumerate() {
            v.check(!p.is_empty(), format!("change.items[{i}].product_id"), "is required");
        }
        v.check(
            !change.rate.is_empty() || !change.items.is_empty(),
            "change",
            "names a new rate, new quantities, or both",
        );
        v.finish()?;
        sub.state.after(Action::Change).map_err(refused)?;
        if sub.cancel_at_period_end {
            return Err(AppError::failed_precondition(
                "CANCELLATION_SCHEDULED",
                "a subscription that is to end cannot be changed; reactivate it first",
            ));
        }
        let tenant = ctx.tenant_id.as_str();
        let account = self.account_alone(tenant, &sub.account_id, "id").await?;
        let policy = self.catalog.policy(ctx).await?;
        let time_zone = account.zone(&policy.time_zone).to_string();
        // The change names the quantities it changes; the rest stay.
        let mut items: Vec<(String, String)> =
            sub.items.iter().map(|i| (i.product_id.clone(), i.quantity.normalize().to_string())).collect();
        for (key, q) in &change.items {
            // Named by id or by handle; the contract keeps ids.
            let p = if items.iter().any(|(ip, _)| ip == key) {
                key.clone()
            } else {
                self.catalog.product(ctx, key).await?.map(|(id, _)| id).unwrap_or_else(|| key.clone())
            };
            let p = &p;
            match items.iter_mut().find(|(ip, _)| ip == p) {
                Some(slot) => slot.1 = q.clone(),
                None => items.push((p.clone(), q.clone())),
            }
        }
        let new_items = if change.items.is_empty() { Vec::new() } else { items };
        // A custom price stays with its product while the rate does; another
        // rate brings its own prices.
        let same_rate = change.rate.is_empty() || change.rate == sub.rate_id;
        let kept_prices = if same_rate { crate::domain::custom_prices(&sub.items) } else { Vec::new() };
        let now = self.now(tenant);
        let mut at_period_end = change.at_period_end.unwrap_or(policy.change_at_period_end);
        if sub.state == SubscriptionState::Pending || sub.state == SubscriptionState::Trialing {
            // Nothing paid yet: the contract simply becomes the new one.
            at_period_end = false;
        }
        let mut question = ChangeQuestion {
            offering_id: sub.offering_id.clone(),
            rate_id: sub.rate_id.clone(),
            items: sub.items.iter().map(|i| (i.product_id.clone(), i.quantity)).collect(),
            period_start: sub.current_period_start,
            period_end: sub.current_period_end,
            anchor: sub.billing_anchor,
            new_rate: change.rate.clone(),
            new_items,
            custom_prices: crate::domain::custom_prices(&sub.items),
            new_custom_prices: kept_prices.clone(),
            at_period_end,
            // Pricing takes an immediate change inside the period only.
            at: now.clamp(sub.current_period_start, sub.current_period_end - chrono::Duration::microseconds(1)),
            time_zone: time_zone.clone(),
            mode: policy.proration,
        };
        let mut priced = self.pricing.preview_change(ctx, &question).await?;
        if at_period_end && priced.next_recurring.is_zero() {
            // A change to a free rate applies at once.
            at_period_end = false;
            question.at_period_end = false;
            priced = self.pricing.preview_change(ctx, &question).await?;
        }
        let new_rate = if change.rate.is_empty() { sub.rate_id.clone() } else { change.rate.clone() };
        // With no coupon and no tax the new recurring amount is pricing's
        // answer above; otherwise pricing quotes the new contract in full.
        let next_recurring = if sub.coupon_codes.is_empty() && account.billing_address.country.is_empty() {
            priced.next_recurring
        } else {
            self.recurring_after_change(ctx, sub, &account, &priced, new_rate, time_zone, &kept_prices).await?
        };
        let (mut amount_due_now, mut credit, mut credit_applied) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
        if !at_period_end && sub.state != SubscriptionState::Pending && sub.state != SubscriptionState::Trialing {
            if priced.net > Decimal::ZERO {
                let balance = self.credit_balance(tenant, &sub.account_id, sub.currency.code()).await?;
                credit_applied = balance.max(Decimal::ZERO).min(priced.net);
                amount_due_now = priced.net - credit_applied;
            } else {
                credit = -priced.net;
            }
        }
        let next_billing_at = if at_period_end { priced.new_period_start } else { priced.new_period_end };
        priced.custom_prices = kept_prices;
        Ok(ChangePreview {
            priced,
            at_period_end,
            next_recurring,
            amount_due_now,
            credit,
            credit_applied,
            next_billing_at,
            currency: sub.currency,
            due_days: policy.invoice_due_days,
        })
    }

    /// What recurs after a change priced as `priced`, coupons and tax
    /// included, as pricing quotes the new contract.
    #[allow(clippy::too_many_arguments)]
    async fn recurring_after_change(
        &self,
        ctx: &CallContext,
        sub: &Subscription,
        account: &crate::domain::Account,
        priced: &ChangePriced,
        new_rate: String,
        time_zone: String,
        kept_prices: &[(String, crate::domain::CustomPrice)],
    ) -> AppResult<Decimal> {
        let quote = self
            .pricing
            .quote(
                ctx,
                &QuoteInput {
                    offering: priced.offering_id.clone(),
                    rate: new_rate,
                    items: priced.items.iter().map(|(p, q)| (p.clone(), q.normalize().to_string())).collect(),
                    coupon_codes: sub.coupon_codes.clone(),
                    tax_address: account.billing_address.clone(),
                    tax_exempt: account.tax_exempt,
                    compute_tax: !account.billing_address.country.is_empty(),
                    start_date: String::new(),
                    time_zone,
                    continuation: true,
                    coupon_usages: self.coupon_usages_of(&ctx.tenant_id, sub).await?,
                    custom_prices: kept_prices.to_vec(),
                    billing_day: 0,
                },
            )
            .await?;
        Ok(quote.offerings.first().map(|o| o.recurring_amount).unwrap_or(priced.next_recurring))
    }

    pub async fn preview_change(&self, ctx: &CallContext, id: &str, change: &ChangeInput) -> AppResult<ChangePreview> {
        let sub = self.subscription(&ctx.tenant_id, id).await?;
        self.price_change(ctx, &sub, change).await
    }

    pub async fn change(&self, ctx: &CallContext, id: &str, change: &ChangeInput, idem: &Idem) -> AppResult<Changed> {
        self.once(ctx, id, idem, async {
            let tenant = ctx.tenant_id.as_str();
            let sub = self.subscription(tenant, id).await?;
            let now = self.now(tenant);
            if change.cancel_scheduled {
                if !change.rate.is_empty() || !change.items.is_empty() {
                    return Err(AppError::invalid("change", "must be empty to drop the scheduled change"));
                }
                if sub.scheduled_change.is_none() {
                    return Err(AppError::failed_precondition("NO_SCHEDULED_CHANGE", "no change is scheduled"));
                }
                let mut next = sub.clone();
                next.scheduled_change = None;
                next.updated_at = now;
                let event = Event::new(
                    SubscriptionEvent::SubscriptionChanged {
                        subscription_id: sub.id.clone(),
                        rate_id: sub.rate_id.clone(),
                        effective_at: now.to_rfc3339(),
                        scheduled: false,
                    },
                    now,
                );
                return self.commit(ctx, Action::Change, idem, Plan::new(next, None, vec![event])).await;
            }
            let preview = self.price_change(ctx, &sub, change).await?;
            let priced = &preview.priced;
            let new_rate = priced.lines.iter().find(|l| !l.credit).map(|l| l.rate_id.clone());
            let new_rate = new_rate
                .unwrap_or_else(|| if change.rate.is_empty() { sub.rate_id.clone() } else { change.rate.clone() });
            // A METERED product's quantity is its usage: it stays on the
            // contract at 0 (so its usage is billed) unless the change
            // names it with 0 to remove it.
            let billed = self.catalog.arrears_items(ctx, &new_rate).await.map_err(crate::peers::repriced)?;
            let metered = |p: &str| billed.iter().any(|i| i.product_id == p && i.meter.is_some());
            let removed =
                |p: &str| change.items.iter().any(|(k, q)| k == p && q.parse::<Decimal>().is_ok_and(|q| q.is_zero()));
            let items: Vec<Item> = priced
                .items
                .iter()
                .filter(|(p, q)| !q.is_zero() || (metered(p) && !removed(p)))
                .map(|(p, q)| Item {
                    product_id: p.clone(),
                    quantity: *q,
                    custom_price: priced.custom_prices.iter().find(|(cp, _)| cp == p).map(|(_, c)| c.clone()),
                })
                .collect();
            let mut next = sub.clone();
            next.updated_at = now;
            let (mut invoice, mut closing): (Option<Invoice>, Option<Invoice>) = (None, None);
            if preview.at_period_end {
                next.scheduled_change = Some(ScheduledChange {
                    offering_id: priced.offering_id.clone(),
                    rate_id: new_rate.clone(),
                    items,
                    effective_at: priced.effective_at,
                    next_recurring_amount: preview.next_recurring,
                });
            } else {
                next.rate_id = new_rate.clone();
                next.offering_id = priced.offering_id.clone();
                next.items = items;
                next.recurring_amount = preview.next_recurring;
                next.scheduled_change = None;
                if sub.state != SubscriptionState::Pending && sub.state != SubscriptionState::Trialing {
                    if priced.new_period_start != sub.current_period_start {
                        // A new period starts: the old one's usage and
                        // in-arrears items until then, at the old contract.
                        closing = Box::pin(self.closing_or_none(ctx, &sub, priced.new_period_start)).await?;
                    }
                    next.current_period_start = priced.new_period_start;
                    next.current_period_end = priced.new_period_end;
                    next.next_billing_at = Some(priced.new_period_end);
                    if priced.anchor.is_set() {
                        next.billing_anchor = priced.anchor;
                    }
                    let bill_group = self.bill_group(tenant, &sub.bill_group_id).await?;
                    invoice =
                        adjustment_invoice(&next, &bill_group, invoice_lines(&next, priced), now, preview.due_days);
                    if let Some(inv) = &invoice
                        && bill_group.can_charge_automatically()
                        && inv.amount - preview.credit_applied > Decimal::ZERO
                    {
                        self.payments
                            .check_method(
                                ctx,
                                &bill_group.gateway_customer_id,
                                &bill_group.payment_method_id,
                                "bill_group_id",
                            )
                            .await
                            .map_err(|e| {
                                AppError::failed_precondition(e.reason().to_string(), e.message().to_string())
                            })?;
                    }
                }
            }
            let event = Event::new(
                SubscriptionEvent::SubscriptionChanged {
                    subscription_id: sub.id.clone(),
                    rate_id: new_rate,
                    effective_at: priced.effective_at.to_rfc3339(),
                    scheduled: preview.at_period_end,
                },
                now,
            );
            self.commit(ctx, Action::Change, idem, Plan::new(next, invoice, vec![event]).closing(closing)).await
        })
        .await
    }
}
