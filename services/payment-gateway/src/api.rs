//! The payment gateway's gRPC surface. Customers, payment methods, charges
//! and the ledger are served; refunds, hosted pages, provider webhooks and the
//! event list are not finished yet (they answer UNIMPLEMENTED).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use recur_auth::CallContext;
use recur_clock::SharedClock;
use recur_error::{AppError, AppResult, Violations};
use recur_money::Money;
use recur_proto::convert::{MoneyError, money, parse_money, timestamp};
use recur_proto::payment::v1 as pb;
use recur_server::{caller, idempotency_key};
use recur_storage::page::{Cursor, page_size};
use tonic::{Request, Response, Status};

use crate::domain::card::contains_card_number;
use crate::domain::provider::{ChargeAttempt, ChargeOutcome, Provider, ProviderError};
use crate::domain::{Customer, Payment, PaymentMethod, PaymentStatus, charge_fingerprint};
use crate::repo::PaymentRepo;

/// Longest a provider call may take before the payment is left PROCESSING.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(20);
/// Time kept back from the caller's deadline to record the outcome.
const DEADLINE_MARGIN: Duration = Duration::from_millis(250);

pub struct PaymentApi {
    repo: Arc<dyn PaymentRepo>,
    provider: Arc<dyn Provider>,
    clock: SharedClock,
}

impl PaymentApi {
    pub fn new(repo: Arc<dyn PaymentRepo>, provider: Arc<dyn Provider>, clock: SharedClock) -> Self {
        PaymentApi { repo, provider, clock }
    }
}

fn status_pb(s: PaymentStatus) -> i32 {
    (match s {
        PaymentStatus::Processing => pb::PaymentStatus::Processing,
        PaymentStatus::Succeeded => pb::PaymentStatus::Succeeded,
        PaymentStatus::Failed => pb::PaymentStatus::Failed,
        PaymentStatus::RequiresAction => pb::PaymentStatus::RequiresAction,
        PaymentStatus::Refunded => pb::PaymentStatus::Refunded,
        PaymentStatus::PartiallyRefunded => pb::PaymentStatus::PartiallyRefunded,
    }) as i32
}

fn customer_pb(c: &Customer) -> pb::Customer {
    pb::Customer {
        id: c.id.clone(),
        provider: c.provider.clone(),
        provider_customer_id: c.provider_customer_id.clone(),
        account_id: c.account_id.clone(),
        email: c.email.clone(),
        name: c.name.clone(),
        default_payment_method_id: c.default_payment_method_id.clone().unwrap_or_default(),
        create_time: Some(timestamp(c.created_at)),
    }
}

fn method_pb(m: &PaymentMethod, default_id: Option<&str>) -> pb::PaymentMethod {
    pb::PaymentMethod {
        id: m.id.clone(),
        customer_id: m.customer_id.clone(),
        provider: m.provider.clone(),
        provider_payment_method_id: m.provider_payment_method_id.clone(),
        name: m.name.clone(),
        brand: m.brand.clone(),
        last4: m.last4.clone(),
        exp_month: m.exp_month as i32,
        exp_year: m.exp_year as i32,
        is_default: default_id == Some(m.id.as_str()),
        create_time: Some(timestamp(m.created_at)),
    }
}

fn payment_pb(p: &Payment) -> pb::Payment {
    pb::Payment {
        id: p.id.clone(),
        customer_id: p.customer_id.clone(),
        payment_method_id: p.payment_method_id.clone(),
        amount: Some(money(p.amount)),
        amount_refunded: Some(money(p.amount_refunded)),
        status: status_pb(p.status),
        invoice_id: p.invoice_id.clone(),
        description: p.description.clone(),
        provider: p.provider.clone(),
        provider_payment_id: p.provider_payment_id.clone(),
        decline_code: p.decline_code.clone(),
        failure_message: p.failure_message.clone(),
        action_url: p.action_url.clone(),
        attempt_count: p.attempt_count as i32,
        metadata: p.metadata.clone(),
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
    }
}

