//! The gateway's rules, shared by its gRPC API, its hosted pages, its
//! webhook endpoint and its reconciler:
//!
//! - a payment row (PROCESSING) and its first attempt exist before the
//!   provider is called, under a unique idempotency key, so concurrent
//!   identical calls make one provider call and a crash never loses track;
//! - the provider is called with a key derived from the payment id, so asking
//!   again (the reconciler, a retry) can never charge twice;
//! - an unknown outcome (timeout, provider failure) leaves the payment
//!   PROCESSING until the reconciler learns the answer from the provider;
//! - a refund first holds its amount on the payment (under a row lock), so
//!   refunds can never add up to more than was captured;
//! - every status change writes its event in the same transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use recur_auth::TokenKey;
use recur_clock::SharedClock;
use recur_error::{AppError, AppResult};
use recur_money::{AmountTooLarge, Money};

use crate::domain::pages::{PageKind, PageToken};
use crate::domain::provider::{
    ChargeAttempt, ChargeOutcome, Provider, ProviderError, RefundAttempt, RefundOutcome, SetupIntent, WebhookError,
    WebhookKind,
};
use crate::domain::{
    Attempt, Customer, Payment, PaymentEvent, PaymentMethod, PaymentStatus, Refund, RefundStatus, charge_fingerprint,
    refund_fingerprint,
};
use crate::providers::Providers;
use crate::repo::{ChargeStart, PaymentRepo, RefundResult, Reservation};

/// Longest a provider call may take before its outcome counts as unknown.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(20);
/// Time kept back from the caller's deadline to record the outcome.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);
/// How long a repeated request waits for the first one's provider answer.
const IN_FLIGHT_WAIT: Duration = Duration::from_secs(5);
/// How long hosted-page links live.
pub const PAYMENT_METHOD_PAGE_TTL: chrono::Duration = chrono::Duration::hours(24);
pub const THREE_DS_PAGE_TTL: chrono::Duration = chrono::Duration::hours(24);
pub const PORTAL_PAGE_TTL: chrono::Duration = chrono::Duration::hours(1);

pub struct Settings {
    /// How long a payment may stay PROCESSING before the reconciler asks the
    /// provider (longer than any provider call).
    pub reconcile_after: Duration,
    /// Base URL of the hosted pages.
    pub public_url: String,
    /// Signs hosted-page tokens.
    pub page_key: TokenKey,
}

pub struct Gateway {
    pub repo: Arc<dyn PaymentRepo>,
    pub providers: Providers,
    pub clock: SharedClock,
    pub settings: Settings,
}

/// A charge as asked for, validated.
#[derive(Clone, Debug)]
pub struct ChargeInput {
    pub customer_id: String,
    /// Empty: the customer's default.
    pub payment_method_id: String,
    pub amount: Money,
    pub invoice_id: String,
    pub description: String,
    pub idempotency_key: Option<String>,
    pub return_url: String,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub struct RefundInput {
    pub payment_id: String,
    /// `None`: what is left of the payment.
    pub amount: Option<Money>,
    pub reason: String,
    pub idempotency_key: Option<String>,
}

/// What a caller needs to collect a payment method.
pub struct MethodInit {
    pub provider: String,
    pub customer: Customer,
    pub intent: SetupIntent,
    pub publishable_key: String,
    pub hosted_page_url: String,
    pub expires: DateTime<Utc>,
}

pub struct WebhookResult {
    pub event_id: String,
    pub handled: bool,
    pub payment_id: String,
}

/// What the reconciler did in one pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    pub payments_checked: usize,
    pub payments_settled: usize,
    pub refunds_checked: usize,
}

/// Time left for a provider call within the caller's deadline.
fn budget(deadline: Option<Instant>) -> Duration {
    deadline
        .map(|d| d.saturating_duration_since(Instant::now()).saturating_sub(DEADLINE_MARGIN))
        .unwrap_or(PROVIDER_TIMEOUT)
        .min(PROVIDER_TIMEOUT)
}

fn provider_error(e: ProviderError, field: &str) -> AppError {
    match e {
        ProviderError::InvalidToken(m) => AppError::invalid(field, m),
        ProviderError::InvalidRequest(m) => AppError::failed_precondition("PROVIDER_REFUSED", m),
        ProviderError::Timeout => {
            AppError::unavailable("PROVIDER_TIMEOUT", "the payment provider did not answer in time")
        }
        ProviderError::Unavailable(m) => {
            AppError::unavailable("PROVIDER_UNAVAILABLE", format!("payment provider: {m}"))
        }
    }
}

