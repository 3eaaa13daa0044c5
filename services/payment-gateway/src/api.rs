//! The payment gateway's gRPC surface: requests are checked (card numbers
//! first, in every field, before anything is logged or stored), turned into
//! [`Gateway`] calls, and answered in proto terms.

use std::collections::BTreeMap;
use std::sync::Arc;

use recur_error::{AppError, AppResult, Violations};
use recur_money::Money;
use recur_proto::convert::{MoneyError, money, parse_money, timestamp};
use recur_proto::payment::v1 as pb;
use recur_server::{caller, idempotency_key};
use recur_storage::page::{Cursor, page_size};
use tonic::{Request, Response, Status};

use crate::domain::pages::{PageKind, is_return_url};
use crate::domain::{Customer, Payment, PaymentEvent, PaymentMethod, PaymentStatus, Refund};
use crate::gateway::{ChargeInput, Gateway, PORTAL_PAGE_TTL, RefundInput};

pub struct PaymentApi {
    gateway: Arc<Gateway>,
}

impl PaymentApi {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        PaymentApi { gateway }
    }
}

fn no_card_numbers<M: prost::Message>(message: &M, type_name: &str) -> AppResult<()> {
    recur_server::refuse_card_numbers(message, &format!("recur.payment.v1.{type_name}"))
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

pub fn payment_pb(p: &Payment) -> pb::Payment {
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

fn refund_pb(r: &Refund) -> pb::Refund {
    pb::Refund {
        id: r.id.clone(),
        payment_id: r.payment_id.clone(),
        amount: Some(money(r.amount)),
        reason: r.reason.clone(),
        status: r.status.as_str().to_string(),
        create_time: Some(timestamp(r.created_at)),
    }
}

fn event_pb(e: &PaymentEvent) -> pb::PaymentEvent {
    pb::PaymentEvent {
        id: e.id.clone(),
        sequence: e.sequence,
        r#type: e.kind.clone(),
        payment_id: e.payment.id.clone(),
        payment: Some(payment_pb(&e.payment)),
        create_time: Some(timestamp(e.created_at)),
    }
}

/// A positive amount, exact in its currency's minor units.
fn amount(v: &mut Violations, field: &str, m: Option<&recur_proto::common::v1::Money>) -> Option<Money> {
    let m = m?;
    match parse_money(m) {
        Ok(a) if a.is_negative() || a.is_zero() => {
            v.add(format!("{field}.amount"), "must be greater than zero");
            None
        }
        Ok(a) => Some(a),
        Err(MoneyError::Currency(e)) => {
            v.add(format!("{field}.currency_code"), e);
            None
        }
        Err(MoneyError::Amount(e)) => {
            v.add(format!("{field}.amount"), e.to_string());
            None
        }
    }
}

fn return_url(v: &mut Violations, field: &str, url: &str) {
    // Its length is bounded by the request codec (`recur_proto::limits`).
    if !url.is_empty() && !is_return_url(url) {
        v.add(field, "must be an absolute http(s) URL");
    }
}

fn idempotency(v: &mut Violations, in_body: &str, header: Option<String>) -> Option<String> {
    let key = if in_body.is_empty() { header } else { Some(in_body.to_string()) };
    // Keys are stored: the metadata entry is checked like a field.
    if let Some(k) = &key {
        recur_server::check_idempotency_key(v, k);
    }
    key
}

/// Keys every provider can store. (Stripe's limits on the number of keys
/// and their lengths hold for every request: `recur_proto::limits`.)
fn metadata(v: &mut Violations, m: &BTreeMap<String, String>) {
    for k in m.keys() {
        if k.is_empty() || k.contains(['[', ']']) {
            v.add(format!("metadata[{k}]"), "keys have 1 to 40 characters, without brackets");
        }
    }
}

fn required(v: &mut Violations, field: &str, value: &str) {
    v.check(!value.trim().is_empty(), field, "is required");
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::payment_gateway_service_server::PaymentGatewayService for PaymentApi {
    async fn create_customer(&self, req: Request<pb::CreateCustomerRequest>) -> Res<pb::CreateCustomerResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "CreateCustomerRequest")?;
        let r = req.get_ref();
        let mut v = Violations::new();
        let key = idempotency(&mut v, "", idempotency_key(&req));
        v.finish()?;
        let c =
            self.gateway.create_customer(&ctx.tenant_id, &r.account_id, &r.email, &r.name, &r.reference, key).await?;
        Ok(Response::new(pb::CreateCustomerResponse { customer: Some(customer_pb(&c)) }))
    }

    async fn get_customer(&self, req: Request<pb::GetCustomerRequest>) -> Res<pb::GetCustomerResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "GetCustomerRequest")?;
        let c = self.gateway.customer(&ctx.tenant_id, &req.get_ref().id, "id").await?;
        Ok(Response::new(pb::GetCustomerResponse { customer: Some(customer_pb(&c)) }))
    }

    async fn init_payment_method(
        &self,
        req: Request<pb::InitPaymentMethodRequest>,
    ) -> Res<pb::InitPaymentMethodResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "InitPaymentMethodRequest")?;
        let r = req.get_ref();
        let mut v = Violations::new();
        required(&mut v, "customer_id", &r.customer_id);
        return_url(&mut v, "return_url", &r.return_url);
        v.finish()?;
        // The customer is a reference in the body: unknown is INVALID_ARGUMENT.
        let init = self
            .gateway
            .init_payment_method(&ctx.tenant_id, &r.customer_id, &r.return_url)
            .await
            .map_err(AppError::into_invalid_reference)?;
        Ok(Response::new(pb::InitPaymentMethodResponse {
            init: Some(pb::PaymentMethodInit {
                provider: init.provider,
                customer_id: init.customer.id.clone(),
                provider_customer_id: init.customer.provider_customer_id.clone(),
                setup_intent_id: init.intent.id,
                client_secret: init.intent.client_secret,
                publishable_key: init.publishable_key,
                hosted_page_url: init.hosted_page_url,
                expire_time: Some(timestamp(init.expires)),
            }),
        }))
    }

    async fn attach_payment_method(
        &self,
        req: Request<pb::AttachPaymentMethodRequest>,
    ) -> Res<pb::AttachPaymentMethodResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "AttachPaymentMethodRequest")?;
        let r = req.get_ref();
        let mut v = Violations::new();
        required(&mut v, "customer_id", &r.customer_id);
        required(&mut v, "payment_token", &r.payment_token);
        v.finish()?;
        let (pm, default) = self
            .gateway
            .attach(&ctx.tenant_id, &r.customer_id, r.payment_token.trim(), &r.name, r.set_default, None)
            .await
            .map_err(AppError::into_invalid_reference)?;
        Ok(Response::new(pb::AttachPaymentMethodResponse { payment_method: Some(method_pb(&pm, default.as_deref())) }))
    }

    async fn list_payment_methods(
        &self,
        req: Request<pb::ListPaymentMethodsRequest>,
    ) -> Res<pb::ListPaymentMethodsResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "ListPaymentMethodsRequest")?;
        let (customer, methods) = self.gateway.list_methods(&ctx.tenant_id, &req.get_ref().customer_id).await?;
        let default = customer.default_payment_method_id.as_deref();
        Ok(Response::new(pb::ListPaymentMethodsResponse {
            payment_methods: methods.iter().map(|m| method_pb(m, default)).collect(),
        }))
    }

    async fn charge(&self, req: Request<pb::ChargeRequest>) -> Res<pb::ChargeResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "ChargeRequest")?;
        let header_key = idempotency_key(&req);
        let r = req.into_inner();
        let mut v = Violations::new();
        required(&mut v, "customer_id", &r.customer_id);
        if r.amount.is_none() {
            v.add("amount", "is required");
        }
        let amount = amount(&mut v, "amount", r.amount.as_ref());
        // Providers take at most 1,000 characters of description (Stripe's
        // limit), fewer than free text elsewhere.
        v.check(r.description.chars().count() <= 1000, "description", "at most 1000 characters");
        return_url(&mut v, "return_url", &r.return_url);
        metadata(&mut v, &r.metadata);
        let key = idempotency(&mut v, &r.idempotency_key, header_key);
        v.finish()?;
        let amount = amount.ok_or_else(|| AppError::internal("validated charge without amount"))?;
        let input = ChargeInput {
            customer_id: r.customer_id,
            payment_method_id: r.payment_method_id,
            amount,
            invoice_id: r.invoice_id,
            description: r.description,
            idempotency_key: key,
            return_url: r.return_url,
            metadata: r.metadata.into_iter().collect(),
        };
        let p = self.gateway.charge(&ctx.tenant_id, ctx.deadline, input).await?;
        Ok(Response::new(pb::ChargeResponse { payment: Some(payment_pb(&p)) }))
    }

    async fn refund(&self, req: Request<pb::RefundRequest>) -> Res<pb::RefundResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "RefundRequest")?;
        let header_key = idempotency_key(&req);
        let r = req.into_inner();
        let mut v = Violations::new();
        required(&mut v, "payment_id", &r.payment_id);
        // An absent amount (or one with nothing in it) refunds what is left.
        let given = r.amount.as_ref().filter(|m| !m.amount.is_empty() || !m.currency_code.is_empty());
        let amount = amount(&mut v, "amount", given);
        // A refund's reason is kept with the provider's refund: 500, as Stripe.
        v.check(r.reason.chars().count() <= 500, "reason", "at most 500 characters");
        let key = idempotency(&mut v, &r.idempotency_key, header_key);
        v.finish()?;
        let input = RefundInput { payment_id: r.payment_id, amount, reason: r.reason, idempotency_key: key };
        let (refund, payment) = self.gateway.refund(&ctx.tenant_id, ctx.deadline, input).await?;
        Ok(Response::new(pb::RefundResponse { refund: Some(refund_pb(&refund)), payment: Some(payment_pb(&payment)) }))
    }

    async fn get_payment(&self, req: Request<pb::GetPaymentRequest>) -> Res<pb::GetPaymentResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "GetPaymentRequest")?;
        let p = self.gateway.get_payment(&ctx.tenant_id, &req.get_ref().id, "id").await?;
        Ok(Response::new(pb::GetPaymentResponse { payment: Some(payment_pb(&p)) }))
    }

    async fn list_payments(&self, req: Request<pb::ListPaymentsRequest>) -> Res<pb::ListPaymentsResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "ListPaymentsRequest")?;
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
        let rows = self
            .gateway
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
        let (rows, next_page_token) =
            recur_storage::page::finish(rows, limit, |p| Cursor::time(p.created_at, p.id.clone()));
        Ok(Response::new(pb::ListPaymentsResponse { payments: rows.iter().map(payment_pb).collect(), next_page_token }))
    }

    async fn create_portal_session(
        &self,
        req: Request<pb::CreatePortalSessionRequest>,
    ) -> Res<pb::CreatePortalSessionResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "CreatePortalSessionRequest")?;
        let r = req.get_ref();
        let mut v = Violations::new();
        required(&mut v, "customer_id", &r.customer_id);
        return_url(&mut v, "return_url", &r.return_url);
        v.finish()?;
        let customer = self
            .gateway
            .customer(&ctx.tenant_id, &r.customer_id, "customer_id")
            .await
            .map_err(AppError::into_invalid_reference)?;
        let (url, expires) =
            self.gateway.page_url(PageKind::Portal, &ctx.tenant_id, &customer.id, &r.return_url, PORTAL_PAGE_TTL);
        Ok(Response::new(pb::CreatePortalSessionResponse { url, expire_time: Some(timestamp(expires)) }))
    }

    async fn handle_provider_webhook(
        &self,
        req: Request<pb::HandleProviderWebhookRequest>,
    ) -> Res<pb::HandleProviderWebhookResponse> {
        let ctx = caller(&req)?;
        // The signature is an HMAC in hex, not customer data: a run of its
        // digits passes the Luhn check now and then by chance.
        let r = req.get_ref();
        no_card_numbers(
            &pb::HandleProviderWebhookRequest { signature: String::new(), ..r.clone() },
            "HandleProviderWebhookRequest",
        )?;
        let mut v = Violations::new();
        v.check(matches!(r.provider.as_str(), "stripe" | "sandbox"), "provider", "must be stripe or sandbox");
        v.check(!r.payload.is_empty(), "payload", "is required");
        v.check(r.payload.len() <= 1 << 20, "payload", "at most 1 MiB");
        v.check(!r.signature.is_empty(), "signature", "is required");
        v.finish()?;
        let out = self.gateway.handle_webhook(&ctx.tenant_id, &r.provider, &r.payload, &r.signature).await?;
        Ok(Response::new(pb::HandleProviderWebhookResponse {
            provider_event_id: out.event_id,
            handled: out.handled,
            payment_id: out.payment_id,
        }))
    }

    async fn list_payment_events(
        &self,
        req: Request<pb::ListPaymentEventsRequest>,
    ) -> Res<pb::ListPaymentEventsResponse> {
        let ctx = caller(&req)?;
        no_card_numbers(req.get_ref(), "ListPaymentEventsRequest")?;
        let r = req.get_ref();
        let mut v = Violations::new();
        v.check(r.after_sequence >= 0, "after_sequence", "must not be negative");
        v.check(r.page_size >= 0, "page_size", "must not be negative");
        v.finish()?;
        let events = self.gateway.list_events(&ctx.tenant_id, r.after_sequence, page_size(r.page_size)).await?;
        Ok(Response::new(pb::ListPaymentEventsResponse { events: events.iter().map(event_pb).collect() }))
    }
}
