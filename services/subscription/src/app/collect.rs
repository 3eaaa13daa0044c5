//! Collecting an invoice through the payment gateway.

use recur_auth::CallContext;
use recur_error::AppResult;
use recur_money::Money;

use super::App;
use crate::domain::{BillGroup, Event, Invoice, InvoiceStatus, SubscriptionEvent};
use crate::peers::{ChargeInput, PaymentStatus};

/// An invoice after a charge of it.
#[derive(Clone, Debug)]
pub struct Collected {
    pub invoice: Invoice,
    pub payment_id: String,
    /// The payment was declined.
    pub failed: bool,
    pub decline_code: String,
}

/// `inv` after its payment failed at `now` with `decline_code`: one more
/// failed attempt, and its next action by `schedule` (see
/// `domain::dunning`).
pub(crate) fn schedule_retry(
    inv: &mut Invoice,
    schedule: &crate::domain::dunning::Dunning,
    decline_code: &str,
    now: chrono::DateTime<chrono::Utc>,
) {
    use crate::domain::dunning::{Next, after_failure, is_hard_decline};
    inv.attempt_count += 1;
    let first = *inv.first_failed_at.get_or_insert(now);
    inv.next_action_at = match after_failure(schedule, inv.attempt_count, first, is_hard_decline(decline_code)) {
        Next::RetryAt(t) => Some(t),
        // The clock takes the final action at once.
        Next::Final => Some(now),
        Next::Stop => {
            inv.collection_paused = "hard_decline".into();
            None
        }
    };
}

/// Why the clock does not collect an invoice: its payment is processing or
/// waits for the customer (3-D Secure) at the gateway.
pub const PAYMENT_PENDING: &str = "payment_pending";

/// The gateway's idempotency key for the charge of invoice `id`: however
/// often collection is retried, the invoice is charged once.
pub fn charge_key(invoice_id: &str) -> String {
    format!("invoice:{invoice_id}")
}

impl App {
    /// Charges what is due on `inv` to the bill group's payment method, and
    /// records the outcome (with its events) on the invoice.
    pub async fn collect(&self, ctx: &CallContext, bg: &BillGroup, inv: Invoice) -> AppResult<Collected> {
        let key = charge_key(&inv.id);
        self.collect_with(ctx, bg, inv, key, true).await
    }

    /// Like [`App::collect`], under the gateway idempotency key `key` (a
    /// second attempt at an invoice has its own). With `dunning`, a decline
    /// schedules the next attempt by the tenant's dunning schedule (or, a
    /// hard decline, pauses collection until the payment method changes).
    pub async fn collect_with(
        &self,
        ctx: &CallContext,
        bg: &BillGroup,
        mut inv: Invoice,
        key: String,
        dunning: bool,
    ) -> AppResult<Collected> {
        if inv.number.is_empty() {
            // The charge names the number: every attempt sees the same one.
            inv.number = self.repo.invoice_number(&ctx.tenant_id, &inv.id).await?;
        }
        let payment = self.charge_invoice(ctx, bg, &inv, key).await?;
        let (collected, events) = self.paid_with(ctx, inv, payment, dunning).await?;
        self.repo.record_payment(&ctx.tenant_id, &collected.invoice, &events).await?;
        Ok(collected)
    }

    /// Charges what is due on numbered invoice `inv` to the bill group's
    /// payment method under gateway key `key`; nothing recorded yet.
    pub(crate) async fn charge_invoice(
        &self,
        ctx: &CallContext,
        bg: &BillGroup,
        inv: &Invoice,
        key: String,
    ) -> AppResult<crate::peers::PaymentOutcome> {
        let charge = ChargeInput {
            customer_id: bg.gateway_customer_id.clone(),
            payment_method_id: bg.payment_method_id.clone(),
            amount: Money::new(inv.amount_due(), inv.currency),
            invoice_id: inv.id.clone(),
            description: format!("Invoice {}", inv.number),
            idempotency_key: key,
        };
        self.payments.charge(ctx, &charge).await.map_err(|e| {
            // The gateway customer and method are the bill group's.
            e.map_fields(|f| match f {
                "customer_id" | "payment_method_id" => "bill_group_id".into(),
                other => other.to_string(),
            })
        })
    }

    /// `inv` after `payment` of it, with the events to record with it
    /// (see [`App::collect_with`] for `dunning`).
    pub(crate) async fn paid_with(
        &self,
        ctx: &CallContext,
        mut inv: Invoice,
        payment: crate::peers::PaymentOutcome,
        dunning: bool,
    ) -> AppResult<(Collected, Vec<Event>)> {
        let now = self.now(&ctx.tenant_id);
        if !inv.payment_ids.contains(&payment.payment_id) {
            inv.payment_ids.push(payment.payment_id.clone());
        }
        inv.updated_at = now;
        // Charged: nothing left for the billing clock until dunning says
        // (a declined attempt by hand keeps the schedule it had).
        let scheduled = inv.next_action_at.take();
        let mut events = Vec::new();
        match payment.status {
            PaymentStatus::Succeeded => {
                inv.collection_paused.clear();
                inv.amount_paid += payment.amount;
                if inv.amount_due().is_zero() {
                    inv.status = InvoiceStatus::Paid;
                    inv.paid_at = Some(now);
                    events.push(Event::new(
                        SubscriptionEvent::InvoicePaid {
                            invoice_id: inv.id.clone(),
                            payment_id: payment.payment_id.clone(),
                        },
                        now,
                    ));
                }
            }
            PaymentStatus::Failed => {
                if dunning {
                    let policy = self.catalog.policy(ctx).await?;
                    schedule_retry(&mut inv, &policy.dunning, &payment.decline_code, now);
                } else {
                    inv.next_action_at = scheduled;
                }
                events.push(Event::new(
                    SubscriptionEvent::InvoicePaymentFailed {
                        invoice_id: inv.id.clone(),
                        payment_id: payment.payment_id.clone(),
                        decline_code: payment.decline_code.clone(),
                    },
                    now,
                ));
            }
            // Settled later by the gateway: its payment events say how.
            PaymentStatus::Pending => inv.collection_paused = PAYMENT_PENDING.into(),
        }
        let collected = Collected {
            invoice: inv,
            payment_id: payment.payment_id,
            failed: payment.status == PaymentStatus::Failed,
            decline_code: payment.decline_code,
        };
        Ok((collected, events))
    }
}