fn webhook_error(e: WebhookError) -> AppError {
    match e {
        WebhookError::MalformedSignature(m) => {
            AppError::new(tonic::Code::InvalidArgument, "WEBHOOK_SIGNATURE_MALFORMED", format!("signature header: {m}"))
                .with_field("signature", m)
        }
        WebhookError::SignatureMismatch => AppError::new(
            tonic::Code::InvalidArgument,
            "WEBHOOK_SIGNATURE_INVALID",
            "the signature does not match the payload",
        )
        .with_field("signature", "does not match the payload and the endpoint's signing secret"),
        WebhookError::OutsideTolerance { age_secs } => AppError::new(
            tonic::Code::InvalidArgument,
            "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE",
            format!("signed {age_secs} s ago, outside the 300 s tolerance"),
        )
        .with_field("signature", "timestamp outside the tolerance"),
        WebhookError::BadPayload(m) => AppError::invalid("payload", format!("not a provider event: {m}")),
        WebhookError::NotConfigured(m) => AppError::failed_precondition("WEBHOOK_NOT_CONFIGURED", m),
    }
}

/// The provider's key for a payment's charge: the same on every attempt.
fn charge_key(tenant: &str, payment_id: &str) -> String {
    format!("{tenant}:{payment_id}")
}

fn refund_key(tenant: &str, refund_id: &str) -> String {
    format!("{tenant}:{refund_id}")
}

impl Gateway {
    fn provider(&self, tenant: &str, name: &str) -> AppResult<Arc<dyn Provider>> {
        self.providers.named(tenant, name).ok_or_else(|| {
            AppError::failed_precondition(
                "PROVIDER_NOT_CONFIGURED",
                format!("the {name} provider is not configured for this tenant"),
            )
        })
    }

    /// A signed link to a hosted page.
    pub fn page_url(
        &self,
        kind: PageKind,
        tenant: &str,
        subject: &str,
        return_url: &str,
        ttl: chrono::Duration,
    ) -> (String, DateTime<Utc>) {
        let expires = self.clock.now() + ttl;
        let token = PageToken {
            tenant: tenant.into(),
            kind,
            subject: subject.into(),
            return_url: return_url.into(),
            expires: expires.timestamp(),
        };
        (
            format!("{}/hosted/{}/{}", self.settings.public_url, kind.path(), token.seal(&self.settings.page_key)),
            expires,
        )
    }

    pub async fn customer(&self, tenant: &str, id: &str, field: &str) -> AppResult<Customer> {
        self.repo
            .get_customer(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("customer", id).with_field(field, "no such customer"))
    }

    pub async fn create_customer(
        &self,
        tenant: &str,
        account_id: &str,
        email: &str,
        name: &str,
        reference: &str,
        key: Option<String>,
    ) -> AppResult<Customer> {
        if let Some(k) = &key
            && let Some(existing) = self.repo.get_customer_by_key(tenant, k).await?
        {
            return Ok(existing);
        }
        let provider = self.providers.for_tenant(tenant);
        let now = self.clock.now_micros();
        let id = recur_id::new_id(recur_id::Kind::Customer);
        let provider_key = format!("{tenant}:customer:{}", key.as_deref().unwrap_or(&id));
        let provider_customer_id =
            provider.create_customer(email, name, &provider_key).await.map_err(|e| provider_error(e, "customer"))?;
        let c = Customer {
            id,
            provider: provider.name().to_string(),
            provider_customer_id,
            account_id: account_id.into(),
            email: email.into(),
            name: name.into(),
            reference: reference.into(),
            default_payment_method_id: None,
            created_at: now,
            updated_at: now,
        };
        Ok(self.repo.insert_customer(tenant, &c, key.as_deref()).await?)
    }

    pub async fn init_payment_method(
        &self,
        tenant: &str,
        customer_id: &str,
        return_url: &str,
    ) -> AppResult<MethodInit> {
        let customer = self.customer(tenant, customer_id, "customer_id").await?;
        let provider = self.provider(tenant, &customer.provider)?;
        let key = format!("{tenant}:seti:{}", recur_id::new_id(recur_id::Kind::SetupIntent));
        let intent = provider
            .create_setup_intent(&customer.provider_customer_id, &key)
            .await
            .map_err(|e| provider_error(e, "customer_id"))?;
        let (hosted_page_url, expires) = if provider.uses_hosted_pages() {
            self.page_url(PageKind::PaymentMethod, tenant, &customer.id, return_url, PAYMENT_METHOD_PAGE_TTL)
        } else {
            (String::new(), self.clock.now() + PAYMENT_METHOD_PAGE_TTL)
        };
        Ok(MethodInit {
            provider: provider.name().into(),
            publishable_key: provider.publishable_key(),
            customer,
            intent,
            hosted_page_url,
            expires,
        })
    }

