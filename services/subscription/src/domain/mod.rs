//! The subscription service's rules, with no I/O and no wire or SQL types:
//! the records it keeps ([`Account`], [`BillGroup`], [`Subscription`],
//! [`Invoice`]), the state machine of a subscription ([`state`]), the
//! billing anchor ([`anchor`]), invoices made from a priced offering
//! ([`invoice`]) and the events every change writes ([`events`]).

pub mod anchor;
pub mod dunning;
pub mod events;
pub mod invoice;
pub mod lifecycle;
pub mod renewal;
pub mod state;
pub mod usage;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use recur_money::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use anchor::BillingAnchor;
pub use events::{Event, SubscriptionEvent};
pub use recur_contact::Address;
pub use state::SubscriptionState;

pub type Metadata = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq)]
pub struct Account {
    pub id: String,
    pub custom_id: Option<String>,
    pub account_name: String,
    pub currency: String,
    pub time_zone: String,
    pub billing_address: Address,
    pub tags: Vec<String>,
    pub notes: String,
    pub metadata: Metadata,
    pub tax_exempt: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Account {
    /// The IANA time zone the account's billing days are counted in: its
    /// own, else the tenant's (`tenant_zone`).
    pub fn zone<'a>(&'a self, tenant_zone: &'a str) -> &'a str {
        if self.time_zone.is_empty() { tenant_zone } else { &self.time_zone }
    }

    /// [`Account::zone`] as a time zone (UTC for a name it does not know).
    pub fn tz(&self, tenant_zone: &str) -> chrono_tz::Tz {
        std::str::FromStr::from_str(self.zone(tenant_zone)).unwrap_or(chrono_tz::UTC)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Contact {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub title: String,
    pub email: String,
    pub phone: String,
    pub address: Address,
    pub primary: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

recur_storage::stored_enum!(CollectionMethod {
    Automatic => "automatic",
    Remittance => "remittance",
    Prepaid => "prepaid",
});
recur_storage::stored_enum!(InvoiceStatus {
    Draft => "draft",
    Open => "open",
    Paid => "paid",
    Void => "void",
    Uncollectible => "uncollectible",
});
// Why an invoice was made (`Unknown`: before reasons were kept). A
// `SubscriptionCycle` invoice is a renewal by the billing clock, unique per
// subscription and period in the database.
recur_storage::stored_enum!(InvoiceReason {
    Unknown => "",
    SubscriptionCreate => "subscription_create",
    SubscriptionCycle => "subscription_cycle",
    SubscriptionUpdate => "subscription_update",
    Manual => "manual",
    // The in-arrears lines of a last period (canceled or paused at its end).
    PeriodClose => "period_close",
});
recur_storage::stored_enum!(LineKind {
    Subscription => "subscription",
    Usage => "usage",
    Proration => "proration",
    SetupFee => "setup_fee",
    OneOff => "one_off",
});

#[derive(Clone, Debug, PartialEq)]
pub struct BillGroup {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub auto_email_invoice: bool,
    pub collect_automatically: bool,
    pub payment_method_id: String,
    pub gateway_customer_id: String,
    pub billing_day: u32,
    pub collection_method: CollectionMethod,
    pub currency: String,
    pub contact_id: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl BillGroup {
    /// Whether invoices of this bill group are charged without the customer
    /// acting, and can be: a payment method and a gateway customer exist.
    pub fn can_charge_automatically(&self) -> bool {
        self.collect_automatically
            && self.collection_method == CollectionMethod::Automatic
            && !self.payment_method_id.is_empty()
            && !self.gateway_customer_id.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub product_id: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    /// A price agreed for this subscription, replacing the rate's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_price: Option<CustomPrice>,
}

impl Item {
    pub fn new(product_id: impl Into<String>, quantity: Decimal) -> Item {
        Item { product_id: product_id.into(), quantity, custom_price: None }
    }
}

/// A custom price as the caller gave it (pricing checks and applies it):
/// the model by name (`flat`, `per_unit`, `tiered`, `volume`, `stairstep`,
/// `package`) and its decimal amounts as text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomPrice {
    pub model: String,
    #[serde(default)]
    pub unit_amount: String,
    #[serde(default)]
    pub flat_amount: String,
    #[serde(default)]
    pub tiers: Vec<CustomTier>,
    #[serde(default)]
    pub package_size: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomTier {
    #[serde(default)]
    pub up_to: String,
    #[serde(default)]
    pub unit_amount: String,
    #[serde(default)]
    pub flat_amount: String,
}

/// The custom prices of `items`, by product.
pub fn custom_prices(items: &[Item]) -> Vec<(String, CustomPrice)> {
    items.iter().filter_map(|i| i.custom_price.clone().map(|c| (i.product_id.clone(), c))).collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub custom_id: Option<String>,
    pub account_id: String,
    pub bill_group_id: String,
    pub offering_id: String,
    pub rate_id: String,
    pub state: SubscriptionState,
    pub items: Vec<Item>,
    pub coupon_codes: Vec<String>,
    pub currency: Currency,
    pub recurring_amount: Decimal,
    pub start_date: NaiveDate,
    /// The day (and for yearly periods the month) every period starts on.
    pub billing_anchor: BillingAnchor,
    pub metadata: Metadata,
    pub cancel_at_period_end: bool,
    pub current_period_start: DateTime<Utc>,
    pub current_period_end: DateTime<Utc>,
    pub trial_start: Option<DateTime<Utc>>,
    pub trial_end: Option<DateTime<Utc>>,
    pub next_billing_at: Option<DateTime<Utc>>,
    pub activated_at: Option<DateTime<Utc>>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub quote_id: String,
    /// A change waiting for the period end.
    pub scheduled_change: Option<ScheduledChange>,
    /// When it was paused; while ACTIVE, when a pause at the period end
    /// takes effect.
    pub paused_at: Option<DateTime<Utc>>,
    /// When a paused subscription resumes by itself.
    pub resume_at: Option<DateTime<Utc>>,
    pub cancel_reason: String,
    pub cancel_comment: String,
    /// For an imported subscription, when it was last billed elsewhere.
    pub previous_billing_at: Option<DateTime<Utc>>,
    /// Why the billing clock stopped renewing it (empty: it did not).
    pub parked_reason: String,
    /// Bumped by every stored change; a change is written only over the
    /// version it read.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An END_OF_TERM change: the rate and items that take over at
/// `effective_at` (the period end), and what will recur then.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledChange {
    /// The offering of `rate_id` (empty in changes kept before it was).
    #[serde(default)]
    pub offering_id: String,
    pub rate_id: String,
    pub items: Vec<Item>,
    pub effective_at: DateTime<Utc>,
    #[serde(with = "rust_decimal::serde::str")]
    pub next_recurring_amount: Decimal,
}

/// A usage event of a subscription's product, counted once per tenant and
/// event id.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageEvent {
    pub event_id: String,
    pub subscription_id: String,
    pub product_id: String,
    pub quantity: Decimal,
    pub event_time: DateTime<Utc>,
    pub properties: Metadata,
    pub created_at: DateTime<Utc>,
}

/// A one-off charge waiting for its subscription's next invoice.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingCharge {
    pub id: String,
    pub account_id: String,
    pub subscription_id: String,
    pub product_id: String,
    pub description: String,
    pub quantity: Decimal,
    pub unit_amount: String,
    /// Quantity × unit amount, rounded once.
    pub amount: Decimal,
    pub currency: Currency,
    pub created_at: DateTime<Utc>,
}

/// A movement of an account's credit balance: granted (positive) by a
/// change or cancellation, consumed (negative) by an invoice. `source` names
/// what made it and is unique, so it moves once however often it is retried.
#[derive(Clone, Debug, PartialEq)]
pub struct CreditEntry {
    pub id: String,
    pub account_id: String,
    pub currency: Currency,
    pub amount: Decimal,
    pub source: String,
    pub subscription_id: String,
    pub invoice_id: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
}

impl CreditEntry {
    pub fn new(
        account_id: &str,
        currency: Currency,
        amount: Decimal,
        source: String,
        at: DateTime<Utc>,
    ) -> CreditEntry {
        CreditEntry {
            id: recur_id::new_id(recur_id::Kind::CreditEntry),
            account_id: account_id.to_string(),
            currency,
            amount,
            source,
            subscription_id: String::new(),
            invoice_id: String::new(),
            description: String::new(),
            created_at: at,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierLine {
    pub index: i32,
    pub quantity: String,
    pub unit_amount: String,
    pub flat_amount: String,
    pub amount: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InvoiceLine {
    pub id: String,
    pub kind: LineKind,
    pub description: String,
    pub subscription_id: String,
    pub offering_id: String,
    pub rate_id: String,
    pub product_id: String,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub quantity: Decimal,
    pub unit_amount: String,
    pub proration_fraction: String,
    pub tiers: Vec<TierLine>,
    pub amount_without_tax: Decimal,
    pub discount: Decimal,
    pub tax: Decimal,
    pub tax_rate: String,
    pub amount: Decimal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Invoice {
    pub id: String,
    pub number: String,
    pub account_id: String,
    pub bill_group_id: String,
    pub subscription_id: String,
    pub status: InvoiceStatus,
    pub currency: Currency,
    pub lines: Vec<InvoiceLine>,
    pub amount_without_tax: Decimal,
    pub discount: Decimal,
    pub tax: Decimal,
    pub amount: Decimal,
    pub amount_paid: Decimal,
    /// The account credit this invoice consumed.
    pub credit_applied: Decimal,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub issued_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub payment_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub reason: InvoiceReason,
    /// When the billing clock next acts on it (finalizes a draft, collects
    /// it); `None`: nothing left for the clock.
    pub next_action_at: Option<DateTime<Utc>>,
    /// Payments of it that failed (a REMITTANCE invoice: the days it was
    /// found overdue), and when the first did: dunning counts from there.
    pub attempt_count: u32,
    pub first_failed_at: Option<DateTime<Utc>>,
    /// Why the billing clock stopped collecting it (`hard_decline`), until
    /// the bill group's payment method changes; empty: it did not.
    pub collection_paused: String,
    /// What each FIXED_AMOUNT coupon of the contract had left for the
    /// invoice's METERED usage lines when it was made (after its in-advance
    /// and licensed in-arrears lines), so a recount of the usage gives the
    /// same shares; `None`: their whole amounts (a last period's invoice
    /// whose first lines are usage).
    pub usage_coupon_left: CouponLeft,
}

/// What each FIXED_AMOUNT coupon has left for an invoice's next lines
/// (code, amount); `None`: their whole amounts.
pub type CouponLeft = Option<Vec<(String, Decimal)>>;

impl Invoice {
    /// Totals are the sums of the (already rounded) lines, exactly.
    pub fn total_lines(&mut self) {
        self.amount_without_tax = self.lines.iter().map(|l| l.amount_without_tax).sum();
        self.discount = self.lines.iter().map(|l| l.discount).sum();
        self.tax = self.lines.iter().map(|l| l.tax).sum();
        self.amount = self.lines.iter().map(|l| l.amount).sum();
    }

    pub fn amount_due(&self) -> Decimal {
        (self.amount - self.amount_paid - self.credit_applied).max(Decimal::ZERO)
    }

    /// Consumes up to `available` account credit against what is due;
    /// returns what it took.
    pub fn apply_credit(&mut self, available: Decimal) -> Decimal {
        let take = available.max(Decimal::ZERO).min(self.amount_due());
        self.credit_applied += take;
        take
    }
}

/// A monthly contract anchored on the 31st, in its period Jan 31 to Feb 28
/// 2023 (UTC), for the rules' unit tests.
#[cfg(test)]
pub(crate) fn test_subscription() -> Subscription {
    let at = |m, d| chrono::TimeZone::with_ymd_and_hms(&Utc, 2023, m, d, 0, 0, 0).single().expect("date");
    Subscription {
        id: "sub_1".into(),
        custom_id: None,
        account_id: "acct_1".into(),
        bill_group_id: "bg_1".into(),
        offering_id: "offr_1".into(),
        rate_id: "rate_1".into(),
        state: SubscriptionState::Active,
        items: vec![Item { product_id: "prod_1".into(), quantity: Decimal::ONE, custom_price: None }],
        coupon_codes: Vec::new(),
        currency: Currency::from_code("USD").expect("usd"),
        recurring_amount: Decimal::from(31),
        start_date: NaiveDate::from_ymd_opt(2023, 1, 31).expect("date"),
        billing_anchor: BillingAnchor { day: 31, month: 0 },
        metadata: Default::default(),
        cancel_at_period_end: false,
        current_period_start: at(1, 31),
        current_period_end: at(2, 28),
        trial_start: None,
        trial_end: None,
        next_billing_at: Some(at(2, 28)),
        activated_at: Some(at(1, 31)),
        canceled_at: None,
        expires_at: None,
        quote_id: String::new(),
        scheduled_change: None,
        paused_at: None,
        resume_at: None,
        cancel_reason: String::new(),
        cancel_comment: String::new(),
        previous_billing_at: None,
        parked_reason: String::new(),
        version: 0,
        created_at: at(1, 31),
        updated_at: at(1, 31),
    }
}
