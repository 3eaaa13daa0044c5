//! What Recur needs of a payment provider. The sandbox implements it in
//! process; Stripe (over HTTPS) is the next implementation.

use async_trait::async_trait;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetupIntent {
    pub id: String,
    pub client_secret: String,
}

/// What the provider tells about a saved card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardDetails {
    pub provider_payment_method_id: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChargeAttempt {
    pub provider_customer_id: String,
    pub provider_payment_method_id: String,
    /// In the currency's minor units (cents).
    pub amount_minor: i64,
    pub currency: String,
    /// Sent to the provider so a retried attempt never charges twice.
    pub idempotency_key: String,
    pub return_url: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded { provider_payment_id: String },
    Failed { provider_payment_id: String, decline_code: String, message: String },
    RequiresAction { provider_payment_id: String, action_url: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderError {
    /// The token is not one the provider knows: the caller's mistake.
    InvalidToken(String),
    /// No answer in time: the outcome of a charge is unknown.
    Timeout,
    /// The provider could not be reached or failed.
    Unavailable(String),
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// "sandbox" or "stripe".
    fn name(&self) -> &'static str;
    fn publishable_key(&self) -> String;
    async fn create_customer(&self, email: &str, name: &str, idempotency_key: &str) -> Result<String, ProviderError>;
    async fn create_setup_intent(&self, provider_customer_id: &str) -> Result<SetupIntent, ProviderError>;
    async fn attach_payment_method(
        &self,
        provider_customer_id: &str,
        token: &str,
    ) -> Result<CardDetails, ProviderError>;
    async fn charge(&self, attempt: &ChargeAttempt) -> Result<ChargeOutcome, ProviderError>;
}