/// Refuses card numbers anywhere in free text, naming the field.
fn no_card_numbers<'a>(v: &mut Violations, fields: impl IntoIterator<Item = (String, &'a str)>) {
    for (field, value) in fields {
        if contains_card_number(value) {
            v.add(field, "looks like a card number: card numbers are never accepted, send a provider token");
        }
    }
}

fn provider_error(e: ProviderError, field: &str) -> AppError {
    match e {
        ProviderError::InvalidToken(m) => AppError::invalid(field, m),
        ProviderError::Timeout => {
            AppError::unavailable("PROVIDER_TIMEOUT", "the payment provider did not answer in time")
        }
        ProviderError::Unavailable(m) => {
            AppError::unavailable("PROVIDER_UNAVAILABLE", format!("payment provider: {m}"))
        }
    }
}

impl PaymentApi {
    async fn customer(&self, tenant: &str, id: &str, field: &str) -> AppResult<Customer> {
        self.repo
            .get_customer(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("customer", id).with_field(field, "no such customer"))
    }

    async fn create_customer(
        &self,
        ctx: &CallContext,
        r: &pb::CreateCustomerRequest,
        key: Option<String>,
    ) -> AppResult<Customer> {
        let mut v = Violations::new();
        no_card_numbers(
            &mut v,
            [("name".to_string(), r.name.as_str()), ("reference".to_string(), r.reference.as_str())],
        );
        v.check(r.email.len() <= 254, "email", "at most 254 characters");
        v.finish()?;
        let now = self.clock.now_micros();
        let id = recur_id::new_id(recur_id::Kind::Customer);
        let provider_key = key.clone().unwrap_or_else(|| id.clone());
        let provider_customer_id = self
            .provider
            .create_customer(&r.email, &r.name, &format!("{}:{provider_key}", ctx.tenant_id))
            .await
            .map_err(|e| provider_error(e, "customer"))?;
        let c = Customer {
            id,
            provider: self.provider.name().to_string(),
            provider_customer_id,
            account_id: r.account_id.clone(),
            email: r.email.clone(),
            name: r.name.clone(),
            reference: r.reference.clone(),
            default_payment_method_id: None,
            created_at: now,
            updated_at: now,
        };
        Ok(self.repo.insert_customer(&ctx.tenant_id, &c, key.as_deref()).await?)
    }

    async fn attach(
        &self,
        ctx: &CallContext,
        r: &pb::AttachPaymentMethodRequest,
    ) -> AppResult<(PaymentMethod, Option<String>)> {
        let mut v = Violations::new();
        v.check(!r.customer_id.is_empty(), "customer_id", "is required");
        v.check(!r.payment_token.trim().is_empty(), "payment_token", "is required");
        no_card_numbers(
            &mut v,
            [("payment_token".to_string(), r.payment_token.as_str()), ("name".to_string(), r.name.as_str())],
        );
        v.finish()?;
        let customer = self.customer(&ctx.tenant_id, &r.customer_id, "customer_id").await?;
        let card = self
            .provider
            .attach_payment_method(&customer.provider_customer_id, r.payment_token.trim())
            .await
            .map_err(|e| provider_error(e, "payment_token"))?;
        let pm = PaymentMethod {
            id: recur_id::new_id(recur_id::Kind::PaymentMethod),
            customer_id: customer.id.clone(),
            provider: self.provider.name().to_string(),
            provider_payment_method_id: card.provider_payment_method_id,
            name: if r.name.is_empty() { card.brand.clone() } else { r.name.clone() },
            brand: card.brand,
            last4: card.last4,
            exp_month: card.exp_month,
            exp_year: card.exp_year,
            created_at: self.clock.now_micros(),
        };
        let saved = self.repo.insert_payment_method(&ctx.tenant_id, &pm).await?;
        let mut default = customer.default_payment_method_id;
        if r.set_default || default.is_none() {
            self.repo.set_default_payment_method(&ctx.tenant_id, &customer.id, &saved.id).await?;
            default = Some(saved.id.clone());
        }
        Ok((saved, default))
    }

