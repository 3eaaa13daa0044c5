//! The Stripe provider: Stripe's REST API over HTTPS (reqwest + rustls),
//! form-encoded as Stripe expects, with an `Idempotency-Key` on every POST
//! and a configurable base URL (tests point it at a local server that
//! answers as Stripe's documentation shows).
//!
//! - customers: `POST /v1/customers`
//! - collecting a card: `POST /v1/setup_intents` (client secret for
//!   Stripe.js), then attaching what the customer confirmed: a `pm_…`
//!   (`POST /v1/payment_methods/{id}/attach`), a confirmed `seti_…`, or a
//!   legacy `tok_…` (turned into a payment method first)
//! - charges: off-session `POST /v1/payment_intents` with `confirm=true`; a
//!   `card_error` is a FAILED payment with its decline code; an
//!   `authentication_required` decline is confirmed again on-session to get
//!   the page where the customer authenticates (REQUIRES_ACTION)
//! - refunds: `POST /v1/refunds`
//! - webhooks: `Stripe-Signature` checked (see [`super::webhook`])
//!
//! 5xx answers, 429s and network errors are retried with the same
//! idempotency key (Stripe replays the first result), with backoff, unless
//! Stripe says `Stripe-Should-Retry: false`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::provider::{
    CardDetails, ChargeAttempt, ChargeOutcome, Provider, ProviderError, RefundAttempt, RefundOutcome, SetupIntent,
    WebhookError, WebhookEvent, WebhookKind,
};

pub const DEFAULT_API_BASE: &str = "https://api.stripe.com";
/// The API version Recur's requests and parsing follow.
pub const API_VERSION: &str = "2024-06-20";

#[derive(Clone)]
pub struct StripeConfig {
    pub secret_key: String,
    pub publishable_key: String,
    /// The webhook endpoint's signing secret (`whsec_…`).
    pub webhook_secret: Option<String>,
    pub api_base: String,
    /// Retries after the first try, for 5xx, 429 and network errors.
    pub max_retries: u32,
    /// First backoff; doubles per retry.
    pub backoff: Duration,
    /// Per request.
    pub timeout: Duration,
}

impl StripeConfig {
    pub fn new(secret_key: impl Into<String>, publishable_key: impl Into<String>) -> StripeConfig {
        StripeConfig {
            secret_key: secret_key.into(),
            publishable_key: publishable_key.into(),
            webhook_secret: None,
            api_base: DEFAULT_API_BASE.into(),
            max_retries: 2,
            backoff: Duration::from_millis(250),
            timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("secret_key", &"***")
            .field("publishable_key", &self.publishable_key)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "***"))
            .field("api_base", &self.api_base)
            .finish()
    }
}

pub struct Stripe {
    config: StripeConfig,
    http: reqwest::Client,
}

/// Form fields in Stripe's bracket notation (`metadata[key]=value`).
#[derive(Default)]
struct Form(Vec<(String, String)>);

impl Form {
    fn add(mut self, key: impl Into<String>, value: impl Into<String>) -> Form {
        self.0.push((key.into(), value.into()));
        self
    }

    fn add_opt(self, key: &str, value: &str) -> Form {
        if value.is_empty() { self } else { self.add(key, value) }
    }

    fn metadata(mut self, pairs: &[(String, String)]) -> Form {
        for (k, v) in pairs {
            self.0.push((format!("metadata[{k}]"), v.clone()));
        }
        self
    }

