//! The rows of the subscription service's tables as sqlx reads them (the
//! same on Postgres and SQLite), and how each becomes a domain record.
//! Text columns hold JSON (addresses, items, metadata) or an enum's stored
//! text; decimals are [`Dec`].

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use recur_money::Currency;
use recur_storage::{Dec, StorageError};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;

use crate::domain::{
    Account, BillGroup, BillingAnchor, Contact, Event, Invoice, InvoiceLine, Subscription, SubscriptionEvent,
};

fn bad(e: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("subscription row: {e}"))
}

pub(crate) fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StorageError> {
    serde_json::from_str(s).map_err(bad)
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StorageError> {
    serde_json::to_string(v).map_err(bad)
}

fn parse<T: FromStr<Err = String>>(s: &str) -> Result<T, StorageError> {
    s.parse().map_err(bad)
}

fn currency(code: &str) -> Result<Currency, StorageError> {
    Currency::from_code(code).ok_or_else(|| bad(format!("currency {code}")))
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: String,
    custom_id: Option<String>,
    account_name: String,
    currency: String,
    time_zone: String,
    billing_address: String,
    tags: String,
    notes: String,
    metadata: String,
    tax_exempt: bool,
    pub request_hash: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<AccountRow> for Account {
    type Error = StorageError;
    fn try_from(r: AccountRow) -> Result<Account, StorageError> {
        Ok(Account {
            id: r.id,
            custom_id: r.custom_id,
            account_name: r.account_name,
            currency: r.currency,
            time_zone: r.time_zone,
            billing_address: from_json(&r.billing_address)?,
            tags: from_json(&r.tags)?,
            notes: r.notes,
            metadata: from_json(&r.metadata)?,
            tax_exempt: r.tax_exempt,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ContactRow {
    id: String,
    account_id: String,
    name: String,
    first_name: String,
    last_name: String,
    title: String,
    email: String,
    phone: String,
    address: String,
    is_primary: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<ContactRow> for Contact {
    type Error = StorageError;
    fn try_from(r: ContactRow) -> Result<Contact, StorageError> {
        Ok(Contact {
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            first_name: r.first_name,
            last_name: r.last_name,
            title: r.title,
            email: r.email,
            phone: r.phone,
            address: from_json(&r.address)?,
            primary: r.is_primary,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A contact with the fingerprint of the request that made it.
#[derive(sqlx::FromRow)]
pub(crate) struct ContactKeyRow {
    #[sqlx(flatten)]
    pub contact: ContactRow,
    pub request_hash: String,
}

/// A bill group's columns as [`BillGroupRow`] reads them, from table alias
/// `b`, each named with `bg_` before it, so that a read may join them to
/// another table's `*` (a create reads its account and bill group at once).
pub(crate) const BILL_GROUP_COLUMNS: &str = "b.id AS bg_id, b.account_id AS bg_account_id, b.name AS bg_name, \
     b.auto_email_invoice AS bg_auto_email_invoice, \
     b.collect_invoice_balance_automatically AS bg_collect_invoice_balance_automatically, \
     b.payment_method_id AS bg_payment_method_id, b.gateway_customer_id AS bg_gateway_customer_id, \
     b.billing_day AS bg_billing_day, b.collection_method AS bg_collection_method, b.currency AS bg_currency, \
     b.contact_id AS bg_contact_id, b.request_hash AS bg_request_hash, b.created_at AS bg_created_at, \
     b.updated_at AS bg_updated_at";

/// Read with [`BILL_GROUP_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(crate) struct BillGroupRow {
    #[sqlx(rename = "bg_id")]
    id: String,
    #[sqlx(rename = "bg_account_id")]
    account_id: String,
    #[sqlx(rename = "bg_name")]
    name: String,
    #[sqlx(rename = "bg_auto_email_invoice")]
    auto_email_invoice: bool,
    #[sqlx(rename = "bg_collect_invoice_balance_automatically")]
    collect_invoice_balance_automatically: bool,
    #[sqlx(rename = "bg_payment_method_id")]
    payment_method_id: String,
    #[sqlx(rename = "bg_gateway_customer_id")]
    gateway_customer_id: String,
    #[sqlx(rename = "bg_billing_day")]
    billing_day: i32,
    #[sqlx(rename = "bg_collection_method")]
    collection_method: String,
    #[sqlx(rename = "bg_currency")]
    currency: String,
    #[sqlx(rename = "bg_contact_id")]
    contact_id: String,
    #[sqlx(rename = "bg_request_hash")]
    pub request_hash: String,
    #[sqlx(rename = "bg_created_at")]
    created_at: DateTime<Utc>,
    #[sqlx(rename = "bg_updated_at")]
    updated_at: DateTime<Utc>,
}

impl TryFrom<BillGroupRow> for BillGroup {
    type Error = StorageError;
    fn try_from(r: BillGroupRow) -> Result<BillGroup, StorageError> {
        Ok(BillGroup {
            id: r.id,
            account_id: r.account_id,
            name: r.name,
            auto_email_invoice: r.auto_email_invoice,
            collect_automatically: r.collect_invoice_balance_automatically,
            payment_method_id: r.payment_method_id,
            gateway_customer_id: r.gateway_customer_id,
            billing_day: u32::try_from(r.billing_day).unwrap_or(0),
            collection_method: parse(&r.collection_method)?,
            currency: r.currency,
            contact_id: r.contact_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SubscriptionRow {
    id: String,
    custom_id: Option<String>,
    account_id: String,
    bill_group_id: String,
    offering_id: String,
    rate_id: String,
    state: String,
    items: String,
    coupon_codes: String,
    currency: String,
    recurring_amount: Dec,
    start_date: String,
    anchor_day: i32,
    anchor_month: i32,
    metadata: String,
    cancel_at_period_end: bool,
    current_period_start: DateTime<Utc>,
    current_period_end: DateTime<Utc>,
    trial_start: Option<DateTime<Utc>>,
    trial_end: Option<DateTime<Utc>>,
    next_billing_at: Option<DateTime<Utc>>,
    activated_at: Option<DateTime<Utc>>,
    canceled_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    quote_id: String,
    pub request_hash: String,
    version: i64,
    paused_at: Option<DateTime<Utc>>,
    resume_at: Option<DateTime<Utc>>,
    cancel_reason: String,
    cancel_comment: String,
    scheduled_change: String,
    previous_billing_at: Option<DateTime<Utc>>,
    parked_reason: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = StorageError;
    fn try_from(r: SubscriptionRow) -> Result<Subscription, StorageError> {
        Ok(Subscription {
            id: r.id,
            custom_id: r.custom_id,
            account_id: r.account_id,
            bill_group_id: r.bill_group_id,
            offering_id: r.offering_id,
            rate_id: r.rate_id,
            state: parse(&r.state)?,
            items: from_json(&r.items)?,
            coupon_codes: from_json(&r.coupon_codes)?,
            currency: currency(&r.currency)?,
            recurring_amount: r.recurring_amount.0,
            start_date: r.start_date.parse::<NaiveDate>().map_err(bad)?,
            billing_anchor: BillingAnchor {
                day: u32::try_from(r.anchor_day).unwrap_or(0),
                month: u32::try_from(r.anchor_month).unwrap_or(0),
            },
            metadata: from_json(&r.metadata)?,
            cancel_at_period_end: r.cancel_at_period_end,
            current_period_start: r.current_period_start,
            current_period_end: r.current_period_end,
            trial_start: r.trial_start,
            trial_end: r.trial_end,
            next_billing_at: r.next_billing_at,
            activated_at: r.activated_at,
            canceled_at: r.canceled_at,
            expires_at: r.expires_at,
            quote_id: r.quote_id,
            scheduled_change: if r.scheduled_change.is_empty() { None } else { Some(from_json(&r.scheduled_change)?) },
            paused_at: r.paused_at,
            resume_at: r.resume_at,
            cancel_reason: r.cancel_reason,
            cancel_comment: r.cancel_comment,
            previous_billing_at: r.previous_billing_at,
            parked_reason: r.parked_reason,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InvoiceRow {
    id: String,
    number: String,
    account_id: String,
    bill_group_id: String,
    subscription_id: String,
    status: String,
    currency: String,
    amount_without_tax: Dec,
    discount: Dec,
    tax: Dec,
    amount: Dec,
    amount_paid: Dec,
    credit_applied: Dec,
    period_start: Option<DateTime<Utc>>,
    period_end: Option<DateTime<Utc>>,
    issued_at: Option<DateTime<Utc>>,
    due_at: Option<DateTime<Utc>>,
    paid_at: Option<DateTime<Utc>>,
    payment_ids: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    billing_reason: String,
    next_action_at: Option<DateTime<Utc>>,
    attempt_count: i32,
    first_failed_at: Option<DateTime<Utc>>,
    collection_paused: String,
    usage_coupon_left: String,
}

impl TryFrom<InvoiceRow> for Invoice {
    type Error = StorageError;
    /// The invoice without its lines (read separately).
    fn try_from(r: InvoiceRow) -> Result<Invoice, StorageError> {
        Ok(Invoice {
            id: r.id,
            number: r.number,
            account_id: r.account_id,
            bill_group_id: r.bill_group_id,
            subscription_id: r.subscription_id,
            status: parse(&r.status)?,
            currency: currency(&r.currency)?,
            lines: Vec::new(),
            amount_without_tax: r.amount_without_tax.0,
            discount: r.discount.0,
            tax: r.tax.0,
            amount: r.amount.0,
            amount_paid: r.amount_paid.0,
            credit_applied: r.credit_applied.0,
            period_start: r.period_start,
            period_end: r.period_end,
            issued_at: r.issued_at,
            due_at: r.due_at,
            paid_at: r.paid_at,
            payment_ids: from_json(&r.payment_ids)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            reason: parse(&r.billing_reason)?,
            next_action_at: r.next_action_at,
            attempt_count: u32::try_from(r.attempt_count).unwrap_or(0),
            first_failed_at: r.first_failed_at,
            collection_paused: r.collection_paused,
            usage_coupon_left: coupon_left_from_text(&r.usage_coupon_left)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct InvoiceLineRow {
    id: String,
    kind: String,
    description: String,
    subscription_id: String,
    offering_id: String,
    rate_id: String,
    product_id: String,
    period_start: Option<DateTime<Utc>>,
    period_end: Option<DateTime<Utc>>,
    quantity: Dec,
    unit_amount: String,
    proration_fraction: String,
    tiers: String,
    amount_without_tax: Dec,
    discount: Dec,
    tax: Dec,
    tax_rate: String,
    amount: Dec,
}

/// A line with the invoice it belongs to (lines of several invoices read
/// at once).
#[derive(sqlx::FromRow)]
pub(crate) struct OwnedLineRow {
    pub(crate) invoice_id: String,
    #[sqlx(flatten)]
    pub(crate) line: InvoiceLineRow,
}

impl TryFrom<InvoiceLineRow> for InvoiceLine {
    type Error = StorageError;
    fn try_from(r: InvoiceLineRow) -> Result<InvoiceLine, StorageError> {
        Ok(InvoiceLine {
            id: r.id,
            kind: parse(&r.kind)?,
            description: r.description,
            subscription_id: r.subscription_id,
            offering_id: r.offering_id,
            rate_id: r.rate_id,
            product_id: r.product_id,
            period_start: r.period_start,
            period_end: r.period_end,
            quantity: r.quantity.0,
            unit_amount: r.unit_amount,
            proration_fraction: r.proration_fraction,
            tiers: from_json(&r.tiers)?,
            amount_without_tax: r.amount_without_tax.0,
            discount: r.discount.0,
            tax: r.tax.0,
            tax_rate: r.tax_rate,
            amount: r.amount.0,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: String,
    sequence: Option<i64>,
    #[sqlx(rename = "type")]
    event_type: String,
    data_json: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<EventRow> for Event {
    type Error = StorageError;
    fn try_from(r: EventRow) -> Result<Event, StorageError> {
        Ok(Event {
            id: r.id,
            sequence: r.sequence.unwrap_or(0),
            event: SubscriptionEvent::from_stored(&r.event_type, &r.data_json).map_err(bad)?,
            created_at: r.created_at,
        })
    }
}

/// Rows of one kind, each converted.
pub(crate) fn all<R, T: TryFrom<R, Error = StorageError>>(rows: Vec<R>) -> Result<Vec<T>, StorageError> {
    rows.into_iter().map(T::try_from).collect()
}

#[derive(sqlx::FromRow)]
pub(crate) struct PendingChargeRow {
    id: String,
    account_id: String,
    subscription_id: String,
    product_id: String,
    description: String,
    quantity: Dec,
    unit_amount: String,
    amount: Dec,
    currency: String,
    pub request_hash: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<PendingChargeRow> for crate::domain::PendingCharge {
    type Error = StorageError;
    fn try_from(r: PendingChargeRow) -> Result<crate::domain::PendingCharge, StorageError> {
        Ok(crate::domain::PendingCharge {
            id: r.id,
            account_id: r.account_id,
            subscription_id: r.subscription_id,
            product_id: r.product_id,
            description: r.description,
            quantity: r.quantity.0,
            unit_amount: r.unit_amount,
            amount: r.amount.0,
            currency: currency(&r.currency)?,
            created_at: r.created_at,
        })
    }
}

/// A usage event as an aggregate reads it (`properties` empty unless the
/// aggregation reads them).
#[derive(sqlx::FromRow)]
pub(crate) struct UsageRow {
    pub quantity: recur_storage::Dec,
    pub event_time: chrono::DateTime<chrono::Utc>,
    pub event_id: String,
    pub properties: String,
}

/// An invoice's `usage_coupon_left` as stored: `''` for `None`, else JSON
/// `[[code, amount], ...]`.
pub(crate) fn coupon_left_text(left: &Option<Vec<(String, Decimal)>>) -> Result<String, StorageError> {
    match left {
        None => Ok(String::new()),
        Some(l) => to_json(&l.iter().map(|(c, a)| (c.as_str(), a.to_string())).collect::<Vec<_>>()),
    }
}

fn coupon_left_from_text(raw: &str) -> Result<Option<Vec<(String, Decimal)>>, StorageError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let pairs: Vec<(String, String)> = from_json(raw)?;
    pairs
        .into_iter()
        .map(|(c, a)| {
            a.parse::<Decimal>()
                .map(|a| (c, a))
                .map_err(|e| StorageError::Other(format!("usage_coupon_left amount {a:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
