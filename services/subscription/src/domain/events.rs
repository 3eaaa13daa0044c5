//! Every change the subscription service makes writes an event, in the
//! same transaction as the change: a typed [`SubscriptionEvent`], stored as
//! its type name and its fields as JSON, and numbered per tenant when it is
//! first listed (`recur_storage::outbox`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What happened. The serde tag is the event's type name as callers see
/// it; the fields are its data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SubscriptionEvent {
    #[serde(rename = "account.created")]
    AccountCreated { account_id: String, account_name: String },
    #[serde(rename = "bill_group.created")]
    BillGroupCreated { bill_group_id: String, account_id: String },
    /// The fields an update changed (their update-mask paths).
    #[serde(rename = "account.updated")]
    AccountUpdated { account_id: String, changed_fields: Vec<String> },
    #[serde(rename = "contact.created")]
    ContactCreated { contact_id: String, account_id: String },
    #[serde(rename = "contact.updated")]
    ContactUpdated { contact_id: String, account_id: String, changed_fields: Vec<String> },
    #[serde(rename = "bill_group.updated")]
    BillGroupUpdated { bill_group_id: String, account_id: String, changed_fields: Vec<String> },
    #[serde(rename = "subscription.created")]
    SubscriptionCreated { subscription_id: String, account_id: String, state: String },
    #[serde(rename = "subscription.activated")]
    SubscriptionActivated { subscription_id: String, account_id: String },
    #[serde(rename = "subscription.past_due")]
    SubscriptionPastDue { subscription_id: String, invoice_id: String },
    #[serde(rename = "subscription.canceled")]
    SubscriptionCanceled { subscription_id: String, reason: String },
    /// A cancellation that takes effect at `expires_at` (RFC 3339).
    #[serde(rename = "subscription.cancellation_scheduled")]
    SubscriptionCancellationScheduled { subscription_id: String, expires_at: String, reason: String },
    #[serde(rename = "subscription.reactivated")]
    SubscriptionReactivated { subscription_id: String },
    /// Paused now, or (`pause_at` later than the event) at the period end.
    #[serde(rename = "subscription.paused")]
    SubscriptionPaused { subscription_id: String, pause_at: String, resume_at: String },
    #[serde(rename = "subscription.resumed")]
    SubscriptionResumed { subscription_id: String },
    /// A change in force from `effective_at`: now, or at the period end.
    #[serde(rename = "subscription.changed")]
    SubscriptionChanged { subscription_id: String, rate_id: String, effective_at: String, scheduled: bool },
    /// A movement of an account's credit balance (positive: granted).
    #[serde(rename = "subscription.coupon_applied")]
    CouponApplied { subscription_id: String, code: String },
    #[serde(rename = "subscription.coupon_removed")]
    CouponRemoved { subscription_id: String, code: String },
    #[serde(rename = "account.credit_changed")]
    AccountCreditChanged { account_id: String, amount: String, currency: String, source: String },
    /// The billing clock started period `period_start`..`period_end`
    /// (RFC 3339), invoiced by `invoice_id` (empty: nothing was due).
    #[serde(rename = "subscription.renewed")]
    SubscriptionRenewed { subscription_id: String, period_start: String, period_end: String, invoice_id: String },
    /// The billing clock stopped renewing it: `reason` says why.
    #[serde(rename = "subscription.parked")]
    SubscriptionParked { subscription_id: String, reason: String, message: String },
    #[serde(rename = "invoice.created")]
    InvoiceCreated { invoice_id: String, amount: String },
    /// A draft made final: numbered, no longer changed, to be collected.
    #[serde(rename = "invoice.finalized")]
    InvoiceFinalized { invoice_id: String, number: String },
    /// Not paid by its due date (a REMITTANCE invoice).
    #[serde(rename = "invoice.overdue")]
    InvoiceOverdue { invoice_id: String },
    #[serde(rename = "invoice.paid")]
    InvoicePaid { invoice_id: String, payment_id: String },
    #[serde(rename = "invoice.payment_failed")]
    InvoicePaymentFailed { invoice_id: String, payment_id: String, decline_code: String },
    #[serde(rename = "invoice.voided")]
    InvoiceVoided { invoice_id: String, reason: String },
    #[serde(rename = "invoice.marked_uncollectible")]
    InvoiceMarkedUncollectible { invoice_id: String },
}