    fn encode(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

/// How a call to Stripe ended when it did not return an object.
#[derive(Debug)]
enum ApiError {
    /// Stripe answered with an error object.
    Stripe {
        status: u16,
        error: Value,
    },
    Timeout,
    Network(String),
}

impl ApiError {
    fn field(&self, name: &str) -> String {
        match self {
            ApiError::Stripe { error, .. } => error.get(name).and_then(Value::as_str).unwrap_or_default().to_string(),
            _ => String::new(),
        }
    }

    fn into_provider(self, token_param: &[&str]) -> ProviderError {
        match self {
            ApiError::Timeout => ProviderError::Timeout,
            ApiError::Network(m) => ProviderError::Unavailable(format!("Stripe unreachable: {m}")),
            ApiError::Stripe { status, ref error } => {
                let message = error.get("message").and_then(Value::as_str).unwrap_or("no message").to_string();
                let code = error.get("code").and_then(Value::as_str).unwrap_or_default();
                let param = error.get("param").and_then(Value::as_str).unwrap_or_default();
                match status {
                    401 | 403 => ProviderError::Unavailable(format!("Stripe refused the API key: {message}")),
                    // Busy with the same key, or rate-limited: not an answer.
                    409 | 429 => ProviderError::Unavailable(format!("Stripe answered {status}: {message}")),
                    404 => ProviderError::InvalidToken(message),
                    400 if code == "resource_missing" && token_param.contains(&param) => {
                        ProviderError::InvalidToken(message)
                    }
                    400..=499 => ProviderError::InvalidRequest(format!("Stripe: {message}")),
                    _ => ProviderError::Unavailable(format!("Stripe answered {status}: {message}")),
                }
            }
        }
    }
}

/// Stripe's amount for `amount_minor` (ISO minor units) of `currency`:
/// three-decimal currencies must end in 0, and ISK counts in hundredths.
pub fn stripe_amount(amount_minor: i64, currency: &str) -> Result<i64, ProviderError> {
    match currency {
        "BHD" | "JOD" | "KWD" | "OMR" | "TND" if amount_minor % 10 != 0 => Err(ProviderError::InvalidRequest(format!(
            "Stripe charges {currency} in multiples of 0.010: round the amount to two decimals"
        ))),
        "ISK" => amount_minor.checked_mul(100).ok_or_else(|| ProviderError::InvalidRequest("amount too large".into())),
        _ => Ok(amount_minor),
    }
}

fn text(v: &Value, path: &[&str]) -> String {
    path.iter().try_fold(v, |v, k| v.get(*k)).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// A PaymentIntent's state as Recur sees it.
fn intent_outcome(pi: &Value) -> ChargeOutcome {
    let provider_payment_id = text(pi, &["id"]);
    match text(pi, &["status"]).as_str() {
        "succeeded" => ChargeOutcome::Succeeded { provider_payment_id },
        "requires_action" => {
            let url = text(pi, &["next_action", "redirect_to_url", "url"]);
            ChargeOutcome::RequiresAction { provider_payment_id, action_url: (!url.is_empty()).then_some(url) }
        }
        "processing" | "requires_capture" | "requires_confirmation" => ChargeOutcome::Pending { provider_payment_id },
        "canceled" => ChargeOutcome::Failed {
            provider_payment_id,
            decline_code: "canceled".into(),
            message: "The payment was canceled.".into(),
        },
        // requires_payment_method: the last attempt failed.
        _ => {
            let err = pi.get("last_payment_error").cloned().unwrap_or(Value::Null);
            let mut decline_code = text(&err, &["decline_code"]);
            if decline_code.is_empty() {
                decline_code = text(&err, &["code"]);
            }
            if decline_code.is_empty() {
                decline_code = "generic_decline".into();
            }
            let mut message = text(&err, &["message"]);
            if message.is_empty() {
                message = "The payment failed.".into();
            }
            ChargeOutcome::Failed { provider_payment_id, decline_code, message }
        }
    }
}

fn refund_outcome(r: &Value) -> RefundOutcome {
    let provider_refund_id = text(r, &["id"]);
    match text(r, &["status"]).as_str() {
        "succeeded" => RefundOutcome::Succeeded { provider_refund_id },
        "pending" | "requires_action" => RefundOutcome::Pending { provider_refund_id },
        other => {
            let reason = text(r, &["failure_reason"]);
            RefundOutcome::Failed {
                provider_refund_id,
                message: if reason.is_empty() { format!("refund {other}") } else { reason },
            }
        }
    }
}

fn card_details(pm: &Value) -> Result<CardDetails, ProviderError> {
    let card = pm.get("card").ok_or_else(|| ProviderError::InvalidToken("is not a card payment method".into()))?;
    let num = |k: &str| card.get(k).and_then(Value::as_u64).unwrap_or(0) as u32;
    Ok(CardDetails {
        provider_payment_method_id: text(pm, &["id"]),
        brand: text(card, &["brand"]),
        last4: text(card, &["last4"]),
        exp_month: num("exp_month"),
        exp_year: num("exp_year"),
    })
}

impl Stripe {
    pub fn new(config: StripeConfig) -> Result<Stripe, String> {
        // reqwest is built without a default crypto provider: use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("Recur/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Stripe { config, http })
    }

    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.api_base.trim_end_matches('/'))
    }

    async fn post(&self, path: &str, form: Form, idempotency_key: &str) -> Result<Value, ApiError> {
        let body = form.encode();
        let url = self.url(path);
        self.send(|| {
            self.http
                .post(&url)
                .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("Idempotency-Key", idempotency_key)
                .body(body.clone())
        })
        .await
    }

    async fn get(&self, path: &str) -> Result<Value, ApiError> {
        let url = self.url(path);
        self.send(|| self.http.get(&url)).await
    }

    async fn send(&self, request: impl Fn() -> reqwest::RequestBuilder) -> Result<Value, ApiError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let result =
                request().bearer_auth(&self.config.secret_key).header("Stripe-Version", API_VERSION).send().await;
            let (retry, err) = match result {
                Err(e) if e.is_timeout() => (true, ApiError::Timeout),
                Err(e) => (e.is_connect() || e.is_request(), ApiError::Network(e.to_string())),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let should_retry =
                        resp.headers().get("stripe-should-retry").and_then(|v| v.to_str().ok()).map(|v| v == "true");
                    let bytes = match resp.bytes().await {
                        Ok(b) => b,
                        Err(e) => {
                            let err = if e.is_timeout() { ApiError::Timeout } else { ApiError::Network(e.to_string()) };
                            if tries > self.config.max_retries {
                                return Err(err);
                            }
                            self.backoff(tries).await;
                            continue;
                        }
                    };
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    if (200..300).contains(&status) {
                        return Ok(body);
                    }
                    let error = body.get("error").cloned().unwrap_or_else(
                        || serde_json::json!({"type": "api_error", "message": format!("HTTP {status}")}),
                    );
                    let retry = should_retry.unwrap_or(status >= 500 || status == 429 || status == 409);
                    (retry, ApiError::Stripe { status, error })
                }
            };
            if !retry || tries > self.config.max_retries {
                return Err(err);
            }
            tracing::info!(tries, error = ?err, "Stripe call failed; retrying with the same idempotency key");
            self.backoff(tries).await;
        }
    }

    async fn backoff(&self, tries: u32) {
        let wait = self.config.backoff.saturating_mul(1 << (tries - 1).min(6));
        tokio::time::sleep(wait).await;
    }

    /// A PaymentMethod id from what the customer's browser produced.
    async fn payment_method_from_token(&self, customer: &str, token: &str) -> Result<CardDetails, ProviderError> {
        if token.starts_with("seti_") {
            let seti = self.get(&format!("/v1/setup_intents/{token}")).await.map_err(|e| e.into_provider(&[]))?;
            if text(&seti, &["status"]) != "succeeded" {
                return Err(ProviderError::InvalidToken(format!(
                    "the setup intent is {}, not succeeded: the customer has not confirmed a card yet",
                    text(&seti, &["status"])
                )));
            }
            let owner = text(&seti, &["customer"]);
            if !owner.is_empty() && owner != customer {
                return Err(ProviderError::InvalidToken("the setup intent belongs to another customer".into()));
            }
            let pm = match seti.get("payment_method") {
                Some(Value::String(id)) => {
                    self.get(&format!("/v1/payment_methods/{id}")).await.map_err(|e| e.into_provider(&[]))?
                }
                Some(obj @ Value::Object(_)) => obj.clone(),
                _ => return Err(ProviderError::InvalidToken("the setup intent has no payment method".into())),
            };
            return card_details(&pm);
        }
        let pm_id = if token.starts_with("tok_") {
            let form = Form::default().add("type", "card").add("card[token]", token);
            let pm = self
                .post("/v1/payment_methods", form, &format!("pm-from:{token}"))
                .await
                .map_err(|e| e.into_provider(&["card[token]", "card"]))?;
            text(&pm, &["id"])
        } else if token.starts_with("pm_") {
            token.to_string()
        } else {
            return Err(ProviderError::InvalidToken("expected a Stripe pm_…, seti_… or tok_… id".into()));
        };
        let pm = self
            .post(
                &format!("/v1/payment_methods/{pm_id}/attach"),
                Form::default().add("customer", customer),
                &format!("attach:{customer}:{pm_id}"),
            )
            .await
            .map_err(|e| e.into_provider(&["payment_method"]))?;
        card_details(&pm)
    }
}

