//! Subscribing: price the cart, store the subscription with its first
//! invoice and events in one transaction, then collect the invoice.
//!
//! A call that fails leaves nothing behind: everything that can refuse the
//! request (the account, the bill group, the price, the gateway customer
//! and payment method it will be charged on) is checked before anything is
//! written. Should the charge still be refused as the caller's mistake after
//! the write (the payment method was removed in between), the invoice is
//! voided and the subscription canceled in one transaction, with events
//! saying why, before the error is returned.

use chrono::NaiveDate;
use recur_auth::CallContext;
use recur_error::{AppError, AppResult, Violations};
use recur_storage::idem::{check_replay, insert_once};
use tonic::Code;

use super::{App, Idem};
use crate::domain::invoice::first_invoice;
use crate::domain::{
    CustomPrice, Event, Invoice, InvoiceStatus, Item, Metadata, Subscription, SubscriptionEvent, SubscriptionState,
};
use crate::peers::QuoteInput;

/// A new subscription, as the caller describes it.
#[derive(Clone, Debug, Default)]
pub struct SubscribeInput {
    pub account_id: String,
    pub bill_group_id: String,
    pub offering: String,
    pub rate: String,
    /// Product and quantity as given (an empty quantity takes the default).
    pub items: Vec<(String, String)>,
    /// Product (as in `items`) → the price agreed for it.
    pub custom_prices: Vec<(String, CustomPrice)>,
    pub start_date: String,
    pub coupon_codes: Vec<String>,
    pub metadata: Metadata,
    pub custom_id: String,
    pub pending: bool,
    pub quote_id: String,
}

/// What subscribing made: the subscription, its first invoice (when
/// something was due) and the payment that collected it (if any).
#[derive(Clone, Debug)]
pub struct Subscribed {
    pub subscription: Subscription,
    pub invoice: Option<Invoice>,
    pub payment_id: String,
}

