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
}

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
        self.collect_with(ctx, bg, inv, key).await
    }

    /// Like [`App::collect`], under the gateway idempotency key `key` (a
    /// second attempt at an invoice has its own).
    pub async fn collect_with(
        &self,
        ctx: &CallContext,
        bg: &BillGroup,
        mut inv: Invoice,
        key: String,
    ) -> AppResult<Collected> {
        if inv.number.is_empty() {
            // The charge names the number: every attempt sees the same one.
            inv.number = self.repo.invoice_number(&ctx.tenant_id, &inv.id).await?;
        }
        let charge = ChargeInput {
            customer_id: bg.gateway_customer_id.clone(),
            payment_method_id: bg.payment_method_id.clone(),
            amount: Money::new(inv.amount_due(), inv.currency),
            invoice_id: inv.id.clone(),
            description: format!("Invoice {}", inv.number),
            idempotency_key: key,
        };
        let payment = self.payments.charge(ctx, &charge).await.map_err(|e| {
            // The gateway customer and method are the bill group's.
            e.map_fields(|f| match f {
                "customer_id" | "payment_method_id" => "bill_group_id".into(),
                other => other.to_string(),
            })
        })?;
        let now = self.now(&ctx.tenant_id);
        if !inv.payment_ids.contains(&payment.payment_id) {
            inv.payment_ids.push(payment.payment_id.clone());
        }
        inv.updated_at = now;
        // Charged: nothing left for the billing clock until dunning says.
        inv.next_action_at = None;
        let mut events = Vec::new();
        match payment.status {
            PaymentStatus::Succeeded => {
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
                events.push(Event::new(
                    SubscriptionEvent::InvoicePaymentFailed {
                        invoice_id: inv.id.clone(),
                        payment_id: payment.payment_id.clone(),
                        decline_code: payment.decline_code.clone(),
                    },
                    now,
                ));
            }
            PaymentStatus::Pending => {}
        }
        self.repo.record_payment(&ctx.tenant_id, &inv, &events).await?;
        Ok(Collected { invoice: inv, payment_id: payment.payment_id, failed: payment.status == PaymentStatus::Failed })
    }
}
