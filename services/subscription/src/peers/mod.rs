//! The services the subscription service calls, behind small traits so
//! the use cases can be tested without a network: pricing (every amount),
//! the payment gateway (every charge) and the catalog (the tenant's time
//! zone, coupon codes). [`grpc`] has the real clients.

pub mod grpc;

use async_trait::async_trait;
use recur_auth::CallContext;
use recur_error::AppResult;
use rust_decimal::Decimal;

use crate::domain::Address;
use crate::domain::invoice::PricedQuote;
use crate::domain::usage::{ArrearsItem, RatedUsage};

/// A cart of one offering, to price.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuoteInput {
    pub offering: String,
    pub rate: String,
    /// Product and quantity as the caller gave them (empty: the default).
    pub items: Vec<(String, String)>,
    pub coupon_codes: Vec<String>,
    pub tax_address: Address,
    pub tax_exempt: bool,
    pub compute_tax: bool,
    pub start_date: String,
    pub time_zone: String,
    /// A contract going on after a pause or cancellation: no trial, setup
    /// fee or one-time items.
    pub continuation: bool,
    /// Coupon code → (times redeemed so far, periods already discounted).
    pub coupon_usages: Vec<(String, i32, i32)>,
    /// Product (as in `items`) → the price agreed for it.
    pub custom_prices: Vec<(String, crate::domain::CustomPrice)>,
    /// The bill group's billing day (0: anniversary billing).
    pub billing_day: u32,
}

impl QuoteInput {
    /// The cart of contract `sub` of `account` as it stands: its offering,
    /// rate, items (with their custom prices) and coupons, taxed where the
    /// account is; `continuation` for a contract going on (no trial, setup
    /// fee or one-time items again).
    pub fn of_contract(
        sub: &crate::domain::Subscription,
        account: &crate::domain::Account,
        continuation: bool,
    ) -> QuoteInput {
        QuoteInput {
            offering: sub.offering_id.clone(),
            rate: sub.rate_id.clone(),
            items: sub.items.iter().map(|i| (i.product_id.clone(), i.quantity.normalize().to_string())).collect(),
            coupon_codes: sub.coupon_codes.clone(),
            tax_address: account.billing_address.clone(),
            tax_exempt: account.tax_exempt,
            compute_tax: !account.billing_address.country.is_empty(),
            start_date: String::new(),
            time_zone: account.time_zone.clone(),
            continuation,
            coupon_usages: Vec::new(),
            custom_prices: crate::domain::custom_prices(&sub.items),
            billing_day: 0,
        }
    }
}

/// A contract priced before that pricing now refuses (its rate archived,
/// a coupon expired): FAILED_PRECONDITION, the contract's state, not the
/// caller's input.
pub fn repriced(e: recur_error::AppError) -> recur_error::AppError {
    if e.code() == tonic::Code::InvalidArgument {
        recur_error::AppError::failed_precondition(e.reason().to_string(), e.message().to_string())
    } else {
        e
    }
}

/// A change of a contract to price: the contract as it is, what it is to
/// become, when, in which time zone.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeQuestion {
    pub offering_id: String,
    pub rate_id: String,
    pub items: Vec<(String, Decimal)>,
    pub period_start: chrono::DateTime<chrono::Utc>,
    pub period_end: chrono::DateTime<chrono::Utc>,
    pub anchor: crate::domain::BillingAnchor,
    /// Empty: keep the rate.
    pub new_rate: String,
    /// Empty: keep the items.
    pub new_items: Vec<(String, String)>,
    /// Custom prices of the contract's products, before and after.
    pub custom_prices: Vec<(String, crate::domain::CustomPrice)>,
    pub new_custom_prices: Vec<(String, crate::domain::CustomPrice)>,
    pub at_period_end: bool,
    pub at: chrono::DateTime<chrono::Utc>,
    pub time_zone: String,
    /// The tenant's proration mode, as the subscription service read it.
    pub mode: crate::domain::lifecycle::ProrationMode,
}

/// One credit (negative) or charge line of a change.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeLine {
    pub credit: bool,
    pub product_id: String,
    pub rate_id: String,
    pub quantity: Decimal,
    pub period_start: Option<chrono::DateTime<chrono::Utc>>,
    pub period_end: Option<chrono::DateTime<chrono::Utc>>,
    pub fraction: String,
    /// Signed: credits are negative.
    pub amount: Decimal,
    pub description: String,
}

/// What pricing says a change does.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangePriced {
    pub lines: Vec<ChangeLine>,
    /// Charges less credits (negative: a net credit).
    pub net: Decimal,
    pub next_recurring: Decimal,
    pub effective_at: chrono::DateTime<chrono::Utc>,
    pub new_period_start: chrono::DateTime<chrono::Utc>,
    pub new_period_end: chrono::DateTime<chrono::Utc>,
    pub anchor: crate::domain::BillingAnchor,
    /// The items after the change and the offering of the rate in force.
    pub items: Vec<(String, Decimal)>,
    pub offering_id: String,
    /// The custom prices the contract keeps after the change (filled in by
    /// the caller, not by pricing).
    pub custom_prices: Vec<(String, crate::domain::CustomPrice)>,
}

#[async_trait]
pub trait Pricing: Send + Sync + 'static {
    /// Prices a one-offering cart. A refusal of the caller's input comes
    /// back with its code and the field paths of [`QuoteInput`]'s request
    /// (`offering`, `rate`, `items[i].quantity`, `coupon_codes[i]`).
    async fn quote(&self, ctx: &CallContext, input: &QuoteInput) -> AppResult<PricedQuote>;

    /// Prices a change of a contract (PricingService/PreviewChange); a
    /// refusal names this service's fields (`change.rate`,
    /// `change.items[i].quantity`).
    async fn preview_change(&self, ctx: &CallContext, q: &ChangeQuestion) -> AppResult<ChangePriced>;

    /// Rates an in-arrears quantity of one product of a closed period
    /// (PricingService/RateUsage), taxed as the quote would be.
    async fn rate_usage(&self, ctx: &CallContext, q: &UsageQuestion) -> AppResult<RatedUsage>;
}