impl App {
    pub async fn subscribe(&self, ctx: &CallContext, r: &SubscribeInput, idem: &Idem) -> AppResult<Subscribed> {
        let tenant = ctx.tenant_id.as_str();
        let mut v = Violations::new();
        v.check(!r.account_id.is_empty(), "account_id", "is required");
        v.check(!r.bill_group_id.is_empty(), "bill_group_id", "is required");
        v.check(!r.offering.is_empty(), "offering", "is required");
        v.check(!r.rate.is_empty(), "rate", "is required");
        v.check(
            r.start_date.is_empty() || NaiveDate::parse_from_str(&r.start_date, "%Y-%m-%d").is_ok(),
            "start_date",
            "must be a date as YYYY-MM-DD",
        );
        for (i, (product, _)) in r.items.iter().enumerate() {
            v.check(!product.is_empty(), format!("items[{i}].product_id"), "is required");
        }
        v.finish()?;

        // The key, the account and the bill group in one read. A retry of a
        // request that made its subscription collects it again (the gateway
        // answers the invoice's key with the same payment).
        let found = self.repo.create_context(tenant, idem.key.as_deref(), &r.account_id, &r.bill_group_id).await?;
        if found.replayed
            && let Some(key) = &idem.key
            && let Some(stored) = self.repo.subscription_by_key(tenant, key).await?
        {
            let (sub, _) = check_replay(stored, &idem.hash)?;
            return self.collect_first(ctx, sub).await;
        }

        let account = found
            .account
            .ok_or_else(|| super::accounts::no_account(&r.account_id, "account_id").into_invalid_reference())?;
        let bill_group = super::accounts::of_account(found.bill_group, &account.id, &r.bill_group_id)?;

        let start_date =
            if r.start_date.is_empty() { self.quote_today(ctx, &account).await? } else { r.start_date.clone() };
        // Coupons are counted here; pricing refuses one used up.
        let (coupon_usages, redeem) =
            self.coupon_usages(ctx, &r.coupon_codes, &|i| format!("coupon_codes[{i}]")).await?;
        let quote = self
            .pricing
            .quote(
                ctx,
                &QuoteInput {
                    offering: r.offering.clone(),
                    rate: r.rate.clone(),
                    items: r.items.clone(),
                    coupon_codes: r.coupon_codes.clone(),
                    tax_address: account.billing_address.clone(),
                    tax_exempt: account.tax_exempt,
                    compute_tax: !account.billing_address.country.is_empty(),
                    start_date,
                    time_zone: account.time_zone.clone(),
                    continuation: false,
                    coupon_usages,
                    custom_prices: r.custom_prices.clone(),
                    billing_day: bill_group.billing_day,
                },
            )
            .await?;
        let offering = quote.offerings.first().ok_or_else(|| AppError::internal("quote without offering"))?;
        let now = self.now(tenant);
        let period_start = offering.period_start.ok_or_else(|| AppError::internal("quote without period"))?;
        let period_end = offering.period_end.ok_or_else(|| AppError::internal("quote without period"))?;
        let start = quote.start.unwrap_or(period_start);
        let start_date = NaiveDate::parse_from_str(&quote.start_date, "%Y-%m-%d").map_err(AppError::internal)?;
        let state = if r.pending || start > now {
            SubscriptionState::Pending
        } else if offering.trial_end.is_some() {
            SubscriptionState::Trialing
        } else {
            SubscriptionState::Active
        };
        let billing_anchor = offering.anchor_or(start_date);
        let mut items = offering.contract_items();
        self.attach_custom_prices(ctx, &mut items, &r.custom_prices).await?;
        let sub = Subscription {
            id: recur_id::new_id(recur_id::Kind::Subscription),
            custom_id: (!r.custom_id.is_empty()).then(|| r.custom_id.clone()),
            account_id: account.id.clone(),
            bill_group_id: bill_group.id.clone(),
            offering_id: offering.offering_id.clone(),
            rate_id: offering.rate_id.clone(),
            state,
            items,
            coupon_codes: r.coupon_codes.clone(),
            currency: quote.currency,
            recurring_amount: offering.recurring_amount,
            start_date,
            billing_anchor,
            metadata: r.metadata.clone(),
            cancel_at_period_end: false,
            current_period_start: period_start,
            current_period_end: period_end,
            trial_start: offering.trial_end.map(|_| start),
            trial_end: offering.trial_end,
            // A contract starting later is started by the billing clock; one
            // agreed as pending waits for ActivateSubscription.
            next_billing_at: match state {
                SubscriptionState::Pending if r.pending => None,
                SubscriptionState::Pending => Some(start),
                _ => offering.next_billing_at,
            },
            activated_at: (state != SubscriptionState::Pending).then_some(now),
            canceled_at: None,
            expires_at: None,
            quote_id: r.quote_id.clone(),
            scheduled_change: None,
            paused_at: None,
            resume_at: None,
            cancel_reason: String::new(),
            cancel_comment: String::new(),
            previous_billing_at: None,
            parked_reason: String::new(),
            version: 0,
            created_at: now,
            updated_at: now,
        };

        // The first invoice: what is due now, one line per charged item.
        let invoice = if state == SubscriptionState::Pending {
            None
        } else {
            first_invoice(&sub, &bill_group, offering, now, self.due_days(ctx, &bill_group).await?)
        };
        if let Some(inv) = &invoice {
            // The invoice is the sum of its lines; so is the quote. They agree.
            if inv.amount != quote.amount {
                return Err(AppError::internal(format!(
                    "invoice total {} differs from quote {}",
                    inv.amount, quote.amount
                )));
            }
            // Whatever will be charged must be chargeable: checked before
            // anything is written, so a refusal leaves nothing behind.
            if bill_group.can_charge_automatically() && !inv.amount_due().is_zero() {
                self.payments
                    .check_method(ctx, &bill_group.gateway_customer_id, &bill_group.payment_method_id, "bill_group_id")
                    .await?;
            }
        }

        let mut events = vec![Event::new(
            SubscriptionEvent::SubscriptionCreated {
                subscription_id: sub.id.clone(),
                account_id: sub.account_id.clone(),
                state: sub.state.as_str().to_string(),
            },
            now,
        )];
        if let Some(inv) = &invoice {
            events.push(Event::new(
                SubscriptionEvent::InvoiceCreated { invoice_id: inv.id.clone(), amount: inv.amount.to_string() },
                now,
            ));
        }
        let stored = insert_once(idem.key.is_some(), || {
            self.repo.insert_subscription(tenant, &sub, invoice.as_ref(), idem.as_repo(), &redeem, &events)
        })
        .await
        .map_err(custom_id_taken)?;
        let (sub, created) = check_replay(stored, &idem.hash)?;
        if !created {
            return self.collect_first(ctx, sub).await;
        }
        // Just written: the invoice is as built here, with its number.
        let invoice = match invoice {
            Some(mut inv) => {
                inv.number = self.repo.invoice_number(tenant, &inv.id).await?;
                Some(inv)
            }
            None => None,
        };
        self.collect_stored(ctx, sub, invoice, bill_group).await
    }

