//! A sign-up session ("cart"): what the customer gave so far, what the
//! platform priced, and what finalizing made. Sessions move
//! PENDING → FINALIZING → FINALIZED, or PENDING → CANCELED; FINALIZING holds
//! a lease so that one finalization runs at a time and a crashed one can be
//! taken over.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Pending,
    Finalizing,
    Finalized,
    Canceled,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Pending => "pending",
            SessionStatus::Finalizing => "finalizing",
            SessionStatus::Finalized => "finalized",
            SessionStatus::Canceled => "canceled",
        }
    }
}

pub use recur_contact::Address;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerInput {
    pub account_id: String,
    pub account_name: String,
    pub custom_id: String,
    pub name: String,
    pub email: String,
    pub billing_address: Address,
    pub phone: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillGroupInput {
    pub auto_email_invoice: Option<bool>,
    pub collect_invoice_balance_automatically: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartItem {
    pub product_id: String,
    /// Decimal string; empty means the catalog's default.
    pub quantity: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartOffering {
    pub offering_id: String,
    pub rate_id: String,
    pub items: Vec<CartItem>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuoteInput {
    pub start_date: String,
    pub custom_id: String,
    pub offerings: Vec<CartOffering>,
    pub coupon_codes: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethodInput {
    pub payment_method_name: String,
    pub payment_token: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPaymentMethod {
    pub id: String,
    pub name: String,
    pub brand: String,
    pub last4: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyAmount {
    pub currency: String,
    pub amount: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceSummary {
    pub id: String,
    pub amount_without_tax: MoneyAmount,
    pub tax: MoneyAmount,
    pub amount: MoneyAmount,
    pub line_ids: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSummary {
    pub id: String,
    pub amount: MoneyAmount,
    /// The payment gateway's status value.
    pub status: i32,
    pub action_url: String,
}

/// What finalizing made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finalized {
    pub account_id: String,
    pub account_name: String,
    pub contact_id: String,
    pub contact_name: String,
    pub contact_email: String,
    pub bill_group_id: String,
    pub contract_ids: Vec<String>,
    pub invoices: Vec<InvoiceSummary>,
    pub payments: Vec<PaymentSummary>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub status: SessionStatus,
    pub customer: CustomerInput,
    pub bill_group: BillGroupInput,
    pub quote: QuoteInput,
    pub quote_id: String,
    /// The priced cart as the pricing service encoded it (opaque here).
    #[serde(with = "b64")]
    pub priced_quote: Vec<u8>,
    pub payment_method_input: Option<PaymentMethodInput>,
    pub gateway_customer_id: Option<String>,
    pub payment_method: Option<SavedPaymentMethod>,
    /// Payment-method init data as the gateway encoded it (opaque here).
    #[serde(with = "b64")]
    pub payment_method_init: Vec<u8>,
    pub result: Option<Finalized>,
    pub return_url: String,
    /// Optimistic-concurrency version, bumped by every write.
    pub version: i64,
    pub lease_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.status == SessionStatus::Pending && now >= self.expires_at
    }

    /// Whether another finalization holds the session right now.
    pub fn is_leased(&self, now: DateTime<Utc>) -> bool {
        self.status == SessionStatus::Finalizing && self.lease_until.is_some_and(|l| l > now)
    }

    /// The idempotency key of one finalization step; the same on every
    /// retry of the session, so each step happens once.
    pub fn step_key(&self, step: &str) -> String {
        format!("{}:{step}", self.id)
    }
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(status: SessionStatus, lease: Option<i64>) -> Session {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        Session {
            id: "cart_1".into(),
            status,
            customer: CustomerInput::default(),
            bill_group: BillGroupInput::default(),
            quote: QuoteInput::default(),
            quote_id: "quot_1".into(),
            priced_quote: vec![1, 2, 3],
            payment_method_input: None,
            gateway_customer_id: None,
            payment_method: None,
            payment_method_init: Vec::new(),
            result: None,
            return_url: String::new(),
            version: 1,
            lease_until: lease.map(|s| now + chrono::Duration::seconds(s)),
            created_at: now,
            updated_at: now,
            expires_at: now + chrono::Duration::hours(1),
        }
    }

    #[test]
    fn sessions_round_trip_through_json() {
        let s = session(SessionStatus::Pending, None);
        let json = serde_json::to_string(&s).expect("serialize");
        assert_eq!(serde_json::from_str::<Session>(&json).expect("deserialize"), s);
    }

    #[test]
    fn leases_and_expiry() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        assert!(session(SessionStatus::Finalizing, Some(60)).is_leased(now));
        assert!(!session(SessionStatus::Finalizing, Some(-1)).is_leased(now), "an expired lease can be taken over");
        assert!(!session(SessionStatus::Pending, None).is_expired(now));
        assert!(session(SessionStatus::Pending, None).is_expired(now + chrono::Duration::hours(2)));
        assert_eq!(session(SessionStatus::Pending, None).step_key("account"), "cart_1:account");
    }
}
