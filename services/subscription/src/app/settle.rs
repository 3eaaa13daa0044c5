//! Following the gateway's payment events: a charge the gateway left
//! pending (processing, or waiting for the customer's 3-D Secure) is
//! settled from the tenant's payment event stream, read from the sequence
//! last seen (kept per tenant in `payment_cursors`). A success pays the
//! invoice (the subscription ACTIVE again); a failure puts it in dunning.
//! An event is applied only to an invoice still waiting for that payment,
//! so reading an event twice (a pass cut off before its cursor moved)
//! changes nothing.

use recur_auth::CallContext;
use recur_error::AppResult;

use super::App;
use super::collect::{PAYMENT_PENDING, schedule_retry};
use super::renew::ClockAction;
use crate::domain::{Event, InvoiceStatus, SubscriptionEvent};
use crate::peers::{PaymentEvent, PaymentStatus};

/// Events read per call, and calls per tenant and pass.
const PAGE: i32 = 200;
const PAGES: usize = 20;

impl App {
    /// Reads `ctx`'s tenant's new payment events and settles the invoices
    /// waiting for them; answers what it did.
    pub async fn follow_payments(&self, ctx: &CallContext) -> AppResult<Vec<ClockAction>> {
        let tenant = ctx.tenant_id.as_str();
        let mut after = self.repo.payment_cursor(tenant).await?;
        let mut out = Vec::new();
        for _ in 0..PAGES {
            let events = self.payments.payment_events(ctx, after, PAGE).await?;
            for e in &events {
                if !e.invoice_id.is_empty() && e.payment.status != PaymentStatus::Pending {
                    self.settle(ctx, e, &mut out).await?;
                }
                after = after.max(e.sequence);
            }
            self.repo.set_payment_cursor(tenant, after, self.clock.now_micros()).await?;
            if events.len() < PAGE as usize {
                break;
            }
        }
        Ok(out)
    }

    /// Applies settled payment `e` to the invoice waiting for it.
    async fn settle(&self, ctx: &CallContext, e: &PaymentEvent, out: &mut Vec<ClockAction>) -> AppResult<()> {
        let tenant = ctx.tenant_id.as_str();
        let Some(mut inv) = self.repo.get_invoice(tenant, &e.invoice_id).await? else { return Ok(()) };
        let p = &e.payment;
        if inv.status != InvoiceStatus::Open
            || inv.collection_paused != PAYMENT_PENDING
            || !inv.payment_ids.contains(&p.payment_id)
        {
            return Ok(());
        }
        let (was, read_at) = (inv.status, inv.updated_at);
        let now = self.now(tenant);
        inv.collection_paused.clear();
        inv.updated_at = now;
        let mut events = Vec::new();
        let kind = if p.status == PaymentStatus::Succeeded {
            inv.amount_paid += p.amount;
            if inv.amount_due().is_zero() {
                inv.status = InvoiceStatus::Paid;
                inv.paid_at = Some(now);
                inv.next_action_at = None;
                events.push(Event::new(
                    SubscriptionEvent::InvoicePaid { invoice_id: inv.id.clone(), payment_id: p.payment_id.clone() },
                    now,
                ));
            }
            "paid"
        } else {
            let policy = self.catalog.policy(ctx).await?;
            schedule_retry(&mut inv, &policy.dunning, &p.decline_code, now);
            events.push(Event::new(
                SubscriptionEvent::InvoicePaymentFailed {
                    invoice_id: inv.id.clone(),
                    payment_id: p.payment_id.clone(),
                    decline_code: p.decline_code.clone(),
                },
                now,
            ));
            "payment_failed"
        };
        if !self.repo.update_invoice(tenant, &inv, was, read_at, &[], &events).await? {
            // Changed meanwhile: read again at the next pass (the cursor
            // has not moved past it when this fails the pass).
            return Err(recur_error::AppError::aborted("CONCURRENT_CHANGE", "the invoice changed meanwhile"));
        }
        if inv.status == InvoiceStatus::Paid {
            self.settled(ctx, &inv).await?;
        } else if kind == "payment_failed" && !inv.subscription_id.is_empty() {
            let mut sub = self.subscription(tenant, &inv.subscription_id).await?;
            self.past_due(tenant, &mut sub, &inv.id).await?;
        }
        let mut a = ClockAction::new(now, kind, &inv.subscription_id);
        a.invoice_id = inv.id;
        a.payment_id = p.payment_id.clone();
        a.reason = p.decline_code.clone();
        out.push(a);
        Ok(())
    }

    /// Follows `ctx`'s tenant's payment events when one of its invoices
    /// waits for the gateway (a 3-D Secure challenge done meanwhile, say).
    pub async fn follow_tenant_payments(&self, ctx: &CallContext) -> AppResult<Vec<ClockAction>> {
        let tenant = ctx.tenant_id.as_str();
        if !self.repo.tenants_awaiting_payments(Some(tenant), 1).await?.is_empty() {
            return self.follow_payments(ctx).await;
        }
        Ok(Vec::new())
    }

    /// One pass over every tenant with an invoice waiting for the gateway.
    pub async fn follow_all_payments(&self) -> AppResult<Vec<ClockAction>> {
        let mut out = Vec::new();
        for tenant in self.repo.tenants_awaiting_payments(None, 100).await? {
            let ctx = self.peer_context(&tenant);
            match self.follow_payments(&ctx).await {
                Ok(done) => out.extend(done),
                Err(e) => tracing::warn!(tenant = %tenant, error = %e, "payment events not followed; next pass"),
            }
        }
        Ok(out)
    }
}
