//! The ledger's resources and the rules that keep money safe.

pub mod card;
pub mod provider;
pub mod sandbox;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use recur_money::Money;
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

#[derive(Clone, Debug, PartialEq)]
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What identifies a charge request, so a repeated idempotency key can be
/// told apart from a reused one.
pub fn charge_fingerprint(
    customer_id: &str,
    payment_method_id: &str,
    amount: Money,
    invoice_id: &str,
    description: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        customer_id,
        payment_method_id,
        amount.currency().code(),
        &amount.amount().normalize().to_string(),
        invoice_id,
        description,
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use recur_money::Currency;
    use rust_decimal::Decimal;

    #[test]
    fn fingerprints_tell_requests_apart() {
        let usd = Currency::from_code("USD").expect("usd");
        let a = charge_fingerprint("cus_1", "pm_1", Money::new(Decimal::from(10), usd), "inv_1", "");
        let same = charge_fingerprint("cus_1", "pm_1", Money::new(Decimal::new(1000, 2), usd), "inv_1", "");
        let other = charge_fingerprint("cus_1", "pm_1", Money::new(Decimal::from(11), usd), "inv_1", "");
        assert_eq!(a, same, "10 and 10.00 are the same amount");
        assert_ne!(a, other);
    }
}