/// An in-arrears quantity to rate: one product of a rate over a period,
/// taxed where the account is, at the contract's custom price if any.
#[derive(Clone, Debug, PartialEq)]
pub struct UsageQuestion {
    pub rate_id: String,
    pub product_id: String,
    pub quantity: Decimal,
    pub period_start: chrono::DateTime<chrono::Utc>,
    pub period_end: chrono::DateTime<chrono::Utc>,
    pub tax_address: Address,
    pub tax_exempt: bool,
    pub compute_tax: bool,
    pub custom_price: Option<crate::domain::CustomPrice>,
    /// For a per-period item over part of a period: the whole period, to
    /// prorate by (days counted in `time_zone`).
    pub full_period: Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>,
    pub time_zone: String,
    /// The contract's coupons: code, and the invoices each has been in
    /// force for (pricing applies those still in force).
    pub coupons: Vec<(String, i32)>,
    /// What each FIXED_AMOUNT coupon may still take off the invoice (what
    /// its other lines left).
    pub fixed_left: Vec<(String, recur_money::Money)>,
    /// FIXED_AMOUNT coupons not in `fixed_left` may take their whole amount
    /// (the first in-arrears line of an invoice without in-advance lines).
    pub whole_fixed: bool,
}

/// A charge of an invoice.
#[derive(Clone, Debug, PartialEq)]
pub struct ChargeInput {
    pub customer_id: String,
    pub payment_method_id: String,
    pub amount: recur_money::Money,
    pub invoice_id: String,
    pub description: String,
    /// Derived from the invoice: a retry makes no second charge.
    pub idempotency_key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    Succeeded,
    Failed,
    /// Not settled yet (3-D Secure, a provider that did not answer).
    Pending,
}

/// What became of a charge.
#[derive(Clone, Debug, PartialEq)]
pub struct PaymentOutcome {
    pub payment_id: String,
    pub status: PaymentStatus,
    pub amount: Decimal,
    pub decline_code: String,
}

#[async_trait]
pub trait Payments: Send + Sync + 'static {
    /// Ok when `customer_id` exists at the gateway and `payment_method_id`
    /// is one of its usable methods; INVALID_ARGUMENT
    /// (`CUSTOMER_NOT_FOUND`, `PAYMENT_METHOD_NOT_FOUND`) naming `field`
    /// otherwise. Nothing is charged.
    async fn check_method(
        &self,
        ctx: &CallContext,
        customer_id: &str,
        payment_method_id: &str,
        field: &str,
    ) -> AppResult<()>;

    /// Charges through the gateway's idempotent Charge.
    async fn charge(&self, ctx: &CallContext, charge: &ChargeInput) -> AppResult<PaymentOutcome>;

    /// The tenant's payment events after `after_sequence`, oldest first (at
    /// most `limit`): how payments left pending were settled.
    async fn payment_events(&self, ctx: &CallContext, after_sequence: i64, limit: i32) -> AppResult<Vec<PaymentEvent>>;
}

/// A payment event of the gateway, as the subscription service reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct PaymentEvent {
    pub sequence: i64,
    pub payment: PaymentOutcome,
    pub invoice_id: String,
}

/// A tenant's policy for its contracts (catalog tenant settings).
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub time_zone: String,
    pub proration: crate::domain::lifecycle::ProrationMode,
    pub change_at_period_end: bool,
    pub credit_unused_on_cancel: bool,
    /// Days a remittance invoice is due after it is issued.
    pub invoice_due_days: u32,
    /// How long a renewal's invoice stays a draft.
    pub grace: chrono::Duration,
    /// What follows an unpaid invoice.
    pub dunning: crate::domain::dunning::Dunning,
}

/// What the subscription service needs of a rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateTerms {
    pub period: recur_period::Period,
    pub notice_days: u32,
}

#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// The tenant's IANA time zone (its settings; `UTC` when unset).
    async fn time_zone(&self, ctx: &CallContext) -> AppResult<String> {
        Ok(self.policy(ctx).await?.time_zone)
    }
    /// The tenant's settings that decide how its contracts change.
    async fn policy(&self, ctx: &CallContext) -> AppResult<Policy>;
    /// Coupon `code`'s id and redemption limit (0: none), or `None` when
    /// the tenant has no such coupon.
    async fn coupon_terms(&self, ctx: &CallContext, code: &str) -> AppResult<Option<(String, i64)>>;
    /// Product `key` (id or handle): its id and name, or `None` when the
    /// tenant has none.
    async fn product(&self, ctx: &CallContext, key: &str) -> AppResult<Option<(String, String)>>;
    /// The terms of rate `id` (id or handle): its period and notice.
    async fn rate_terms(&self, ctx: &CallContext, id: &str) -> AppResult<RateTerms>;
    /// The code of coupon `id`, or `None` when the tenant has no such coupon.
    async fn coupon_code(&self, ctx: &CallContext, id: &str) -> AppResult<Option<String>>;
    /// The products rate `id` bills at the end of each period: its METERED
    /// products (with their meters) and, for a rate billed in arrears, all
    /// of its products. A rate's prices and a product's kind and meter never
    /// change, so an implementation may keep the answer.
    async fn arrears_items(&self, ctx: &CallContext, rate_id: &str) -> AppResult<std::sync::Arc<Vec<ArrearsItem>>>;
}