    /// Saves a provider token as a payment method. `exp` overrides what the
    /// provider reports (the hosted page knows what the customer typed).
    pub async fn attach(
        &self,
        tenant: &str,
        customer_id: &str,
        token: &str,
        name: &str,
        set_default: bool,
        exp: Option<(u32, u32)>,
    ) -> AppResult<(PaymentMethod, Option<String>)> {
        let customer = self.customer(tenant, customer_id, "customer_id").await?;
        let provider = self.provider(tenant, &customer.provider)?;
        let card = provider
            .attach_payment_method(&customer.provider_customer_id, token)
            .await
            .map_err(|e| provider_error(e, "payment_token"))?;
        let (exp_month, exp_year) = exp.unwrap_or((card.exp_month, card.exp_year));
        let pm = PaymentMethod {
            id: recur_id::new_id(recur_id::Kind::PaymentMethod),
            customer_id: customer.id.clone(),
            provider: provider.name().to_string(),
            provider_payment_method_id: card.provider_payment_method_id,
            name: if name.is_empty() { card.brand.clone() } else { name.to_string() },
            brand: card.brand,
            last4: card.last4,
            exp_month,
            exp_year,
            created_at: self.clock.now_micros(),
            removed_at: None,
        };
        let saved = self.repo.insert_payment_method(tenant, &pm).await?;
        let mut default = customer.default_payment_method_id;
        let default_is_active = match &default {
            Some(id) => self.repo.get_payment_method(tenant, id).await?.is_some_and(|m| m.removed_at.is_none()),
            None => false,
        };
        if set_default || !default_is_active {
            self.repo.set_default_payment_method(tenant, &customer.id, &saved.id).await?;
            default = Some(saved.id.clone());
        }
        Ok((saved, default))
    }

    pub async fn list_methods(&self, tenant: &str, customer_id: &str) -> AppResult<(Customer, Vec<PaymentMethod>)> {
        self.repo
            .customer_with_methods(tenant, customer_id)
            .await?
            .ok_or_else(|| AppError::not_found("customer", customer_id).with_field("customer_id", "no such customer"))
    }

    /// Removes a payment method (at the provider too); it is never charged
    /// again. The newest remaining method becomes the default if needed.
    pub async fn remove_method(&self, tenant: &str, customer_id: &str, pm_id: &str) -> AppResult<Customer> {
        let customer = self.customer(tenant, customer_id, "customer_id").await?;
        let pm = self
            .repo
            .get_payment_method(tenant, pm_id)
            .await?
            .filter(|m| m.customer_id == customer.id && m.removed_at.is_none())
            .ok_or_else(|| AppError::not_found("payment method", pm_id))?;
        let provider = self.provider(tenant, &pm.provider)?;
        provider
            .detach_payment_method(&pm.provider_payment_method_id)
            .await
            .map_err(|e| provider_error(e, "payment_method_id"))?;
        self.repo
            .remove_payment_method(tenant, &customer.id, &pm.id, self.clock.now_micros())
            .await?
            .ok_or_else(|| AppError::not_found("payment method", pm_id))
    }

    pub async fn set_default(&self, tenant: &str, customer_id: &str, pm_id: &str) -> AppResult<()> {
        let customer = self.customer(tenant, customer_id, "customer_id").await?;
        self.repo
            .get_payment_method(tenant, pm_id)
            .await?
            .filter(|m| m.customer_id == customer.id && m.removed_at.is_none())
            .ok_or_else(|| AppError::not_found("payment method", pm_id))?;
        Ok(self.repo.set_default_payment_method(tenant, &customer.id, pm_id).await?)
    }

    pub async fn get_payment(&self, tenant: &str, id: &str, field: &str) -> AppResult<Payment> {
        self.repo
            .get_payment(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("payment", id).with_field(field, "no such payment"))
    }

    /// `amount` in minor units, once it is within `tenant`'s ceiling for a
    /// single charge or refund (and so within every provider's minor units).
    fn minor_within_ceiling(&self, tenant: &str, field: &str, amount: Money) -> AppResult<i64> {
        let ceiling = self.providers.ceilings(tenant).of(amount.currency());
        recur_money::check_ceiling(field, amount.amount(), ceiling)?;
        amount.minor_amount().ok_or_else(|| AmountTooLarge { field: field.into(), ceiling }.into())
    }