impl SubscriptionEvent {
    /// The type name (`subscription.created`).
    pub fn type_name(&self) -> &'static str {
        match self {
            SubscriptionEvent::AccountCreated { .. } => "account.created",
            SubscriptionEvent::BillGroupCreated { .. } => "bill_group.created",
            SubscriptionEvent::AccountUpdated { .. } => "account.updated",
            SubscriptionEvent::ContactCreated { .. } => "contact.created",
            SubscriptionEvent::ContactUpdated { .. } => "contact.updated",
            SubscriptionEvent::BillGroupUpdated { .. } => "bill_group.updated",
            SubscriptionEvent::SubscriptionCreated { .. } => "subscription.created",
            SubscriptionEvent::SubscriptionActivated { .. } => "subscription.activated",
            SubscriptionEvent::SubscriptionPastDue { .. } => "subscription.past_due",
            SubscriptionEvent::SubscriptionCanceled { .. } => "subscription.canceled",
            SubscriptionEvent::SubscriptionCancellationScheduled { .. } => "subscription.cancellation_scheduled",
            SubscriptionEvent::SubscriptionReactivated { .. } => "subscription.reactivated",
            SubscriptionEvent::SubscriptionPaused { .. } => "subscription.paused",
            SubscriptionEvent::SubscriptionResumed { .. } => "subscription.resumed",
            SubscriptionEvent::SubscriptionChanged { .. } => "subscription.changed",
            SubscriptionEvent::AccountCreditChanged { .. } => "account.credit_changed",
            SubscriptionEvent::CouponApplied { .. } => "subscription.coupon_applied",
            SubscriptionEvent::CouponRemoved { .. } => "subscription.coupon_removed",
            SubscriptionEvent::SubscriptionRenewed { .. } => "subscription.renewed",
            SubscriptionEvent::SubscriptionParked { .. } => "subscription.parked",
            SubscriptionEvent::InvoiceFinalized { .. } => "invoice.finalized",
            SubscriptionEvent::InvoiceOverdue { .. } => "invoice.overdue",
            SubscriptionEvent::InvoiceCreated { .. } => "invoice.created",
            SubscriptionEvent::InvoicePaid { .. } => "invoice.paid",
            SubscriptionEvent::InvoicePaymentFailed { .. } => "invoice.payment_failed",
            SubscriptionEvent::InvoiceVoided { .. } => "invoice.voided",
            SubscriptionEvent::InvoiceMarkedUncollectible { .. } => "invoice.marked_uncollectible",
        }
    }

    /// The id of the object the event is about.
    pub fn resource_id(&self) -> &str {
        match self {
            SubscriptionEvent::AccountCreated { account_id, .. } => account_id,
            SubscriptionEvent::AccountUpdated { account_id, .. }
            | SubscriptionEvent::AccountCreditChanged { account_id, .. } => account_id,
            SubscriptionEvent::ContactCreated { contact_id, .. }
            | SubscriptionEvent::ContactUpdated { contact_id, .. } => contact_id,
            SubscriptionEvent::BillGroupCreated { bill_group_id, .. }
            | SubscriptionEvent::BillGroupUpdated { bill_group_id, .. } => bill_group_id,
            SubscriptionEvent::SubscriptionCreated { subscription_id, .. }
            | SubscriptionEvent::SubscriptionActivated { subscription_id, .. }
            | SubscriptionEvent::SubscriptionPastDue { subscription_id, .. }
            | SubscriptionEvent::SubscriptionCanceled { subscription_id, .. }
            | SubscriptionEvent::SubscriptionCancellationScheduled { subscription_id, .. }
            | SubscriptionEvent::SubscriptionReactivated { subscription_id }
            | SubscriptionEvent::SubscriptionPaused { subscription_id, .. }
            | SubscriptionEvent::SubscriptionResumed { subscription_id }
            | SubscriptionEvent::SubscriptionChanged { subscription_id, .. }
            | SubscriptionEvent::CouponApplied { subscription_id, .. }
            | SubscriptionEvent::CouponRemoved { subscription_id, .. }
            | SubscriptionEvent::SubscriptionRenewed { subscription_id, .. }
            | SubscriptionEvent::SubscriptionParked { subscription_id, .. } => subscription_id,
            SubscriptionEvent::InvoiceCreated { invoice_id, .. }
            | SubscriptionEvent::InvoiceFinalized { invoice_id, .. }
            | SubscriptionEvent::InvoiceOverdue { invoice_id }
            | SubscriptionEvent::InvoicePaid { invoice_id, .. }
            | SubscriptionEvent::InvoicePaymentFailed { invoice_id, .. }
            | SubscriptionEvent::InvoiceVoided { invoice_id, .. }
            | SubscriptionEvent::InvoiceMarkedUncollectible { invoice_id } => invoice_id,
        }
    }

    /// The event's fields as JSON text (without its type).
    pub fn data_json(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut m)) => m.remove("data").map(|d| d.to_string()).unwrap_or_default(),
            _ => String::from("{}"),
        }
    }

    /// The event stored as `type_name` with `data_json`.
    pub fn from_stored(type_name: &str, data_json: &str) -> Result<SubscriptionEvent, String> {
        let data: serde_json::Value = serde_json::from_str(data_json).map_err(|e| e.to_string())?;
        serde_json::from_value(serde_json::json!({ "type": type_name, "data": data })).map_err(|e| e.to_string())
    }
}

/// An event as it is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: String,
    /// The tenant's sequence number (0 until it is numbered).
    pub sequence: i64,
    pub event: SubscriptionEvent,
    pub created_at: DateTime<Utc>,
}

impl Event {
    pub fn new(event: SubscriptionEvent, at: DateTime<Utc>) -> Event {
        Event { id: recur_id::new_id(recur_id::Kind::Event), sequence: 0, event, created_at: at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_stored_as_type_and_data_and_read_back() {
        let e = SubscriptionEvent::SubscriptionCreated {
            subscription_id: "sub_1".into(),
            account_id: "acct_1".into(),
            state: "active".into(),
        };
        assert_eq!(e.type_name(), "subscription.created");
        assert_eq!(e.resource_id(), "sub_1");
        let data = e.data_json();
        assert_eq!(data, r#"{"account_id":"acct_1","state":"active","subscription_id":"sub_1"}"#);
        assert_eq!(SubscriptionEvent::from_stored(e.type_name(), &data), Ok(e));
        assert!(SubscriptionEvent::from_stored("no.such", "{}").is_err());
    }
}
