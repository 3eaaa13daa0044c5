//! What Recur needs of a payment provider. The sandbox implements it in
//! process (with its own tables, as a real provider keeps its own books);
//! Stripe implements it over HTTPS.
//!
//! Every call that moves money carries an idempotency key, and a provider
//! must answer a repeated key with the first call's outcome: that is what lets
//! the gateway retry a call whose answer it never saw without charging twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

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
    /// In the provider's minor units (cents).
    pub amount_minor: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    pub description: String,
    /// Sent to the provider so a retried attempt never charges twice.
    pub idempotency_key: String,
    /// Where a 3-D Secure page sends the customer afterwards.
    pub return_url: String,
    /// Recur's references (tenant, payment id), stored at the provider so
    /// its webhooks can be matched to the ledger.
    pub metadata: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChargeOutcome {
    Succeeded {
        provider_payment_id: String,
    },
    Failed {
        provider_payment_id: String,
        decline_code: String,
        message: String,
    },
    /// The customer must authenticate. `action_url` is the provider's own
    /// page; `None` asks the gateway for its hosted 3-D Secure page.
    RequiresAction {
        provider_payment_id: String,
        action_url: Option<String>,
    },
    /// Accepted, not decided yet (Stripe's `processing`): poll later.
    Pending {
        provider_payment_id: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefundAttempt {
    pub provider_payment_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// `duplicate`, `fraudulent`, `requested_by_customer` or empty.
    pub reason: String,
    pub idempotency_key: String,
    pub metadata: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefundOutcome {
    Succeeded { provider_refund_id: String },
    Pending { provider_refund_id: String },
    Failed { provider_refund_id: String, message: String },
}

/// A provider's event, verified and parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: String,
    pub kind: WebhookKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookKind {
    /// A payment reached a state; `recur_payment_id` is from the metadata
    /// Recur stored with it, if any.
    Payment { provider_payment_id: String, recur_payment_id: Option<String>, outcome: ChargeOutcome },
    /// A refund reached a state.
    Refund { provider_refund_id: String, recur_refund_id: Option<String>, outcome: RefundOutcome },
    /// An event Recur does not act on (acknowledged, not handled).
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookError {
    /// No usable `Stripe-Signature` header.
    MalformedSignature(String),
    /// The signature does not match the payload.
    SignatureMismatch,
    /// Signed too long ago (or in the future): a replay.
    OutsideTolerance { age_secs: i64 },
    /// The payload is not an event.
    BadPayload(String),
    /// The provider sends no webhooks, or none are configured.
    NotConfigured(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderError {
    /// The token is not one the provider knows: the caller's mistake.
    InvalidToken(String),
    /// The provider refused the request as malformed (not a decline).
    InvalidRequest(String),
    /// No answer in time: the outcome is unknown.
    Timeout,
    /// The provider could not be reached or failed.
    Unavailable(String),
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// "sandbox" or "stripe".
    fn name(&self) -> &'static str;
    fn publishable_key(&self) -> String;
    /// Whether Recur's own hosted pages collect cards and run 3-D Secure for
    /// this provider (the sandbox); others bring their own.
    fn uses_hosted_pages(&self) -> bool {
        false
    }
    async fn create_customer(&self, email: &str, name: &str, idempotency_key: &str) -> Result<String, ProviderError>;
    async fn create_setup_intent(
        &self,
        provider_customer_id: &str,
        idempotency_key: &str,
    ) -> Result<SetupIntent, ProviderError>;
    async fn attach_payment_method(
        &self,
        provider_customer_id: &str,
        token: &str,
    ) -> Result<CardDetails, ProviderError>;
    async fn detach_payment_method(&self, provider_payment_method_id: &str) -> Result<(), ProviderError>;
    /// Charges off-session; the same idempotency key returns the same outcome.
    async fn charge(&self, attempt: &ChargeAttempt) -> Result<ChargeOutcome, ProviderError>;
    /// The current state of a payment the provider already knows.
    async fn retrieve_charge(&self, provider_payment_id: &str) -> Result<ChargeOutcome, ProviderError>;
    /// Refunds part or all of a payment; idempotent by key.
    async fn refund(&self, attempt: &RefundAttempt) -> Result<RefundOutcome, ProviderError>;
    /// The customer passed (or failed) the hosted 3-D Secure challenge.
    async fn complete_action(&self, provider_payment_id: &str, approve: bool) -> Result<ChargeOutcome, ProviderError> {
        let _ = (provider_payment_id, approve);
        Err(ProviderError::InvalidRequest(format!("{} runs its own authentication pages", self.name())))
    }
    /// Turns a test card typed on the hosted page into a token (sandbox).
    fn tokenize_test_card(&self, number: &str, exp_month: u32, exp_year: u32, cvc: &str) -> Result<String, String> {
        let _ = (number, exp_month, exp_year, cvc);
        Err(format!("{} collects cards on its own pages", self.name()))
    }
    /// Verifies and parses a webhook delivery.
    fn parse_webhook(&self, payload: &[u8], signature: &str, now: DateTime<Utc>) -> Result<WebhookEvent, WebhookError> {
        let _ = (payload, signature, now);
        Err(WebhookError::NotConfigured(format!("{} sends no webhooks", self.name())))
    }
}
