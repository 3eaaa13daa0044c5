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
}

#[async_trait]
pub trait Pricing: Send + Sync + 'static {
    /// Prices a one-offering cart. A refusal of the caller's input comes
    /// back with its code and the field paths of [`QuoteInput`]'s request
    /// (`offering`, `rate`, `items[i].quantity`, `coupon_codes[i]`).
    async fn quote(&self, ctx: &CallContext, input: &QuoteInput) -> AppResult<PricedQuote>;
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
}

#[async_trait]
pub trait Catalog: Send + Sync + 'static {
    /// The tenant's IANA time zone (its settings; `UTC` when unset).
    async fn time_zone(&self, ctx: &CallContext) -> AppResult<String>;
    /// The code of coupon `id`, or `None` when the tenant has no such coupon.
    async fn coupon_code(&self, ctx: &CallContext, id: &str) -> AppResult<Option<String>>;
}