#[async_trait]
impl Provider for Stripe {
    fn name(&self) -> &'static str {
        "stripe"
    }

    fn publishable_key(&self) -> String {
        self.config.publishable_key.clone()
    }

    async fn create_customer(&self, email: &str, name: &str, idempotency_key: &str) -> Result<String, ProviderError> {
        let form = Form::default().add_opt("email", email).add_opt("name", name);
        let c = self.post("/v1/customers", form, idempotency_key).await.map_err(|e| e.into_provider(&[]))?;
        Ok(text(&c, &["id"]))
    }

    async fn create_setup_intent(&self, customer: &str, idempotency_key: &str) -> Result<SetupIntent, ProviderError> {
        let form =
            Form::default().add("customer", customer).add("usage", "off_session").add("payment_method_types[]", "card");
        let s =
            self.post("/v1/setup_intents", form, idempotency_key).await.map_err(|e| e.into_provider(&["customer"]))?;
        Ok(SetupIntent { id: text(&s, &["id"]), client_secret: text(&s, &["client_secret"]) })
    }

    async fn attach_payment_method(&self, customer: &str, token: &str) -> Result<CardDetails, ProviderError> {
        self.payment_method_from_token(customer, token).await
    }

    async fn detach_payment_method(&self, pm: &str) -> Result<(), ProviderError> {
        match self.post(&format!("/v1/payment_methods/{pm}/detach"), Form::default(), &format!("detach:{pm}")).await {
            Ok(_) => Ok(()),
            // Already detached (or gone): what was asked is true.
            Err(ApiError::Stripe { status: 400 | 404, .. }) => Ok(()),
            Err(e) => Err(e.into_provider(&[])),
        }
    }

    async fn charge(&self, a: &ChargeAttempt) -> Result<ChargeOutcome, ProviderError> {
        let amount = stripe_amount(a.amount_minor, &a.currency)?;
        let form = Form::default()
            .add("amount", amount.to_string())
            .add("currency", a.currency.to_ascii_lowercase())
            .add("customer", &a.provider_customer_id)
            .add("payment_method", &a.provider_payment_method_id)
            .add("off_session", "true")
            .add("confirm", "true")
            .add_opt("description", &a.description)
            .metadata(&a.metadata);
        match self.post("/v1/payment_intents", form, &a.idempotency_key).await {
            Ok(pi) => Ok(intent_outcome(&pi)),
            Err(e @ ApiError::Stripe { status: 402, .. }) => {
                let pi = match &e {
                    ApiError::Stripe { error, .. } => error.get("payment_intent").cloned().unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                let provider_payment_id = text(&pi, &["id"]);
                let code = e.field("code");
                let mut decline_code = e.field("decline_code");
                if decline_code.is_empty() {
                    decline_code = if code.is_empty() { "generic_decline".into() } else { code.clone() };
                }
                if (code == "authentication_required" || decline_code == "authentication_required")
                    && !provider_payment_id.is_empty()
                {
                    // Off-session could not authenticate: confirm on-session
                    // to get the page where the customer can.
                    let form = Form::default()
                        .add("payment_method", &a.provider_payment_method_id)
                        .add("return_url", &a.return_url);
                    let confirmed = self
                        .post(
                            &format!("/v1/payment_intents/{provider_payment_id}/confirm"),
                            form,
                            &format!("{}:confirm", a.idempotency_key),
                        )
                        .await;
                    if let Ok(pi) = confirmed {
                        return Ok(intent_outcome(&pi));
                    }
                }
                Ok(ChargeOutcome::Failed { provider_payment_id, decline_code, message: e.field("message") })
            }
            Err(e) => Err(e.into_provider(&["payment_method", "customer"])),
        }
    }

    async fn retrieve_charge(&self, provider_payment_id: &str) -> Result<ChargeOutcome, ProviderError> {
        let pi =
            self.get(&format!("/v1/payment_intents/{provider_payment_id}")).await.map_err(|e| e.into_provider(&[]))?;
        Ok(intent_outcome(&pi))
    }

    async fn refund(&self, a: &RefundAttempt) -> Result<RefundOutcome, ProviderError> {
        let amount = stripe_amount(a.amount_minor, &a.currency)?;
        let reason = match a.reason.as_str() {
            "duplicate" | "fraudulent" | "requested_by_customer" => a.reason.as_str(),
            _ => "",
        };
        let form = Form::default()
            .add("payment_intent", &a.provider_payment_id)
            .add("amount", amount.to_string())
            .add_opt("reason", reason)
            .metadata(&a.metadata);
        match self.post("/v1/refunds", form, &a.idempotency_key).await {
            Ok(r) => Ok(refund_outcome(&r)),
            // Stripe refuses what cannot be refunded (already refunded, too
            // large): a definite no.
            Err(e @ ApiError::Stripe { status: 400 | 402, .. }) => {
                Ok(RefundOutcome::Failed { provider_refund_id: String::new(), message: e.field("message") })
            }
            Err(e) => Err(e.into_provider(&[])),
        }
    }

    fn parse_webhook(&self, payload: &[u8], signature: &str, now: DateTime<Utc>) -> Result<WebhookEvent, WebhookError> {
        let secret =
            self.config.webhook_secret.as_deref().ok_or_else(|| {
                WebhookError::NotConfigured("no webhook signing secret is configured for Stripe".into())
            })?;
        super::webhook::verify(payload, signature, secret, now, super::webhook::TOLERANCE_SECS)?;
        parse_event(payload)
    }
}

