//! Activating a PENDING subscription (`pending: true` at creation: a
//! contract agreed before it starts): its first period starts now, priced
//! now, and its first invoice is made and collected as at creation.

use recur_auth::CallContext;
use recur_error::{AppError, AppResult};
use recur_storage::idem::{Stored, check_replay};

use super::subscribe::Subscribed;
use super::{App, Idem};
use crate::domain::invoice::first_invoice;
use crate::domain::state::Action;
use crate::domain::{Event, SubscriptionEvent, SubscriptionState};
use crate::peers::QuoteInput;

impl App {
    pub async fn activate(&self, ctx: &CallContext, id: &str, idem: &Idem) -> AppResult<Subscribed> {
        let tenant = ctx.tenant_id.as_str();
        // A retry of an activation returns what it did.
        if let Some(key) = &idem.key
            && let Some((sub_id, hash)) = self.repo.mutation_by_key(tenant, key).await?
        {
            check_replay(Stored::existing((), hash), &idem.hash)?;
            if sub_id != id {
                return Err(AppError::failed_precondition(
                    "IDEMPOTENCY_KEY_REUSED",
                    "this idempotency key was used for a different request",
                ));
            }
            let sub = self.subscription(tenant, id).await?;
            return self.collect_first(ctx, sub).await;
        }
        let mut sub = self.subscription(tenant, id).await?;
        let next = sub.state.after(Action::Activate).map_err(|r| AppError::failed_precondition(r.reason, r.message))?;
        let (account, _) = self.account(tenant, &sub.account_id, "id").await?;
        let bill_group = self.bill_group(tenant, &sub.bill_group_id).await?;
        let quote = self
            .pricing
            .quote(
                ctx,
                &QuoteInput {
                    offering: sub.offering_id.clone(),
                    rate: sub.rate_id.clone(),
                    items: sub
                        .items
                        .iter()
                        .map(|i| (i.product_id.clone(), i.quantity.normalize().to_string()))
                        .collect(),
                    coupon_codes: sub.coupon_codes.clone(),
                    tax_address: account.billing_address.clone(),
                    tax_exempt: account.tax_exempt,
                    compute_tax: !account.billing_address.country.is_empty(),
                    start_date: String::new(),
                    time_zone: account.time_zone.clone(),
                },
            )
            .await
            // The contract was priced once; it must price again to start.
            .map_err(|e| {
                if e.code() == tonic::Code::InvalidArgument {
                    AppError::failed_precondition(e.reason().to_string(), e.message().to_string())
                } else {
                    e
                }
            })?;
        let offering = quote.offerings.first().ok_or_else(|| AppError::internal("quote without offering"))?;
        let now = self.clock.now_micros();
        let start = offering.period_start.ok_or_else(|| AppError::internal("quote without period"))?;
        sub.state = if offering.trial_end.is_some() { SubscriptionState::Trialing } else { next };
        sub.start_date =
            chrono::NaiveDate::parse_from_str(&quote.start_date, "%Y-%m-%d").map_err(AppError::internal)?;
        sub.billing_anchor = offering.anchor_or(sub.start_date);
        sub.current_period_start = start;
        sub.current_period_end = offering.period_end.ok_or_else(|| AppError::internal("quote without period"))?;
        sub.trial_start = offering.trial_end.map(|_| quote.start.unwrap_or(start));
        sub.trial_end = offering.trial_end;
        sub.next_billing_at = offering.next_billing_at;
        sub.recurring_amount = offering.recurring_amount;
        sub.activated_at = Some(now);
        sub.updated_at = now;
        let invoice = first_invoice(&sub, &bill_group, offering, now);
        if let Some(inv) = &invoice
            && bill_group.can_charge_automatically()
            && !inv.amount_due().is_zero()
        {
            self.payments
                .check_method(ctx, &bill_group.gateway_customer_id, &bill_group.payment_method_id, "bill_group_id")
                .await
                .map_err(|e| AppError::failed_precondition(e.reason().to_string(), e.message().to_string()))?;
        }
        let mut events = vec![Event::new(
            SubscriptionEvent::SubscriptionActivated {
                subscription_id: sub.id.clone(),
                account_id: sub.account_id.clone(),
            },
            now,
        )];
        if let Some(inv) = &invoice {
            events.push(Event::new(
                SubscriptionEvent::InvoiceCreated { invoice_id: inv.id.clone(), amount: inv.amount.to_string() },
                now,
            ));
        }
        let activated =
            match self.repo.activate_subscription(tenant, &sub, invoice.as_ref(), idem.as_repo(), &events).await {
                Ok(done) => done,
                // The same key, at the same moment, on another call: its answer.
                Err(e) if e.is_unique() && idem.key.is_some() => return Box::pin(self.activate(ctx, id, idem)).await,
                Err(e) => return Err(e.into()),
            };
        if !activated {
            // Another call changed it first: the same request under the same
            // key gets that call's answer; otherwise what it is now says why.
            if let Some(key) = &idem.key
                && self.repo.mutation_by_key(tenant, key).await?.is_some()
            {
                return Box::pin(self.activate(ctx, id, idem)).await;
            }
            let now_state = self.subscription(tenant, id).await?.state;
            let refusal = now_state.after(Action::Activate).err();
            return Err(match refusal {
                Some(r) => AppError::failed_precondition(r.reason, r.message),
                None => AppError::aborted("CONCURRENT_CHANGE", "the subscription changed meanwhile; retry"),
            });
        }
        self.collect_first(ctx, sub).await
    }
}
