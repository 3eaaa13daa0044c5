//! The ledger's resources and the rules that keep money safe.

pub mod pages;
pub mod provider;
pub mod sandbox;
pub mod stripe;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use recur_money::Money;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    pub id: String,
    pub provider: String,
    pub provider_customer_id: String,
    pub account_id: String,
    pub email: String,
    pub name: String,
    pub reference: String,
    pub default_payment_method_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A saved payment method: the provider's token and what may be shown of
/// the card, never the card number.
#[derive(Clone, Debug, PartialEq)]
pub struct PaymentMethod {
    pub id: String,
    pub customer_id: String,
    pub provider: String,
    pub provider_payment_method_id: String,
    pub name: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub created_at: DateTime<Utc>,
    /// Removed in the billing portal: kept for the payments that used it,
    /// never charged again.
    pub removed_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The outcome is not known (the provider timed out or failed mid-call).
    Processing,
    Succeeded,
    Failed,
    RequiresAction,
    Refunded,
    PartiallyRefunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Processing => "processing",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::RequiresAction => "requires_action",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
        }
    }
}

impl FromStr for PaymentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "processing" => PaymentStatus::Processing,
            "succeeded" => PaymentStatus::Succeeded,
            "failed" => PaymentStatus::Failed,
            "requires_action" => PaymentStatus::RequiresAction,
            "refunded" => PaymentStatus::Refunded,
            "partially_refunded" => PaymentStatus::PartiallyRefunded,
            other => return Err(format!("unknown payment status {other:?}")),
        })
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub customer_id: String,
    pub payment_method_id: String,
    pub amount: Money,
    pub amount_refunded: Money,
    pub status: PaymentStatus,
    pub invoice_id: String,
    pub description: String,
    pub provider: String,
    pub provider_payment_id: String,
    pub decline_code: String,
    pub failure_message: String,
    pub action_url: String,
    pub attempt_count: u32,
    pub metadata: BTreeMap<String, String>,
    pub idempotency_key: String,
    pub request_hash: String,
    /// Held by refunds the provider has not confirmed yet.
    pub refund_reserved: Money,
    /// Where the 3-D Secure page sends the customer afterwards.
    pub return_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Payment {
    /// What may still be refunded: captured, minus refunded, minus what
    /// pending refunds hold.
    pub fn refundable(&self) -> Money {
        Money::new(
            self.amount.amount() - self.amount_refunded.amount() - self.refund_reserved.amount(),
            self.amount.currency(),
        )
    }

    pub fn is_settled(&self) -> bool {
        !matches!(self.status, PaymentStatus::Processing | PaymentStatus::RequiresAction)
    }
}

/// One call to the provider for a payment: the first charge, and each time
/// the reconciler asked again.
#[derive(Clone, Debug, PartialEq)]
pub struct Attempt {
    pub payment_id: String,
    pub number: u32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `pending` while the call runs, then `succeeded`, `failed`,
    /// `requires_action`, `processing` (accepted, undecided) or `unknown`
    /// (timeout, provider failure).
    pub outcome: String,
    pub provider_payment_id: String,
    pub decline_code: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundStatus {
    /// Reserved in the ledger, not yet confirmed by the provider.
    Pending,
    Succeeded,
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }
}

impl FromStr for RefundStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => RefundStatus::Pending,
            "succeeded" => RefundStatus::Succeeded,
            "failed" => RefundStatus::Failed,
            other => return Err(format!("unknown refund status {other:?}")),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Refund {
    pub id: String,
    pub payment_id: String,
    pub amount: Money,
    pub reason: String,
    pub status: RefundStatus,
    pub provider_refund_id: String,
    pub failure_message: String,
    pub idempotency_key: String,
    pub request_hash: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A payment state change, written with the change (the outbox).
#[derive(Clone, Debug, PartialEq)]
pub struct PaymentEvent {
    pub id: String,
    /// Assigned when the event is first listed, in commit order.
    pub sequence: i64,
    pub kind: String,
    pub payment: Payment,
    pub created_at: DateTime<Utc>,
}

impl PaymentEvent {
    /// The event a payment moving to its current status makes, if any.
    pub fn for_status(payment: &Payment, now: DateTime<Utc>) -> Option<PaymentEvent> {
        let kind = match payment.status {
            PaymentStatus::Succeeded => "payment.succeeded",
            PaymentStatus::Failed => "payment.failed",
            PaymentStatus::RequiresAction => "payment.requires_action",
            PaymentStatus::Refunded | PaymentStatus::PartiallyRefunded => "payment.refunded",
            PaymentStatus::Processing => return None,
        };
        Some(PaymentEvent {
            id: recur_id::new_id(recur_id::Kind::Event),
            sequence: 0,
            kind: kind.into(),
            payment: payment.clone(),
            created_at: now,
        })
    }
}

/// What identifies a charge request, so a repeated idempotency key can be
/// told apart from a reused one. The request is taken as sent (an empty
/// payment method stays empty), so a retry matches even if the customer's
/// default changed in between.
pub fn charge_fingerprint(
    customer_id: &str,
    payment_method_id: &str,
    amount: Money,
    invoice_id: &str,
    description: &str,
    return_url: &str,
    metadata: &BTreeMap<String, String>,
) -> String {
    let mut h = Sha256::new();
    let amount_text = amount.amount().normalize().to_string();
    let fixed =
        [customer_id, payment_method_id, amount.currency().code(), &amount_text, invoice_id, description, return_url];
    for part in fixed.into_iter().chain(metadata.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()])) {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    recur_proto::cards::digest_text(&h.finalize())
}

/// What identifies a refund request (see [`charge_fingerprint`]).
pub fn refund_fingerprint(payment_id: &str, amount: Option<Money>, reason: &str) -> String {
    let mut h = Sha256::new();
    let amount = amount.map(|a| format!("{} {}", a.amount().normalize(), a.currency().code())).unwrap_or_default();
    for part in [payment_id, &amount, reason] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    recur_proto::cards::digest_text(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use recur_money::Currency;
    use rust_decimal::Decimal;

    #[test]
    fn fingerprints_tell_requests_apart() {
        let usd = Currency::from_code("USD").expect("usd");
        let none = BTreeMap::new();
        let fp = |amount: Decimal, meta: &BTreeMap<String, String>| {
            charge_fingerprint("cus_1", "pm_1", Money::new(amount, usd), "inv_1", "", "", meta)
        };
        let a = fp(Decimal::from(10), &none);
        assert_eq!(a, fp(Decimal::new(1000, 2), &none), "10 and 10.00 are the same amount");
        assert_ne!(a, fp(Decimal::from(11), &none));
        let tagged = BTreeMap::from([("order".to_string(), "7".to_string())]);
        assert_ne!(a, fp(Decimal::from(10), &tagged), "metadata is part of the request");
    }
}