/// A verified Stripe event body → what Recur acts on.
pub fn parse_event(payload: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let event: Value = serde_json::from_slice(payload).map_err(|e| WebhookError::BadPayload(e.to_string()))?;
    let id = text(&event, &["id"]);
    let kind = text(&event, &["type"]);
    if id.is_empty() || kind.is_empty() {
        return Err(WebhookError::BadPayload("an event has an id and a type".into()));
    }
    let object = event.get("data").and_then(|d| d.get("object")).cloned().unwrap_or(Value::Null);
    let recur_id = |key: &str| Some(text(&object, &["metadata", key])).filter(|s| !s.is_empty());
    let kind = match kind.as_str() {
        "payment_intent.succeeded"
        | "payment_intent.payment_failed"
        | "payment_intent.requires_action"
        | "payment_intent.processing"
        | "payment_intent.canceled" => WebhookKind::Payment {
            provider_payment_id: text(&object, &["id"]),
            recur_payment_id: recur_id("recur_payment_id"),
            outcome: intent_outcome(&object),
        },
        "refund.created" | "refund.updated" | "refund.failed" | "charge.refund.updated" => WebhookKind::Refund {
            provider_refund_id: text(&object, &["id"]),
            recur_refund_id: recur_id("recur_refund_id"),
            outcome: refund_outcome(&object),
        },
        other => WebhookKind::Other(other.to_string()),
    };
    Ok(WebhookEvent { id, kind })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn forms_use_brackets_and_escape() {
        let f = Form::default()
            .add("amount", "1000")
            .add("description", "Invoice #7 & more")
            .metadata(&[("recur_payment_id".into(), "pay_1".into())]);
        assert_eq!(f.encode(), "amount=1000&description=Invoice+%237+%26+more&metadata%5Brecur_payment_id%5D=pay_1");
    }

    #[test]
    fn amounts_follow_stripes_currency_rules() {
        assert_eq!(stripe_amount(1999, "USD"), Ok(1999));
        assert_eq!(stripe_amount(500, "JPY"), Ok(500));
        assert_eq!(stripe_amount(12_340, "KWD"), Ok(12_340));
        assert!(stripe_amount(12_345, "KWD").is_err(), "KWD must end in 0");
        assert_eq!(stripe_amount(150, "ISK"), Ok(15_000));
    }

    #[test]
    fn intents_map_to_outcomes() {
        assert_eq!(
            intent_outcome(&json!({"id": "pi_1", "status": "succeeded"})),
            ChargeOutcome::Succeeded { provider_payment_id: "pi_1".into() }
        );
        assert_eq!(
            intent_outcome(&json!({"id": "pi_1", "status": "requires_action",
                "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.example/3ds"}}})),
            ChargeOutcome::RequiresAction {
                provider_payment_id: "pi_1".into(),
                action_url: Some("https://hooks.example/3ds".into())
            }
        );
        assert_eq!(
            intent_outcome(&json!({"id": "pi_1", "status": "requires_payment_method",
                "last_payment_error": {"code": "card_declined", "decline_code": "insufficient_funds", "message": "No."}})),
            ChargeOutcome::Failed {
                provider_payment_id: "pi_1".into(),
                decline_code: "insufficient_funds".into(),
                message: "No.".into()
            }
        );
        assert_eq!(
            intent_outcome(&json!({"id": "pi_1", "status": "processing"})),
            ChargeOutcome::Pending { provider_payment_id: "pi_1".into() }
        );
    }

    #[test]
    fn events_parse_with_recur_references() {
        let body = json!({"id": "evt_1", "type": "payment_intent.succeeded",
            "data": {"object": {"id": "pi_9", "status": "succeeded", "metadata": {"recur_payment_id": "pay_9"}}}});
        let e = parse_event(body.to_string().as_bytes()).expect("parses");
        assert_eq!(e.id, "evt_1");
        assert_eq!(
            e.kind,
            WebhookKind::Payment {
                provider_payment_id: "pi_9".into(),
                recur_payment_id: Some("pay_9".into()),
                outcome: ChargeOutcome::Succeeded { provider_payment_id: "pi_9".into() }
            }
        );
        let other = parse_event(br#"{"id":"evt_2","type":"customer.created","data":{"object":{}}}"#).expect("parses");
        assert_eq!(other.kind, WebhookKind::Other("customer.created".into()));
        assert!(parse_event(b"not json").is_err());
        assert!(parse_event(b"{}").is_err());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut c = StripeConfig::new("sk_test_hunter2", "pk_test_1");
        c.webhook_secret = Some("whsec_hunter3".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("hunter3"), "{shown}");
    }
}