    /// Sets the custom prices given by product id or handle on `items`
    /// (which pricing answered with ids).
    pub(crate) async fn attach_custom_prices(
        &self,
        ctx: &CallContext,
        items: &mut [Item],
        given: &[(String, CustomPrice)],
    ) -> AppResult<()> {
        for (key, price) in given {
            let id = if items.iter().any(|i| &i.product_id == key) {
                key.clone()
            } else {
                self.catalog.product(ctx, key).await?.map(|(id, _)| id).unwrap_or_default()
            };
            if let Some(item) = items.iter_mut().find(|i| i.product_id == id) {
                item.custom_price = Some(price.clone());
            }
        }
        Ok(())
    }

    /// Collects the first invoice of a stored subscription (again, on a
    /// retry: the gateway answers the invoice's key with the same payment).
    pub(crate) async fn collect_first(&self, ctx: &CallContext, sub: Subscription) -> AppResult<Subscribed> {
        let tenant = ctx.tenant_id.as_str();
        let mut first = self.repo.invoices_of_subscription(tenant, &sub.id).await?.into_iter().next();
        if let Some(inv) = first.as_mut().filter(|i| i.number.is_empty()) {
            // Its numbering did not finish (the retry of a call that failed
            // after its commit): finish it.
            inv.number = self.repo.invoice_number(tenant, &inv.id).await?;
        }
        let bill_group = self.bill_group(tenant, &sub.bill_group_id).await?;
        self.collect_stored(ctx, sub, first, bill_group).await
    }

    /// Collects `first`, the first invoice of stored subscription `sub`.
    async fn collect_stored(
        &self,
        ctx: &CallContext,
        mut sub: Subscription,
        first: Option<Invoice>,
        bill_group: crate::domain::BillGroup,
    ) -> AppResult<Subscribed> {
        let tenant = ctx.tenant_id.as_str();
        let Some(inv) = first else {
            return Ok(Subscribed { subscription: sub, invoice: None, payment_id: String::new() });
        };
        let chargeable = inv.status == InvoiceStatus::Open
            && bill_group.can_charge_automatically()
            && !inv.amount_due().is_zero()
            && sub.state != SubscriptionState::Canceled;
        if !chargeable {
            let payment_id = inv.payment_ids.last().cloned().unwrap_or_default();
            return Ok(Subscribed { subscription: sub, invoice: Some(inv), payment_id });
        }
        let collected = match self.collect(ctx, &bill_group, inv.clone()).await {
            Ok(c) => c,
            Err(e) if is_callers_fault(&e) => {
                // Refused as the caller's mistake after the subscription was
                // written: undo it, visibly, before answering.
                let reason = e.reason().to_ascii_lowercase();
                self.undo_subscription(tenant, &sub, &inv, &reason).await?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if collected.failed {
            self.past_due(tenant, &mut sub, &collected.invoice.id).await?;
        }
        Ok(Subscribed { subscription: sub, invoice: Some(collected.invoice), payment_id: collected.payment_id })
    }

    /// Voids `inv` and cancels `sub`, with events naming `reason`.
    async fn undo_subscription(&self, tenant: &str, sub: &Subscription, inv: &Invoice, reason: &str) -> AppResult<()> {
        let at = self.now(tenant);
        let events = [
            Event::new(SubscriptionEvent::InvoiceVoided { invoice_id: inv.id.clone(), reason: reason.into() }, at),
            Event::new(
                SubscriptionEvent::SubscriptionCanceled { subscription_id: sub.id.clone(), reason: reason.into() },
                at,
            ),
        ];
        self.repo.void_and_cancel(tenant, &sub.id, &inv.id, at, &events).await?;
        Ok(())
    }
}

/// A new subscription refused by the database's unique index on the
/// tenant's custom ids (the idempotency key's is handled by `insert_once`).
pub(crate) fn custom_id_taken(e: recur_storage::StorageError) -> AppError {
    if e.is_unique() {
        AppError::already_exists("CUSTOM_ID_TAKEN", "another subscription has this custom_id")
            .with_field("custom_id", "already in use")
    } else {
        e.into()
    }
}

/// Whether a peer's refusal is about the request (and will not succeed when
/// retried as is), rather than a failure of the system.
fn is_callers_fault(e: &AppError) -> bool {
    matches!(e.code(), Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition)
}