    async fn charge(&self, ctx: &CallContext, r: &pb::ChargeRequest, header_key: Option<String>) -> AppResult<Payment> {
        let mut v = Violations::new();
        v.check(!r.customer_id.is_empty(), "customer_id", "is required");
        let amount = match &r.amount {
            None => {
                v.add("amount", "is required");
                None
            }
            Some(m) => match parse_money(m) {
                Ok(a) if a.is_negative() || a.is_zero() => {
                    v.add("amount.amount", "must be greater than zero");
                    None
                }
                Ok(a) => Some(a),
                Err(MoneyError::Currency(e)) => {
                    v.add("amount.currency_code", e);
                    None
                }
                Err(MoneyError::Amount(e)) => {
                    v.add("amount.amount", e.to_string());
                    None
                }
            },
        };
        no_card_numbers(
            &mut v,
            [("description".to_string(), r.description.as_str())]
                .into_iter()
                .chain(r.metadata.iter().map(|(k, val)| (format!("metadata[{k}]"), val.as_str()))),
        );
        let key = if r.idempotency_key.is_empty() { header_key } else { Some(r.idempotency_key.clone()) };
        if key.as_ref().is_some_and(|k| k.len() > 255) {
            v.add("idempotency_key", "at most 255 characters");
        }
        v.finish()?;
        let Some(amount) = amount else { return Err(AppError::internal("validated charge without amount")) };

        let tenant = ctx.tenant_id.as_str();
        let customer = self.customer(tenant, &r.customer_id, "customer_id").await?;
        let pm_id = if r.payment_method_id.is_empty() {
            customer.default_payment_method_id.clone().ok_or_else(|| {
                AppError::failed_precondition("NO_PAYMENT_METHOD", "the customer has no payment method")
                    .with_field("payment_method_id", "give one, or attach one to the customer first")
            })?
        } else {
            r.payment_method_id.clone()
        };
        let pm =
            self.repo.get_payment_method(tenant, &pm_id).await?.filter(|pm| pm.customer_id == customer.id).ok_or_else(
                || {
                    AppError::not_found("payment method", &pm_id)
                        .with_field("payment_method_id", "no such payment method for this customer")
                },
            )?;

        let hash = charge_fingerprint(&customer.id, &pm.id, amount, &r.invoice_id, &r.description);
        let id = recur_id::new_id(recur_id::Kind::Payment);
        let key = key.unwrap_or_else(|| id.clone());
        if let Some(existing) = self.repo.get_payment_by_key(tenant, &key).await? {
            return replay(existing, &hash);
        }
        let now = self.clock.now_micros();
        let mut payment = Payment {
            id,
            customer_id: customer.id.clone(),
            payment_method_id: pm.id.clone(),
            amount,
            amount_refunded: Money::new(rust_decimal::Decimal::ZERO, amount.currency()),
            status: PaymentStatus::Processing,
            invoice_id: r.invoice_id.clone(),
            description: r.description.clone(),
            provider: self.provider.name().to_string(),
            provider_payment_id: String::new(),
            decline_code: String::new(),
            failure_message: String::new(),
            action_url: String::new(),
            attempt_count: 1,
            metadata: r.metadata.clone().into_iter().collect::<BTreeMap<_, _>>(),
            idempotency_key: key.clone(),
            request_hash: hash.clone(),
            created_at: now,
            updated_at: now,
        };
        // The row exists (PROCESSING) before the provider is called: a crash
        // or timeout from here on never loses track of the attempt, and a
        // concurrent call with the same key loses the insert race.
        if let Err(e) = self.repo.insert_payment(tenant, &payment).await {
            if e.is_unique()
                && let Some(existing) = self.repo.get_payment_by_key(tenant, &key).await?
            {
                return replay(existing, &hash);
            }
            return Err(e.into());
        }
        let attempt = ChargeAttempt {
            provider_customer_id: customer.provider_customer_id.clone(),
            provider_payment_method_id: pm.provider_payment_method_id.clone(),
            amount_minor: amount
                .minor_amount()
                .ok_or_else(|| AppError::invalid("amount.amount", "amount too large"))?,
            currency: amount.currency().code().to_string(),
            idempotency_key: format!("{tenant}:{}", payment.id),
            return_url: r.return_url.clone(),
        };
        let budget = ctx
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()).saturating_sub(DEADLINE_MARGIN))
            .unwrap_or(PROVIDER_TIMEOUT)
            .min(PROVIDER_TIMEOUT);
        let outcome = match tokio::time::timeout(budget, self.provider.charge(&attempt)).await {
            Ok(Ok(o)) => Some(o),
            Ok(Err(ProviderError::InvalidToken(m))) => Some(ChargeOutcome::Failed {
                provider_payment_id: String::new(),
                decline_code: "invalid_payment_method".into(),
                message: m,
            }),
            Ok(Err(e)) => {
                tracing::warn!(payment = %payment.id, error = ?e, "provider failed mid-charge; payment stays processing");
                None
            }
            Err(_) => {
                tracing::warn!(payment = %payment.id, "provider timed out; payment stays processing");
                None
            }
        };
        if let Some(outcome) = outcome {
            match outcome {
                ChargeOutcome::Succeeded { provider_payment_id } => {
                    payment.status = PaymentStatus::Succeeded;
                    payment.provider_payment_id = provider_payment_id;
                }
                ChargeOutcome::Failed { provider_payment_id, decline_code, message } => {
                    payment.status = PaymentStatus::Failed;
                    payment.provider_payment_id = provider_payment_id;
                    payment.decline_code = decline_code;
                    payment.failure_message = message;
                }
                ChargeOutcome::RequiresAction { provider_payment_id, action_url } => {
                    payment.status = PaymentStatus::RequiresAction;
                    payment.provider_payment_id = provider_payment_id;
                    payment.action_url = action_url;
                }
            }
            payment.updated_at = self.clock.now_micros();
            if !self.repo.settle_payment(tenant, &payment).await? {
                // Someone settled it first; theirs is the record.
                if let Some(stored) = self.repo.get_payment(tenant, &payment.id).await? {
                    return Ok(stored);
                }
            }
        }
        Ok(payment)
    }
}

