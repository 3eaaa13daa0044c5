//! The catalog's resources and the rules that make them valid. No proto or
//! SQL types here: `api.rs` converts from the wire, `repo/` to rows.

pub mod document;
pub mod input;
pub mod plan;
pub mod validate;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use recur_money::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub type Metadata = BTreeMap<String, String>;

recur_storage::stored_enum!(#[derive(Serialize, Deserialize)] Status { Active => "active", Archived => "archived" });
recur_storage::stored_enum!(#[derive(Serialize, Deserialize)] ProductKind {
    Recurring => "recurring",
    PerUnit => "per_unit",
    OnOff => "on_off",
    Metered => "metered",
    OneTime => "one_time",
});
recur_storage::stored_enum!(#[derive(Serialize, Deserialize)] Aggregation {
    Sum => "sum",
    Count => "count",
    Max => "max",
    UniqueCount => "unique_count",
    Latest => "latest",
});
recur_storage::stored_enum!(#[derive(Serialize, Deserialize)] PeriodUnit { Day => "day", Week => "week", Month => "month", Year => "year" });
recur_storage::stored_enum!(#[derive(Serialize, Deserialize)] Timing { InAdvance => "in_advance", InArrears => "in_arrears" });
recur_storage::stored_enum!(#[derive(Serialize, Deserialize)] PricingModel {
    Flat => "flat",
    PerUnit => "per_unit",
    Tiered => "tiered",
    Volume => "volume",
    Stairstep => "stairstep",
    Package => "package",
});
recur_storage::stored_enum!(#[derive(Serialize, Deserialize)] ProrationMode { Day => "day", Second => "second" });
recur_storage::stored_enum!(#[derive(Serialize, Deserialize)] DiscountType { Percent => "percent", FixedAmount => "fixed_amount" });
recur_storage::stored_enum!(#[derive(Serialize, Deserialize)] CouponDuration { Once => "once", Repeating => "repeating", Forever => "forever" });
recur_storage::stored_enum!(#[derive(Serialize, Deserialize)] DunningFinalAction {
    CancelSubscription => "cancel_subscription",
    MarkUncollectible => "mark_uncollectible",
    LeavePastDue => "leave_past_due",
});

#[derive(Clone, Debug, PartialEq)]
pub struct Product {
    pub id: String,
    pub handle: Option<String>,
    pub name: String,
    pub description: String,
    pub kind: ProductKind,
    pub unit_name: String,
    pub tax_code: String,
    pub min_quantity: Option<Decimal>,
    pub max_quantity: Option<Decimal>,
    pub default_quantity: Option<Decimal>,
    /// How usage makes the period's quantity: a METERED product's (SUM
    /// unless said otherwise); `None` for every other kind.
    pub aggregation: Option<Aggregation>,
    /// The property a UNIQUE_COUNT counts the distinct values of.
    pub aggregation_property: String,
    pub status: Status,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Offering {
    pub id: String,
    pub handle: Option<String>,
    pub name: String,
    pub description: String,
    pub product_ids: Vec<String>,
    pub status: Status,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingPeriod {
    pub unit: PeriodUnit,
    pub count: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Inclusive upper bound; `None` for the last, open-ended tier.
    #[serde(with = "rust_decimal::serde::str_option")]
    pub up_to: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_amount: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub flat_amount: Decimal,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub product_id: String,
    pub model: PricingModel,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub unit_amount: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str_option")]
    pub flat_amount: Option<Decimal>,
    pub tiers: Vec<Tier>,
    pub package_size: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rate {
    pub id: String,
    pub handle: Option<String>,
    pub offering_id: String,
    pub name: String,
    pub description: String,
    pub currency: Currency,
    pub billing_period: BillingPeriod,
    pub timing: Timing,
    pub trial_days: u32,
    pub contract_term_periods: u32,
    pub auto_renew: bool,
    pub notice_period_days: u32,
    pub setup_fee: Option<Decimal>,
    pub prices: Vec<Price>,
    pub status: Status,
    pub metadata: Metadata,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A discount customers redeem by code.
#[derive(Clone, Debug, PartialEq)]
pub struct Coupon {
    pub id: String,
    /// Unique per tenant (archived coupons keep theirs).
    pub code: String,
    pub name: String,
    pub discount_type: DiscountType,
    /// For PERCENT coupons, in (0, 100].
    pub percent_off: Option<Decimal>,
    /// For FIXED_AMOUNT coupons: currency code → amount off.
    pub amounts_off: BTreeMap<String, Decimal>,
    pub duration: CouponDuration,
    /// For REPEATING coupons: how many billing periods.
    pub duration_periods: u32,
    /// Offerings and products the coupon is restricted to; both empty: any.
    pub offering_ids: Vec<String>,
    pub product_ids: Vec<String>,
    /// 0: unlimited.
    pub max_redemptions: u32,
    pub redeem_by: Option<DateTime<Utc>>,
    pub status: Status,
    pub metadata: Metadata,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRate {
    pub country: String,
    pub state: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub percent: Decimal,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dunning {
    pub retry_offset_days: Vec<u32>,
    pub final_action: DunningFinalAction,
}

/// A tenant's subscription policy: changes immediately, no credit for a
/// canceled period's unused part, remittance invoices due in 30 days.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionDefaults {
    #[serde(default)]
    pub change_at_period_end: bool,
    #[serde(default)]
    pub credit_unused_on_cancel: bool,
    /// 0: 30 days.
    #[serde(default)]
    pub invoice_due_days: u32,
    /// Seconds a renewal's invoice stays a draft; `None`: one hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_grace_secs: Option<u32>,
}

/// The grace period of a tenant that set none.
pub const DEFAULT_GRACE_SECS: u32 = 3600;

/// The longest grace period a tenant may set (7 days).
pub const MAX_GRACE_SECS: i64 = 7 * 86_400;

/// A tenant's defaults. Stored as one JSON document per tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    pub default_currency: Currency,
    pub time_zone: String,
    pub auto_email_invoice: bool,
    pub collect_invoice_balance_automatically: bool,
    pub proration_mode: ProrationMode,
    pub tax_rates: Vec<TaxRate>,
    pub prices_include_tax: bool,
    pub dunning: Dunning,
    /// Currency code → the largest single price amount and invoice line
    /// (exact in the currency); a currency not listed has the default
    /// ceiling of 99,999,999 minor units. Older documents have none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_amounts: BTreeMap<String, Decimal>,
    /// How contracts are changed, canceled and invoiced unless a call says
    /// otherwise. Older documents have the defaults.
    #[serde(default)]
    pub subscription_defaults: SubscriptionDefaults,
    #[serde(skip)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl TenantSettings {
    /// What a tenant that never saved settings gets: USD, UTC, invoices
    /// e-mailed and collected automatically, day proration, no tax, three
    /// retries over a week then cancellation.
    pub fn defaults() -> TenantSettings {
        TenantSettings {
            default_currency: Currency::from_code("USD").unwrap_or_else(|| unreachable!("USD is in the table")),
            time_zone: "UTC".into(),
            auto_email_invoice: true,
            collect_invoice_balance_automatically: true,
            proration_mode: ProrationMode::Day,
            tax_rates: Vec::new(),
            prices_include_tax: false,
            dunning: Dunning { retry_offset_days: vec![1, 3, 7], final_action: DunningFinalAction::CancelSubscription },
            max_amounts: BTreeMap::new(),
            subscription_defaults: SubscriptionDefaults::default(),
            updated_at: None,
        }
    }

    /// The tenant's ceilings: `max_amounts` over the defaults.
    pub fn ceilings(&self) -> recur_money::Ceilings {
        let mut c = recur_money::Ceilings::new();
        for (code, amount) in &self.max_amounts {
            if let Some(currency) = Currency::from_code(code) {
                c.set(recur_money::Money::new(*amount, currency));
            }
        }
        c
    }
}

/// How a resource is looked up.
#[derive(Clone, Copy, Debug)]
pub enum Lookup<'a> {
    Id(&'a str),
    Handle(&'a str),
}

/// What a list is ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    CreateTime,
    Name,
}

/// A page of a list: after the cursor, at most `limit` rows.
#[derive(Clone, Debug)]
pub struct PageQuery {
    pub after: Option<recur_storage::page::Cursor>,
    pub limit: i64,
    pub order: Order,
    pub descending: bool,
}

#[derive(Clone, Debug, Default)]
pub struct ProductFilter {
    pub status: Option<Status>,
    pub kind: Option<ProductKind>,
}

#[derive(Clone, Debug, Default)]
pub struct OfferingFilter {
    pub status: Option<Status>,
    pub product_id: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct RateFilter {
    pub status: Option<Status>,
    pub offering_id: Option<String>,
    pub currency: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct CouponFilter {
    pub status: Option<Status>,
}

/// One write of a catalog change set; a change set is applied in one
/// transaction, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum CatalogOp {
    InsertProduct(Product),
    UpdateProduct(Product),
    InsertOffering(Offering),
    /// Updates the offering's fields and replaces its product set.
    UpdateOffering(Offering),
    InsertRate(Rate),
    /// Updates name, description, metadata and status (prices never change).
    UpdateRate(Rate),
    InsertCoupon(Coupon),
    UpdateCoupon(Coupon),
}

/// Resources that are archived, never deleted: archived ones stay readable
/// for the contracts that use them.
pub trait Archivable: Clone {
    /// Archives the resource as of `at`; false when it already was.
    fn archive(&mut self, at: DateTime<Utc>) -> bool;
    /// The write that stores the resource as it now is.
    fn update_op(self) -> CatalogOp;
}

macro_rules! archivable {
    ($($ty:ident => $op:ident),+) => {$(
        impl Archivable for $ty {
            fn archive(&mut self, at: DateTime<Utc>) -> bool {
                if self.status == Status::Archived {
                    return false;
                }
                self.status = Status::Archived;
                self.updated_at = at;
                true
            }

            fn update_op(self) -> CatalogOp {
                CatalogOp::$op(self)
            }
        }
    )+};
}

archivable!(Product => UpdateProduct, Offering => UpdateOffering, Rate => UpdateRate, Coupon => UpdateCoupon);

/// Everything a tenant's catalog holds, for planning a change set.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub products: Vec<Product>,
    pub offerings: Vec<Offering>,
    pub rates: Vec<Rate>,
    pub coupons: Vec<Coupon>,
}