    pub async fn charge(&self, tenant: &str, deadline: Option<Instant>, c: ChargeInput) -> AppResult<Payment> {
        // Above the ceiling nothing is written and no provider is called.
        let amount_minor = self.minor_within_ceiling(tenant, "amount", c.amount)?;
        let hash = charge_fingerprint(
            &c.customer_id,
            &c.payment_method_id,
            c.amount,
            &c.invoice_id,
            &c.description,
            &c.return_url,
            &c.metadata,
        );
        let now = self.clock.now_micros();
        let id = recur_id::new_id(recur_id::Kind::Payment);
        let key = c.idempotency_key.clone().unwrap_or_else(|| id.clone());
        let mut payment = Payment {
            id: id.clone(),
            customer_id: c.customer_id.clone(),
            // The method and its provider are what start_charge finds.
            payment_method_id: String::new(),
            amount: c.amount,
            amount_refunded: c.amount.currency().zero(),
            status: PaymentStatus::Processing,
            invoice_id: c.invoice_id.clone(),
            description: c.description.clone(),
            provider: String::new(),
            provider_payment_id: String::new(),
            decline_code: String::new(),
            failure_message: String::new(),
            action_url: String::new(),
            attempt_count: 1,
            metadata: c.metadata.clone(),
            idempotency_key: key,
            request_hash: hash.clone(),
            refund_reserved: c.amount.currency().zero(),
            return_url: c.return_url.clone(),
            created_at: now,
            updated_at: now,
        };
        let attempt = Attempt {
            payment_id: id.clone(),
            number: 1,
            started_at: now,
            finished_at: None,
            outcome: "pending".into(),
            provider_payment_id: String::new(),
            decline_code: String::new(),
            message: String::new(),
        };
        // The row exists (PROCESSING) before the provider is called: a crash
        // or timeout from here on never loses track of the attempt, and a
        // concurrent call with the same key finds it and calls nobody.
        let next_check = now + self.settings.reconcile_after;
        let wanted = (!c.payment_method_id.is_empty()).then_some(c.payment_method_id.as_str());
        let providers = self.providers.names(tenant);
        let started = match self.repo.start_charge(tenant, &payment, wanted, &attempt, next_check, &providers).await? {
            ChargeStart::Started(customer, pm) => Some((customer, pm)),
            ChargeStart::Existing(existing) => return self.replay(tenant, existing, &hash, deadline).await,
            ChargeStart::NoContext => None,
        };
        let Some((customer, pm)) = started else {
            // Nothing was charged or stored: say why. A retry of a charge
            // that was made answers what was made, even if the card has been
            // removed since.
            let why = self.charge_refusal(tenant, &c).await;
            if let Some(key) = &c.idempotency_key
                && let Some(existing) = self.repo.get_payment_by_key(tenant, key).await?
            {
                return self.replay(tenant, existing, &hash, deadline).await;
            }
            return Err(why);
        };
        let provider = self.provider(tenant, &pm.provider)?;
        payment.payment_method_id = pm.id.clone();
        payment.provider = provider.name().to_string();
        let call = ChargeAttempt {
            provider_customer_id: customer.provider_customer_id.clone(),
            provider_payment_method_id: pm.provider_payment_method_id.clone(),
            amount_minor,
            currency: c.amount.currency().code().to_string(),
            description: c.description.clone(),
            idempotency_key: charge_key(tenant, &id),
            return_url: self.return_url_for(&c.return_url),
            metadata: vec![("recur_payment_id".into(), id.clone()), ("recur_tenant".into(), tenant.into())],
        };
        self.run_attempt(tenant, provider.as_ref(), payment, attempt, &call, budget(deadline)).await
    }

    /// Why a charge found nothing to charge ([`ChargeStart::NoContext`],
    /// nothing written), as the caller is told.
    async fn charge_refusal(&self, tenant: &str, c: &ChargeInput) -> AppError {
        let wanted = (!c.payment_method_id.is_empty()).then_some(c.payment_method_id.as_str());
        let method = match self.repo.charge_context(tenant, &c.customer_id, wanted).await {
            Err(e) => return e.into(),
            Ok(None) => {
                return AppError::not_found("customer", &c.customer_id)
                    .into_invalid_reference()
                    .with_field("customer_id", "no such customer");
            }
            Ok(Some((_, method))) => method,
        };
        let Some(pm) = method else {
            return if wanted.is_some() {
                AppError::not_found("payment method", &c.payment_method_id)
                    .into_invalid_reference()
                    .with_field("payment_method_id", "no such payment method for this customer")
            } else {
                AppError::failed_precondition("NO_PAYMENT_METHOD", "the customer has no payment method")
                    .with_field("payment_method_id", "give one, or attach one to the customer first")
            };
        };
        if let Err(e) = self.provider(tenant, &pm.provider) {
            return e;
        }
        // A card was attached (or the default set) since start_charge looked.
        AppError::aborted(
            "PAYMENT_METHOD_CHANGED",
            "the customer's payment methods changed during the charge; try again",
        )
    }

    /// Where a provider's own 3-D Secure page returns to: the caller's URL,
    /// else Recur's "you may close this window" page.
    fn return_url_for(&self, return_url: &str) -> String {
        if return_url.is_empty() { format!("{}/hosted/done", self.settings.public_url) } else { return_url.into() }
    }