/// The stored answer for a repeated idempotency key, or a refusal when the
/// key is reused for a different request.
fn replay(existing: Payment, hash: &str) -> AppResult<Payment> {
    if existing.request_hash != hash {
        return Err(AppError::failed_precondition(
            "IDEMPOTENCY_KEY_REUSED",
            "this idempotency key was used for a different charge",
        )
        .with_field("idempotency_key", "already used with other parameters"));
    }
    Ok(existing)
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::payment_gateway_service_server::PaymentGatewayService for PaymentApi {
    async fn create_customer(&self, req: Request<pb::CreateCustomerRequest>) -> Res<pb::CreateCustomerResponse> {
        let ctx = caller(&req)?;
        let key = idempotency_key(&req);
        let c = self.create_customer(&ctx, req.get_ref(), key).await?;
        Ok(Response::new(pb::CreateCustomerResponse { customer: Some(customer_pb(&c)) }))
    }

    async fn get_customer(&self, req: Request<pb::GetCustomerRequest>) -> Res<pb::GetCustomerResponse> {
        let ctx = caller(&req)?;
        let c = self.customer(&ctx.tenant_id, &req.get_ref().id, "id").await?;
        Ok(Response::new(pb::GetCustomerResponse { customer: Some(customer_pb(&c)) }))
    }

    async fn init_payment_method(
        &self,
        req: Request<pb::InitPaymentMethodRequest>,
    ) -> Res<pb::InitPaymentMethodResponse> {
        let ctx = caller(&req)?;
        let r = req.get_ref();
        if r.customer_id.is_empty() {
            return Err(AppError::invalid("customer_id", "is required").into());
        }
        let customer = self.customer(&ctx.tenant_id, &r.customer_id, "customer_id").await?;
        let intent = self
            .provider
            .create_setup_intent(&customer.provider_customer_id)
            .await
            .map_err(|e| provider_error(e, "customer_id"))?;
        let init = pb::PaymentMethodInit {
            provider: self.provider.name().to_string(),
            customer_id: customer.id.clone(),
            provider_customer_id: customer.provider_customer_id.clone(),
            setup_intent_id: intent.id,
            client_secret: intent.client_secret,
            publishable_key: self.provider.publishable_key(),
            // The hosted page is not served yet: callers use the embedded
            // flow (attach a provider token).
            hosted_page_url: String::new(),
            expire_time: Some(timestamp(self.clock.now() + chrono::Duration::hours(24))),
        };
        Ok(Response::new(pb::InitPaymentMethodResponse { init: Some(init) }))
    }

    async fn attach_payment_method(
        &self,
        req: Request<pb::AttachPaymentMethodRequest>,
    ) -> Res<pb::AttachPaymentMethodResponse> {
        let ctx = caller(&req)?;
        let (pm, default) = self.attach(&ctx, req.get_ref()).await?;
        Ok(Response::new(pb::AttachPaymentMethodResponse { payment_method: Some(method_pb(&pm, default.as_deref())) }))
    }

    async fn list_payment_methods(
        &self,
        req: Request<pb::ListPaymentMethodsRequest>,
    ) -> Res<pb::ListPaymentMethodsResponse> {
        let ctx = caller(&req)?;
        let customer = self.customer(&ctx.tenant_id, &req.get_ref().customer_id, "customer_id").await?;
        let methods = self.repo.list_payment_methods(&ctx.tenant_id, &customer.id).await.map_err(AppError::from)?;
        let default = customer.default_payment_method_id.as_deref();
        Ok(Response::new(pb::ListPaymentMethodsResponse {
            payment_methods: methods.iter().map(|m| method_pb(m, default)).collect(),
        }))
    }

    async fn charge(&self, req: Request<pb::ChargeRequest>) -> Res<pb::ChargeResponse> {
        let ctx = caller(&req)?;
        let key = idempotency_key(&req);
        let p = self.charge(&ctx, req.get_ref(), key).await?;
        Ok(Response::new(pb::ChargeResponse { payment: Some(payment_pb(&p)) }))
    }

    async fn get_payment(&self, req: Request<pb::GetPaymentRequest>) -> Res<pb::GetPaymentResponse> {
        let ctx = caller(&req)?;
        let id = &req.get_ref().id;
        let p = self
            .repo
            .get_payment(&ctx.tenant_id, id)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found("payment", id))?;
        Ok(Response::new(pb::GetPaymentResponse { payment: Some(payment_pb(&p)) }))
    }

    async fn list_payments(&self, req: Request<pb::ListPaymentsRequest>) -> Res<pb::ListPaymentsResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.check(r.page_size >= 0, "page_size", "must not be negative");
        let after =
            Cursor::decode_time(&r.page_token).map(|c| c.map(|(t, id)| Cursor::time(t, id))).unwrap_or_else(|_| {
                v.add("page_token", "is not a token this API issued");
                None
            });
        let status = match pb::PaymentStatus::try_from(r.status) {
            Ok(pb::PaymentStatus::Unspecified) => None,
            Ok(s) => Some(match s {
                pb::PaymentStatus::Processing => PaymentStatus::Processing,
                pb::PaymentStatus::Succeeded => PaymentStatus::Succeeded,
                pb::PaymentStatus::Failed => PaymentStatus::Failed,
                pb::PaymentStatus::RequiresAction => PaymentStatus::RequiresAction,
                pb::PaymentStatus::Refunded => PaymentStatus::Refunded,
                _ => PaymentStatus::PartiallyRefunded,
            }),
            Err(_) => {
                v.add("status", "unknown status");
                None
            }
        };
        v.finish()?;
        let limit = page_size(r.page_size);
        let mut rows = self
            .repo
            .list_payments(
                &ctx.tenant_id,
                (!r.customer_id.is_empty()).then_some(r.customer_id.as_str()),
                (!r.invoice_id.is_empty()).then_some(r.invoice_id.as_str()),
                status.map(PaymentStatus::as_str),
                after.as_ref(),
                limit + 1,
            )
            .await
            .map_err(AppError::from)?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|p| Cursor::time(p.created_at, p.id.clone()).encode()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListPaymentsResponse { payments: rows.iter().map(payment_pb).collect(), next_page_token }))
    }
}
