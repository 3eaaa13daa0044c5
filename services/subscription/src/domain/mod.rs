//! Customers, contracts and invoices, as the subscription service keeps them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use recur_money::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub type Metadata = BTreeMap<String, String>;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub state: String,
    pub postal_code: String,
    pub country: String,
}

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

macro_rules! stored_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {:?}", stringify!($name), recur_error::excerpt(other))),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_enum!(CollectionMethod { Automatic => "automatic", Remittance => "remittance", Prepaid => "prepaid" });
stored_enum!(SubscriptionState {
    Pending => "pending",
    Trialing => "trialing",
    Active => "active",
    PastDue => "past_due",
    Paused => "paused",
    Canceled => "canceled",
    Expired => "expired",
});
stored_enum!(InvoiceStatus { Draft => "draft", Open => "open", Paid => "paid", Void => "void", Uncollectible => "uncollectible" });
stored_enum!(LineKind {
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    pub issued_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub payment_ids: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Invoice {
    /// Totals are the sums of the (already rounded) lines, exactly.
    pub fn total_lines(&mut self) {
        self.amount_without_tax = self.lines.iter().map(|l| l.amount_without_tax).sum();
        self.discount = self.lines.iter().map(|l| l.discount).sum();
        self.tax = self.lines.iter().map(|l| l.tax).sum();
        self.amount = self.lines.iter().map(|l| l.amount).sum();
    }

    pub fn amount_due(&self) -> Decimal {
        (self.amount - self.amount_paid).max(Decimal::ZERO)
    }
}

/// A state change, written in the same transaction as the change itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: String,
    pub seq: i64,
    pub event_type: String,
    pub resource_id: String,
    pub data_json: String,
    pub created_at: DateTime<Utc>,
}

impl Event {
    pub fn new(event_type: &str, resource_id: &str, data: serde_json::Value, at: DateTime<Utc>) -> Event {
        Event {
            id: recur_id::new_id(recur_id::Kind::Event),
            seq: 0,
            event_type: event_type.to_string(),
            resource_id: resource_id.to_string(),
            data_json: data.to_string(),
            created_at: at,
        }
    }
}

/// What an insert with an idempotency key found.
#[derive(Clone, Debug)]
pub struct Stored<T> {
    pub value: T,
    /// Fingerprint of the request that created it.
    pub request_hash: String,
    /// False when the key had been used before and the earlier value returned.
    pub created: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(amount: &str, tax: &str) -> InvoiceLine {
        let d = |s: &str| Decimal::from_str(s).expect("literal");
        InvoiceLine {
            id: "invl_1".into(),
            kind: LineKind::Subscription,
            description: String::new(),
            subscription_id: String::new(),
            offering_id: String::new(),
            rate_id: String::new(),
            product_id: String::new(),
            period_start: None,
            period_end: None,
            quantity: Decimal::ONE,
            unit_amount: String::new(),
            proration_fraction: "1".into(),
            tiers: vec![],
            amount_without_tax: d(amount),
            discount: Decimal::ZERO,
            tax: d(tax),
            tax_rate: String::new(),
            amount: d(amount) + d(tax),
        }
    }

    #[test]
    fn invoice_totals_are_sums_of_lines() {
        let now = Utc::now();
        let mut inv = Invoice {
            id: "inv_1".into(),
            number: "INV-000001".into(),
            account_id: String::new(),
            bill_group_id: String::new(),
            subscription_id: String::new(),
            status: InvoiceStatus::Open,
            currency: Currency::from_code("USD").expect("usd"),
            lines: vec![line("33.33", "2.75"), line("33.33", "2.75"), line("33.34", "2.75")],
            amount_without_tax: Decimal::ZERO,
            discount: Decimal::ZERO,
            tax: Decimal::ZERO,
            amount: Decimal::ZERO,
            amount_paid: Decimal::ZERO,
            period_start: None,
            period_end: None,
            issued_at: None,
            due_at: None,
            paid_at: None,
            payment_ids: vec![],
            created_at: now,
            updated_at: now,
        };
        inv.total_lines();
        assert_eq!(inv.amount_without_tax.to_string(), "100.00");
        assert_eq!(inv.tax.to_string(), "8.25");
        assert_eq!(inv.amount.to_string(), "108.25");
        assert_eq!(inv.amount_due(), inv.amount);
    }
}