    /// The stored answer for a repeated idempotency key (waiting a little
    /// for a first call still at the provider), or a refusal when the key
    /// was used for a different request.
    async fn replay(
        &self,
        tenant: &str,
        existing: Payment,
        hash: &str,
        deadline: Option<Instant>,
    ) -> AppResult<Payment> {
        if existing.request_hash != hash {
            return Err(AppError::failed_precondition(
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency key was used for a different charge",
            )
            .with_field("idempotency_key", "already used with other parameters"));
        }
        let until = Instant::now() + budget(deadline).min(IN_FLIGHT_WAIT);
        let mut p = existing;
        let mut pause = Duration::from_millis(5);
        while p.status == PaymentStatus::Processing && Instant::now() < until {
            let in_flight = self
                .repo
                .list_attempts(tenant, &p.id)
                .await?
                .last()
                .is_some_and(|a| a.outcome == "pending" && a.finished_at.is_none());
            if !in_flight {
                // It may have finished since `p` was read: answer what stands.
                p = self.get_payment(tenant, &p.id, "idempotency_key").await?;
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
            p = self.get_payment(tenant, &p.id, "idempotency_key").await?;
        }
        Ok(p)
    }

    /// Calls the provider for `payment` (attempt `attempt`) and records what
    /// it said; an unknown outcome leaves the payment PROCESSING.
    async fn run_attempt(
        &self,
        tenant: &str,
        provider: &dyn Provider,
        payment: Payment,
        mut attempt: Attempt,
        call: &ChargeAttempt,
        budget: Duration,
    ) -> AppResult<Payment> {
        let result = tokio::time::timeout(budget, provider.charge(call)).await;
        let now = self.clock.now_micros();
        attempt.finished_at = Some(now);
        let outcome = match result {
            Ok(Ok(o)) => Ok(o),
            // The provider refused the request itself: a definite failure.
            Ok(Err(ProviderError::InvalidToken(m))) => Ok(ChargeOutcome::Failed {
                provider_payment_id: String::new(),
                decline_code: "invalid_payment_method".into(),
                message: m,
            }),
            Ok(Err(ProviderError::InvalidRequest(m))) => Ok(ChargeOutcome::Failed {
                provider_payment_id: String::new(),
                decline_code: "invalid_request".into(),
                message: m,
            }),
            Ok(Err(e)) => Err(format!("{e:?}")),
            Err(_) => Err(format!("no answer within {} ms", budget.as_millis())),
        };
        let next_check = now + self.settings.reconcile_after;
        match outcome {
            Err(why) => {
                tracing::warn!(payment = %payment.id, attempt = attempt.number, %why,
                    "provider outcome unknown; the payment stays processing until the reconciler settles it");
                attempt.outcome = "unknown".into();
                attempt.message = why;
                self.repo.record_attempt(tenant, &attempt, Some(next_check)).await?;
                Ok(self.repo.get_payment(tenant, &payment.id).await?.unwrap_or(payment))
            }
            Ok(ChargeOutcome::Pending { provider_payment_id }) => {
                attempt.outcome = "processing".into();
                attempt.provider_payment_id = provider_payment_id;
                self.repo.record_attempt(tenant, &attempt, Some(next_check)).await?;
                Ok(self.repo.get_payment(tenant, &payment.id).await?.unwrap_or(payment))
            }
            Ok(outcome) => self.settle(tenant, payment, &[PaymentStatus::Processing], Some(attempt), outcome).await,
        }
    }

    /// Moves `payment` (if still in one of `from`) to what `outcome` says,
    /// with its attempt and event, and returns the payment as it stands.
    async fn settle(
        &self,
        tenant: &str,
        mut payment: Payment,
        from: &[PaymentStatus],
        attempt: Option<Attempt>,
        outcome: ChargeOutcome,
    ) -> AppResult<Payment> {
        let now = self.clock.now_micros();
        let mut attempt = attempt;
        let mut next_check = None;
        match outcome {
            ChargeOutcome::Succeeded { provider_payment_id } => {
                payment.status = PaymentStatus::Succeeded;
                payment.provider_payment_id = provider_payment_id;
                payment.action_url.clear();
            }
            ChargeOutcome::Failed { provider_payment_id, decline_code, message } => {
                payment.status = PaymentStatus::Failed;
                if !provider_payment_id.is_empty() {
                    payment.provider_payment_id = provider_payment_id;
                }
                payment.decline_code = decline_code;
                payment.failure_message = message;
                payment.action_url.clear();
            }
            ChargeOutcome::RequiresAction { provider_payment_id, action_url } => {
                payment.status = PaymentStatus::RequiresAction;
                payment.provider_payment_id = provider_payment_id;
                payment.action_url = match action_url {
                    Some(url) => url,
                    None => {
                        self.page_url(
                            PageKind::ThreeDSecure,
                            tenant,
                            &payment.id,
                            &payment.return_url,
                            THREE_DS_PAGE_TTL,
                        )
                        .0
                    }
                };
                // Until the customer acts, ask the provider now and then.
                next_check = Some(now + self.settings.reconcile_after.max(Duration::from_secs(60)));
            }
            ChargeOutcome::Pending { .. } => return Ok(payment),
        }
        payment.updated_at = now;
        if let Some(a) = attempt.as_mut() {
            a.outcome = payment.status.as_str().into();
            a.provider_payment_id = payment.provider_payment_id.clone();
            a.decline_code = payment.decline_code.clone();
            a.message = payment.failure_message.clone();
            a.finished_at.get_or_insert(now);
        }
        let Some(event) = PaymentEvent::for_status(&payment, now) else { return Ok(payment) };
        if self.repo.transition(tenant, &payment, from, attempt.as_ref(), &event, next_check).await? {
            tracing::info!(payment = %payment.id, status = %payment.status, "payment settled");
            Ok(payment)
        } else {
            // Someone settled it first (webhook, reconciler): theirs stands.
            self.get_payment(tenant, &payment.id, "id").await
        }
    }

    /// The customer finished the hosted 3-D Secure page.
    pub async fn complete_action(&self, tenant: &str, payment_id: &str, approve: bool) -> AppResult<Payment> {
        let p = self.get_payment(tenant, payment_id, "id").await?;
        if p.status != PaymentStatus::RequiresAction {
            return Ok(p);
        }
        let provider = self.provider(tenant, &p.provider)?;
        let outcome = provider
            .complete_action(&p.provider_payment_id, approve)
            .await
            .map_err(|e| provider_error(e, "payment"))?;
        self.settle(tenant, p, &[PaymentStatus::RequiresAction], None, outcome).await
    }

    pub async fn refund(
        &self,
        tenant: &str,
        deadline: Option<Instant>,
        r: RefundInput,
    ) -> AppResult<(Refund, Payment)> {
        if let Some(amount) = r.amount {
            self.minor_within_ceiling(tenant, "amount", amount)?;
        }
        let hash = refund_fingerprint(&r.payment_id, r.amount, &r.reason);
        let current = self.get_payment(tenant, &r.payment_id, "payment_id").await?;
        let now = self.clock.now_micros();
        let id = recur_id::new_id(recur_id::Kind::Refund);
        // The amount is settled under the payment's lock (what is left, when
        // none is given).
        let placeholder = r.amount.unwrap_or_else(|| current.amount.currency().zero());
        let refund = Refund {
            id: id.clone(),
            payment_id: r.payment_id.clone(),
            amount: placeholder,
            reason: r.reason.clone(),
            status: RefundStatus::Pending,
            provider_refund_id: String::new(),
            failure_message: String::new(),
            idempotency_key: r.idempotency_key.clone().unwrap_or_else(|| id.clone()),
            request_hash: hash.clone(),
            created_at: now,
            updated_at: now,
        };
        let next_check = now + self.settings.reconcile_after;
        let (refund, payment) = match self.repo.reserve_refund(tenant, &refund, r.amount, next_check).await? {
            Reservation::Reserved { refund, payment } => (refund, *payment),
            Reservation::Existing(existing) => {
                if existing.request_hash != hash {
                    return Err(AppError::failed_precondition(
                        "IDEMPOTENCY_KEY_REUSED",
                        "this idempotency key was used for a different refund",
                    )
                    .with_field("idempotency_key", "already used with other parameters"));
                }
                let payment = self.get_payment(tenant, &existing.payment_id, "payment_id").await?;
                return Ok((existing, payment));
            }
            Reservation::NoPayment => {
                return Err(AppError::not_found("payment", &r.payment_id).with_field("payment_id", "no such payment"));
            }
            Reservation::NotRefundable(status) => {
                return Err(AppError::failed_precondition(
                    "PAYMENT_NOT_REFUNDABLE",
                    format!("a {status} payment cannot be refunded"),
                )
                .with_field("payment_id", format!("the payment is {status}")));
            }
            Reservation::CurrencyMismatch(currency) => {
                return Err(AppError::invalid("amount.currency_code", format!("the payment is in {currency}")));
            }
            Reservation::Exceeds { refundable } => {
                return Err(AppError::failed_precondition(
                    "REFUND_EXCEEDS_CAPTURED",
                    format!("at most {refundable} is left to refund on this payment"),
                )
                .with_field("amount", format!("at most {refundable} is left to refund"))
                .with_metadata("refundable", refundable.amount().to_string()));
            }
        };
        let provider = self.provider(tenant, &payment.provider)?;
        self.run_refund(tenant, provider.as_ref(), refund, &payment, budget(deadline)).await
    }

    async fn run_refund(
        &self,
        tenant: &str,
        provider: &dyn Provider,
        refund: Refund,
        payment: &Payment,
        budget: Duration,
    ) -> AppResult<(Refund, Payment)> {
        let call = RefundAttempt {
            provider_payment_id: payment.provider_payment_id.clone(),
            // Never more than was captured, which was within its ceiling.
            amount_minor: refund.amount.minor_amount().ok_or_else(|| AmountTooLarge {
                field: "amount".into(),
                ceiling: refund.amount.currency().max_ceiling(),
            })?,
            currency: refund.amount.currency().code().to_string(),
            reason: refund.reason.clone(),
            idempotency_key: refund_key(tenant, &refund.id),
            metadata: vec![
                ("recur_refund_id".into(), refund.id.clone()),
                ("recur_payment_id".into(), payment.id.clone()),
                ("recur_tenant".into(), tenant.into()),
            ],
        };
        let now = self.clock.now_micros();
        let result = match tokio::time::timeout(budget, provider.refund(&call)).await {
            Ok(Ok(RefundOutcome::Succeeded { provider_refund_id })) => RefundResult {
                status: RefundStatus::Succeeded,
                provider_refund_id,
                failure_message: String::new(),
                next_check_at: None,
            },
            Ok(Ok(RefundOutcome::Pending { provider_refund_id })) => RefundResult {
                status: RefundStatus::Pending,
                provider_refund_id,
                failure_message: String::new(),
                next_check_at: Some(now + self.settings.reconcile_after),
            },
            Ok(Ok(RefundOutcome::Failed { provider_refund_id, message })) => RefundResult {
                status: RefundStatus::Failed,
                provider_refund_id,
                failure_message: message,
                next_check_at: None,
            },
            Ok(Err(ProviderError::InvalidRequest(m) | ProviderError::InvalidToken(m))) => RefundResult {
                status: RefundStatus::Failed,
                provider_refund_id: String::new(),
                failure_message: m,
                next_check_at: None,
            },
            Ok(Err(e)) => {
                tracing::warn!(refund = %refund.id, error = ?e, "refund outcome unknown; it stays pending");
                return Ok((refund, self.get_payment(tenant, &payment.id, "payment_id").await?));
            }
            Err(_) => {
                tracing::warn!(refund = %refund.id, "refund timed out; it stays pending");
                return Ok((refund, self.get_payment(tenant, &payment.id, "payment_id").await?));
            }
        };
        match self.repo.finish_refund(tenant, &refund.id, &result, now).await? {
            Some(done) => Ok(done),
            None => Err(AppError::internal("a reserved refund vanished")),
        }
    }

    pub async fn list_events(&self, tenant: &str, after: i64, limit: i64) -> AppResult<Vec<PaymentEvent>> {
        Ok(self.repo.list_events(tenant, after, limit).await?)
    }

    /// A provider's event: signature checked, then applied to the ledger.
    /// Applying is idempotent (transitions are conditional), so a
    /// redelivered event changes nothing twice.
    pub async fn handle_webhook(
        &self,
        tenant: &str,
        provider_name: &str,
        payload: &[u8],
        signature: &str,
    ) -> AppResult<WebhookResult> {
        let provider = self.providers.named(tenant, provider_name).ok_or_else(|| {
            AppError::failed_precondition(
                "PROVIDER_NOT_CONFIGURED",
                format!("no {provider_name:?} provider is configured for this tenant"),
            )
            .with_field("provider", "not a provider of this tenant")
        })?;
        let event = provider.parse_webhook(payload, signature, self.clock.now()).map_err(webhook_error)?;
        let (kind, payment_id, handled) = match &event.kind {
            WebhookKind::Payment { provider_payment_id, recur_payment_id, outcome } => {
                let found = match recur_payment_id {
                    Some(id) => self.repo.get_payment(tenant, id).await?,
                    None => None,
                };
                let found = match found {
                    Some(p) => Some(p),
                    None => self.repo.get_payment_by_provider_id(tenant, provider_payment_id).await?,
                };
                match found {
                    Some(p) if p.provider == provider.name() => {
                        let from: &[PaymentStatus] = match outcome {
                            ChargeOutcome::RequiresAction { .. } => &[PaymentStatus::Processing],
                            _ => &[PaymentStatus::Processing, PaymentStatus::RequiresAction],
                        };
                        let id = p.id.clone();
                        self.settle(tenant, p, from, None, outcome.clone()).await?;
                        ("payment", id, true)
                    }
                    _ => ("payment", String::new(), false),
                }
            }
            WebhookKind::Refund { provider_refund_id, recur_refund_id, outcome } => {
                let found = match recur_refund_id {
                    Some(id) => self.repo.get_refund(tenant, id).await?,
                    None => None,
                };
                let found = match found {
                    Some(r) => Some(r),
                    None => self.repo.get_refund_by_provider_id(tenant, provider_refund_id).await?,
                };
                match found {
                    Some(r) => {
                        let now = self.clock.now_micros();
                        let result = match outcome {
                            RefundOutcome::Succeeded { provider_refund_id } => RefundResult {
                                status: RefundStatus::Succeeded,
                                provider_refund_id: provider_refund_id.clone(),
                                failure_message: String::new(),
                                next_check_at: None,
                            },
                            RefundOutcome::Failed { provider_refund_id, message } => RefundResult {
                                status: RefundStatus::Failed,
                                provider_refund_id: provider_refund_id.clone(),
                                failure_message: message.clone(),
                                next_check_at: None,
                            },
                            RefundOutcome::Pending { provider_refund_id } => RefundResult {
                                status: RefundStatus::Pending,
                                provider_refund_id: provider_refund_id.clone(),
                                failure_message: String::new(),
                                next_check_at: Some(now + self.settings.reconcile_after),
                            },
                        };
                        self.repo.finish_refund(tenant, &r.id, &result, now).await?;
                        ("refund", r.payment_id, true)
                    }
                    None => ("refund", String::new(), false),
                }
            }
            WebhookKind::Other(t) => (t.as_str(), String::new(), false),
        };
        let seen = self
            .repo
            .record_webhook(tenant, provider.name(), &event.id, kind, &payment_id, self.clock.now_micros())
            .await?;
        if seen.is_some() {
            tracing::info!(event = %event.id, "provider event delivered again; nothing changed twice");
        }
        Ok(WebhookResult { event_id: event.id, handled, payment_id })
    }

    /// One pass of the reconciler: payments whose outcome is unknown (or
    /// that wait for the customer) and refunds still pending, asked of the
    /// provider again with the same idempotency keys.
    pub async fn reconcile_once(&self) -> AppResult<Reconciled> {
        let now = self.clock.now_micros();
        let lease = now + self.settings.reconcile_after;
        let mut done = Reconciled::default();
        for (tenant, p) in self.repo.claim_due_payments(now, lease, 100).await? {
            done.payments_checked += 1;
            match self.reconcile_payment(&tenant, p).await {
                Ok(p) if p.is_settled() => done.payments_settled += 1,
                Ok(_) => {}
                Err(e) => tracing::warn!(%tenant, error = %e.message(), "reconciling a payment failed"),
            }
        }
        for (tenant, r) in self.repo.claim_due_refunds(now, lease, 100).await? {
            done.refunds_checked += 1;
            if let Err(e) = self.reconcile_refund(&tenant, r).await {
                tracing::warn!(%tenant, error = %e.message(), "reconciling a refund failed");
            }
        }
        Ok(done)
    }

    async fn reconcile_payment(&self, tenant: &str, p: Payment) -> AppResult<Payment> {
        let provider = self.provider(tenant, &p.provider)?;
        match p.status {
            PaymentStatus::Processing if !p.provider_payment_id.is_empty() => {
                // The provider has this payment (it said "processing"): ask
                // about it; sending it again could, once the provider has
                // forgotten the idempotency key, make a second charge.
                match provider.retrieve_charge(&p.provider_payment_id).await {
                    Ok(ChargeOutcome::Pending { .. }) => Ok(p),
                    Ok(o) => self.settle(tenant, p, &[PaymentStatus::Processing], None, o).await,
                    Err(e) => Err(provider_error(e, "payment")),
                }
            }
            PaymentStatus::Processing => {
                let customer = self.customer(tenant, &p.customer_id, "customer_id").await?;
                // A removed method is still the one this payment was made with.
                let pm = self
                    .repo
                    .get_payment_method(tenant, &p.payment_method_id)
                    .await?
                    .ok_or_else(|| AppError::not_found("payment method", &p.payment_method_id))?;
                let now = self.clock.now_micros();
                let attempt = Attempt {
                    payment_id: p.id.clone(),
                    number: p.attempt_count + 1,
                    started_at: now,
                    finished_at: None,
                    outcome: "pending".into(),
                    provider_payment_id: String::new(),
                    decline_code: String::new(),
                    message: String::new(),
                };
                self.repo.start_attempt(tenant, &attempt).await?;
                let mut payment = p;
                payment.attempt_count = attempt.number;
                let call = ChargeAttempt {
                    provider_customer_id: customer.provider_customer_id,
                    provider_payment_method_id: pm.provider_payment_method_id,
                    amount_minor: payment.amount.minor_amount().unwrap_or_default(),
                    currency: payment.amount.currency().code().to_string(),
                    description: payment.description.clone(),
                    idempotency_key: charge_key(tenant, &payment.id),
                    return_url: self.return_url_for(&payment.return_url),
                    metadata: vec![
                        ("recur_payment_id".into(), payment.id.clone()),
                        ("recur_tenant".into(), tenant.into()),
                    ],
                };
                tracing::info!(payment = %payment.id, attempt = attempt.number, "asking the provider about a processing payment");
                self.run_attempt(tenant, provider.as_ref(), payment, attempt, &call, PROVIDER_TIMEOUT).await
            }
            PaymentStatus::RequiresAction if !p.provider_payment_id.is_empty() => {
                match provider.retrieve_charge(&p.provider_payment_id).await {
                    Ok(o @ (ChargeOutcome::Succeeded { .. } | ChargeOutcome::Failed { .. })) => {
                        self.settle(tenant, p, &[PaymentStatus::RequiresAction], None, o).await
                    }
                    Ok(_) => Ok(p),
                    Err(e) => Err(provider_error(e, "payment")),
                }
            }
            _ => Ok(p),
        }
    }

    async fn reconcile_refund(&self, tenant: &str, r: Refund) -> AppResult<()> {
        if !r.provider_refund_id.is_empty() {
            // The provider has the refund and is still deciding; its webhook
            // settles it. Sending it again could, once the provider has
            // forgotten the idempotency key, refund twice.
            return Ok(());
        }
        let payment = self.get_payment(tenant, &r.payment_id, "payment_id").await?;
        let provider = self.provider(tenant, &payment.provider)?;
        self.run_refund(tenant, provider.as_ref(), r, &payment, PROVIDER_TIMEOUT).await.map(|_| ())
    }
}
