//! The sign-up service: it owns only sessions, and does everything else
//! through the other services' gRPC clients — catalog (tenant defaults),
//! pricing (quotes), payment gateway (customer, payment method) and
//! subscription (account, bill group, contract, invoice, payment).

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use recur_auth::CallContext;
use recur_client::{
    AccountClient, CatalogClient, PaymentClient, PricingClient, SubscriptionClient, request, with_idempotency_key,
};
use recur_clock::SharedClock;
use recur_error::{AppError, AppResult, Violations};
use recur_proto::catalog::v1 as catpb;
use recur_proto::common::v1 as common;
use recur_proto::convert::{address_in, address_pb, timestamp};
use recur_proto::payment::v1 as paypb;
use recur_proto::pricing::v1 as pricepb;
use recur_proto::signup::v1 as pb;
use recur_proto::subscription::v1 as subpb;
use recur_server::caller;
use tonic::{Request, Response, Status};

use crate::domain::*;
use crate::repo::Sessions;

/// How long a finalization may hold a session before another may take over.
const FINALIZE_LEASE: chrono::Duration = chrono::Duration::seconds(120);

pub struct Clients {
    pub catalog: CatalogClient,
    pub pricing: PricingClient,
    pub payments: PaymentClient,
    pub accounts: AccountClient,
    pub subscriptions: SubscriptionClient,
}

#[derive(Clone)]
pub struct SignupApi {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: Sessions,
    clients: Clients,
    clock: SharedClock,
    call_timeout: Duration,
    session_ttl: chrono::Duration,
}

impl SignupApi {
    pub fn new(
        sessions: Sessions,
        clients: Clients,
        clock: SharedClock,
        call_timeout: Duration,
        session_ttl: Duration,
    ) -> Self {
        SignupApi {
            inner: Arc::new(Inner {
                sessions,
                clients,
                clock,
                call_timeout,
                session_ttl: chrono::Duration::from_std(session_ttl).unwrap_or(chrono::Duration::days(1)),
            }),
        }
    }
}

// ---------- from the wire ----------

fn customer_in(c: &pb::CustomerInput) -> CustomerInput {
    CustomerInput {
        account_id: c.account_id.trim().to_string(),
        account_name: c.account_name.trim().to_string(),
        custom_id: c.custom_id.clone(),
        name: c.name.trim().to_string(),
        email: c.email.trim().to_string(),
        billing_address: address_in(c.billing_address.as_ref()),
        phone: c.phone.clone(),
    }
}

fn quote_in(q: &pb::QuoteInput) -> QuoteInput {
    QuoteInput {
        start_date: q.start_date.clone(),
        custom_id: q.custom_id.clone(),
        offerings: q
            .offerings
            .iter()
            .map(|o| CartOffering {
                offering_id: o.offering_id.clone(),
                rate_id: o.rate_id.clone(),
                items: o
                    .items
                    .iter()
                    .map(|i| CartItem { product_id: i.product_id.clone(), quantity: i.quantity.clone() })
                    .collect(),
            })
            .collect(),
        coupon_codes: q.coupon_codes.clone(),
    }
}

/// A new customer needs a name and an e-mail; an existing account needs
/// only its id.
fn check_customer(v: &mut Violations, c: &CustomerInput) {
    if !c.account_id.is_empty() {
        v.check(
            recur_id::is_valid(recur_id::Kind::Account, &c.account_id),
            "customer.account_id",
            "is not an account id",
        );
        return;
    }
    v.check(!c.name.is_empty(), "customer.name", "is required");
    if c.email.is_empty() {
        v.add("customer.email", "is required");
    } else if !recur_contact::is_email(&c.email) {
        v.add("customer.email", "is not an e-mail address");
    }
    let country = &c.billing_address.country;
    v.check(
        recur_contact::is_country_code(country),
        "customer.billing_address.country",
        "must be an ISO 3166-1 alpha-2 code such as \"US\"",
    );
}

fn check_quote(v: &mut Violations, q: &QuoteInput) {
    if q.offerings.is_empty() {
        v.add("quote.offerings", "at least one offering is required");
    }
    for (i, o) in q.offerings.iter().enumerate() {
        v.check(!o.offering_id.is_empty(), format!("quote.offerings[{i}].offering_id"), "is required");
        v.check(!o.rate_id.is_empty(), format!("quote.offerings[{i}].rate_id"), "is required");
    }
}

/// Pricing answers about its own request; the caller sent a sign-up.
fn pricing_field(field: &str) -> String {
    match field.strip_prefix("tax_address") {
        Some(rest) => format!("customer.billing_address{rest}"),
        None => format!("quote.{field}"),
    }
}

/// The subscription service answers about one contract of the cart.
fn subscription_field(index: usize) -> impl Fn(&str) -> String {
    move |field: &str| match field {
        "offering" => format!("quote.offerings[{index}].offering_id"),
        "rate" => format!("quote.offerings[{index}].rate_id"),
        "start_date" => "quote.start_date".into(),
        "coupon_codes" => "quote.coupon_codes".into(),
        f if f.starts_with("items") => format!("quote.offerings[{index}].{f}"),
        f => f.to_string(),
    }
}

fn with_session(e: AppError, session_id: &str) -> AppError {
    e.with_metadata("session_id", session_id)
}

// ---------- to the wire ----------

fn money_pb(m: &MoneyAmount) -> Option<common::Money> {
    (!m.currency.is_empty()).then(|| common::Money { currency_code: m.currency.clone(), amount: m.amount.clone() })
}

fn money_in(m: &Option<common::Money>) -> MoneyAmount {
    m.as_ref().map(|m| MoneyAmount { currency: m.currency_code.clone(), amount: m.amount.clone() }).unwrap_or_default()
}

fn invoice_pb(i: &InvoiceSummary) -> pb::SignupInvoice {
    pb::SignupInvoice {
        id: i.id.clone(),
        amount_without_tax: money_pb(&i.amount_without_tax),
        tax: money_pb(&i.tax),
        amount: money_pb(&i.amount),
        line_ids: i.line_ids.clone(),
    }
}

fn payment_pb(p: &PaymentSummary) -> pb::SignupPayment {
    pb::SignupPayment {
        id: p.id.clone(),
        amount: money_pb(&p.amount),
        status: p.status,
        action_url: p.action_url.clone(),
    }
}

fn signup_pb(s: &Session, action: pb::SignupAction, estimate: bool) -> pb::Signup {
    let status = if estimate {
        pb::SignupStatus::Estimate
    } else {
        match s.status {
            SessionStatus::Pending => pb::SignupStatus::Pending,
            SessionStatus::Finalizing => pb::SignupStatus::Finalizing,
            SessionStatus::Finalized => pb::SignupStatus::Finalized,
            SessionStatus::Canceled => pb::SignupStatus::Canceled,
        }
    };
    let result = s.result.clone().unwrap_or_default();
    let priced = pricepb::Quote::decode(s.priced_quote.as_slice()).ok();
    let init = (!s.payment_method_init.is_empty())
        .then(|| paypb::PaymentMethodInit::decode(s.payment_method_init.as_slice()).ok())
        .flatten();
    pb::Signup {
        session_id: if estimate { String::new() } else { s.id.clone() },
        action: action as i32,
        status: status as i32,
        customer: Some(pb::SignupCustomer {
            account_id: if result.account_id.is_empty() {
                s.customer.account_id.clone()
            } else {
                result.account_id.clone()
            },
            account_name: if result.account_name.is_empty() {
                if s.customer.account_name.is_empty() {
                    s.customer.name.clone()
                } else {
                    s.customer.account_name.clone()
                }
            } else {
                result.account_name.clone()
            },
            contact_id: result.contact_id.clone(),
            contact_name: if result.contact_name.is_empty() {
                s.customer.name.clone()
            } else {
                result.contact_name.clone()
            },
            contact_email: if result.contact_email.is_empty() {
                s.customer.email.clone()
            } else {
                result.contact_email.clone()
            },
            billing_address: Some(address_pb(&s.customer.billing_address)),
            custom_id: s.customer.custom_id.clone(),
        }),
        bill_group: Some(pb::SignupBillGroup {
            id: result.bill_group_id.clone(),
            auto_email_invoice: s.bill_group.auto_email_invoice.unwrap_or(true),
            collect_invoice_balance_automatically: s.bill_group.collect_invoice_balance_automatically.unwrap_or(true),
        }),
        quote: Some(pb::SignupQuote {
            id: if estimate { String::new() } else { s.quote_id.clone() },
            status: if s.status == SessionStatus::Finalized {
                pb::QuoteStatus::Processed
            } else {
                pb::QuoteStatus::Draft
            } as i32,
            start_date: priced.as_ref().map(|q| q.start_date.clone()).unwrap_or_else(|| s.quote.start_date.clone()),
            custom_id: s.quote.custom_id.clone(),
            coupon_codes: s.quote.coupon_codes.clone(),
            pricing: priced,
        }),
        invoice: result.invoices.first().map(invoice_pb),
        payment: result.payments.first().map(payment_pb),
        contract_id: result.contract_ids.first().cloned().unwrap_or_default(),
        payment_method_init: init,
        payment_method: s.payment_method.as_ref().map(|pm| pb::SignupPaymentMethod {
            id: pm.id.clone(),
            name: pm.name.clone(),
            brand: pm.brand.clone(),
            last4: pm.last4.clone(),
        }),
        create_time: (!estimate).then(|| timestamp(s.created_at)),
        update_time: (!estimate).then(|| timestamp(s.updated_at)),
        expire_time: (!estimate).then(|| timestamp(s.expires_at)),
        contract_ids: result.contract_ids.clone(),
        invoices: result.invoices.iter().map(invoice_pb).collect(),
        payments: result.payments.iter().map(payment_pb).collect(),
    }
}

impl Inner {
    fn req<T>(&self, ctx: &CallContext, msg: T) -> tonic::Request<T> {
        request(ctx, msg, self.call_timeout)
    }

    fn keyed<T>(&self, ctx: &CallContext, msg: T, key: &str) -> tonic::Request<T> {
        with_idempotency_key(self.req(ctx, msg), key)
    }

    /// Prices the cart (encoded as pricing returned it).
    async fn price(&self, ctx: &CallContext, s: &Session, compute_tax: bool) -> AppResult<Vec<u8>> {
        let q = &s.quote;
        let req = pricepb::QuoteRequest {
            offerings: q
                .offerings
                .iter()
                .map(|o| pricepb::CartOffering {
                    offering_id: o.offering_id.clone(),
                    rate_id: o.rate_id.clone(),
                    items: o
                        .items
                        .iter()
                        .map(|i| pricepb::CartItem {
                            product_id: i.product_id.clone(),
                            quantity: i.quantity.clone(),
                            custom_price: None,
                        })
                        .collect(),
                })
                .collect(),
            coupon_codes: q.coupon_codes.clone(),
            coupon_usages: Vec::new(),
            continuation: false,
            billing_day: 0,
            tax_address: Some(address_pb(&s.customer.billing_address)),
            tax_exempt: false,
            start_date: q.start_date.clone(),
            compute_tax: compute_tax && !s.customer.billing_address.country.is_empty(),
            time_zone: String::new(),
        };
        let quote = self
            .clients
            .pricing
            .clone()
            .quote(self.req(ctx, req))
            .await
            .map_err(|st| AppError::from_peer("pricing", &st).map_fields(pricing_field).into_invalid_reference())?
            .into_inner()
            .quote
            .ok_or_else(|| AppError::internal("pricing returned no quote"))?;
        Ok(quote.encode_to_vec())
    }

    /// The gateway customer of the session, created on first need.
    async fn ensure_gateway_customer(&self, ctx: &CallContext, s: &mut Session) -> AppResult<String> {
        if let Some(id) = &s.gateway_customer_id {
            return Ok(id.clone());
        }
        let req = paypb::CreateCustomerRequest {
            account_id: s.customer.account_id.clone(),
            email: s.customer.email.clone(),
            name: if s.customer.account_name.is_empty() {
                s.customer.name.clone()
            } else {
                s.customer.account_name.clone()
            },
            reference: s.id.clone(),
        };
        let customer = self
            .clients
            .payments
            .clone()
            .create_customer(self.keyed(ctx, req, &s.step_key("customer")))
            .await
            .map_err(|st| AppError::from_peer("payment-gateway", &st))?
            .into_inner()
            .customer
            .ok_or_else(|| AppError::internal("gateway returned no customer"))?;
        s.gateway_customer_id = Some(customer.id.clone());
        Ok(customer.id)
    }

    async fn init_payment_method(&self, ctx: &CallContext, s: &mut Session) -> AppResult<()> {
        let customer_id = self.ensure_gateway_customer(ctx, s).await?;
        let init = self
            .clients
            .payments
            .clone()
            .init_payment_method(
                self.req(ctx, paypb::InitPaymentMethodRequest { customer_id, return_url: s.return_url.clone() }),
            )
            .await
            .map_err(|st| AppError::from_peer("payment-gateway", &st))?
            .into_inner()
            .init
            .ok_or_else(|| AppError::internal("gateway returned no init data"))?;
        s.payment_method_init = init.encode_to_vec();
        Ok(())
    }

    async fn attach_payment_method(
        &self,
        ctx: &CallContext,
        s: &mut Session,
        pm: &pb::PaymentMethodInput,
    ) -> AppResult<()> {
        if pm.payment_token.trim().is_empty() {
            return Err(AppError::invalid("payment_method.payment_token", "is required"));
        }
        let customer_id = self.ensure_gateway_customer(ctx, s).await?;
        let req = paypb::AttachPaymentMethodRequest {
            customer_id,
            payment_token: pm.payment_token.trim().to_string(),
            name: pm.payment_method_name.clone(),
            set_default: true,
        };
        let saved = self
            .clients
            .payments
            .clone()
            .attach_payment_method(self.req(ctx, req))
            .await
            .map_err(|st| {
                AppError::from_peer("payment-gateway", &st).map_fields(|f| match f {
                    "payment_token" => "payment_method.payment_token".into(),
                    "name" => "payment_method.payment_method_name".into(),
                    other => other.to_string(),
                })
            })?
            .into_inner()
            .payment_method
            .ok_or_else(|| AppError::internal("gateway returned no payment method"))?;
        s.payment_method_input = Some(PaymentMethodInput {
            payment_method_name: pm.payment_method_name.clone(),
            payment_token: String::new(),
        });
        s.payment_method =
            Some(SavedPaymentMethod { id: saved.id, name: saved.name, brand: saved.brand, last4: saved.last4 });
        Ok(())
    }

    fn new_session(
        &self,
        customer: CustomerInput,
        bill_group: BillGroupInput,
        quote: QuoteInput,
        return_url: String,
    ) -> Session {
        let now = self.clock.now_micros();
        Session {
            id: recur_id::new_id(recur_id::Kind::SignupSession),
            status: SessionStatus::Pending,
            customer,
            bill_group,
            quote,
            quote_id: recur_id::new_id(recur_id::Kind::Quote),
            priced_quote: Vec::new(),
            payment_method_input: None,
            gateway_customer_id: None,
            payment_method: None,
            payment_method_init: Vec::new(),
            result: None,
            return_url,
            version: 1,
            lease_until: None,
            created_at: now,
            updated_at: now,
            expires_at: now + self.session_ttl,
        }
    }

    /// Saves `s` over the version it was read at.
    async fn save(&self, ctx: &CallContext, s: &mut Session) -> AppResult<()> {
        let expected = s.version;
        let now = self.clock.now_micros();
        s.version += 1;
        s.updated_at = now;
        if !self.sessions.replace(&ctx.tenant_id, s, expected, now).await? {
            return Err(with_session(
                AppError::aborted("SESSION_CHANGED", "the session was changed by another request; read it and retry"),
                &s.id,
            ));
        }
        Ok(())
    }

    async fn load(&self, ctx: &CallContext, id: &str) -> AppResult<Session> {
        if id.is_empty() {
            return Err(AppError::invalid("session_id", "is required"));
        }
        self.sessions
            .get_fresh(&ctx.tenant_id, id)
            .await?
            .ok_or_else(|| AppError::not_found("signup session", id).with_field("session_id", "no such session"))
    }

    // ---------- CreateSignup ----------

    async fn create(&self, ctx: &CallContext, r: &pb::CreateSignupRequest) -> AppResult<pb::Signup> {
        let action = pb::SignupAction::try_from(r.action).unwrap_or(pb::SignupAction::Unspecified);
        use pb::SignupAction as A;
        if !matches!(action, A::CreateAndFinalize | A::CreateWithPaymentMethod | A::CreateInPending | A::Estimate) {
            return Err(AppError::invalid(
                "action",
                "CreateSignup takes CREATE_AND_FINALIZE, CREATE_WITH_PAYMENT_METHOD, CREATE_IN_PENDING or ESTIMATE",
            ));
        }
        let customer = r.customer.as_ref().map(customer_in).unwrap_or_default();
        let quote = r.quote.as_ref().map(quote_in).unwrap_or_default();
        let bill_group = r
            .bill_group
            .as_ref()
            .map(|b| BillGroupInput {
                auto_email_invoice: b.auto_email_invoice,
                collect_invoice_balance_automatically: b.collect_invoice_balance_automatically,
            })
            .unwrap_or_default();

        // Everything the request alone can tell, before anything is saved.
        let mut v = Violations::new();
        if action != A::Estimate {
            if r.customer.is_none() {
                v.add("customer", "is required");
            } else {
                check_customer(&mut v, &customer);
            }
        }
        if r.quote.is_none() {
            v.add("quote", "is required");
        } else {
            check_quote(&mut v, &quote);
        }
        if action == A::CreateAndFinalize && r.payment_method.is_some() {
            v.add("payment_method", "CREATE_AND_FINALIZE takes no payment method; use CREATE_WITH_PAYMENT_METHOD");
        }
        v.finish()?;

        let mut s = self.new_session(customer, bill_group, quote, r.return_url.clone());
        // Pricing validates the cart against the catalog; a bad cart fails
        // here, with nothing saved.
        s.priced_quote = self.price(ctx, &s, false).await?;
        if action == A::Estimate {
            return Ok(signup_pb(&s, action, true));
        }

        let now = self.clock.now_micros();
        self.sessions.insert(&ctx.tenant_id, &s, now).await?;
        let id = s.id.clone();
        let outcome: AppResult<pb::Signup> = async {
            match action {
                A::CreateWithPaymentMethod => {
                    self.init_payment_method(ctx, &mut s).await?;
                    if let Some(pm) = &r.payment_method {
                        self.attach_payment_method(ctx, &mut s, pm).await?;
                    }
                    self.save(ctx, &mut s).await?;
                    Ok(signup_pb(&s, action, false))
                }
                A::CreateAndFinalize => {
                    let s = self.finalize(ctx, s).await?;
                    Ok(signup_pb(&s, action, false))
                }
                _ => Ok(signup_pb(&s, action, false)),
            }
        }
        .await;
        outcome.map_err(|e| with_session(e, &id))
    }

    // ---------- UpdateSignup ----------

    async fn update(&self, ctx: &CallContext, r: &pb::UpdateSignupRequest) -> AppResult<pb::Signup> {
        use pb::SignupAction as A;
        let action = pb::SignupAction::try_from(r.action).unwrap_or(A::Unspecified);
        if !matches!(action, A::InitPaymentMethod | A::Update | A::Finalize | A::Cancel) {
            return Err(AppError::invalid(
                "action",
                "UpdateSignup takes INIT_PAYMENT_METHOD, UPDATE, FINALIZE or CANCEL",
            ));
        }
        let mut s = self.load(ctx, &r.session_id).await?;
        let now = self.clock.now_micros();
        match s.status {
            // FINALIZE is idempotent: a finalized session answers with what
            // it made.
            SessionStatus::Finalized if action == A::Finalize => return Ok(signup_pb(&s, action, false)),
            SessionStatus::Finalized => {
                return Err(AppError::failed_precondition("SESSION_FINALIZED", "the session is already finalized"));
            }
            SessionStatus::Canceled if action == A::Cancel => return Ok(signup_pb(&s, action, false)),
            SessionStatus::Canceled => {
                return Err(AppError::failed_precondition("SESSION_CANCELED", "the session was canceled"));
            }
            _ if s.is_leased(now) => {
                return Err(with_session(
                    AppError::aborted("FINALIZE_IN_PROGRESS", "the session is being finalized; retry shortly"),
                    &s.id,
                ));
            }
            _ if s.is_expired(now) => {
                return Err(AppError::failed_precondition("SESSION_EXPIRED", "the session expired; start a new one"));
            }
            _ => {}
        }
        let id = s.id.clone();
        let outcome: AppResult<pb::Signup> = async {
            if action == A::Cancel {
                s.status = SessionStatus::Canceled;
                self.save(ctx, &mut s).await?;
                return Ok(signup_pb(&s, action, false));
            }
            if action == A::InitPaymentMethod {
                self.init_payment_method(ctx, &mut s).await?;
                self.save(ctx, &mut s).await?;
                return Ok(signup_pb(&s, action, false));
            }
            // UPDATE and FINALIZE: what is sent replaces what was there.
            let mut v = Violations::new();
            if let Some(c) = &r.customer {
                s.customer = customer_in(c);
                check_customer(&mut v, &s.customer);
            }
            if let Some(q) = &r.quote {
                s.quote = quote_in(q);
                check_quote(&mut v, &s.quote);
            }
            v.finish()?;
            if let Some(b) = &r.bill_group {
                s.bill_group = BillGroupInput {
                    auto_email_invoice: b.auto_email_invoice,
                    collect_invoice_balance_automatically: b.collect_invoice_balance_automatically,
                };
            }
            if !r.return_url.is_empty() {
                s.return_url = r.return_url.clone();
            }
            if r.quote.is_some() || r.customer.is_some() {
                s.priced_quote = self.price(ctx, &s, false).await?;
            }
            let mut reported = action;
            if let Some(pm) = &r.payment_method {
                self.attach_payment_method(ctx, &mut s, pm).await?;
                if action == A::Update {
                    reported = A::AddPaymentMethod;
                }
            }
            if action == A::Finalize {
                let mut v = Violations::new();
                check_customer(&mut v, &s.customer);
                check_quote(&mut v, &s.quote);
                v.finish()?;
                let s = self.finalize(ctx, s).await?;
                return Ok(signup_pb(&s, action, false));
            }
            self.save(ctx, &mut s).await?;
            Ok(signup_pb(&s, reported, false))
        }
        .await;
        outcome.map_err(|e| with_session(e, &id))
    }

    // ---------- finalize ----------

    /// Turns a pending session into an account, bill group, contracts,
    /// invoices and payments. Each step carries an idempotency key derived
    /// from the session, so a retry after any failure repeats nothing; the
    /// FINALIZING lease keeps concurrent calls out.
    async fn finalize(&self, ctx: &CallContext, mut s: Session) -> AppResult<Session> {
        // Tax is computed at finalization.
        s.priced_quote = self.price(ctx, &s, true).await?;
        let priced = pricepb::Quote::decode(s.priced_quote.as_slice()).map_err(AppError::internal)?;
        let due_now = priced
            .amount
            .as_ref()
            .and_then(|m| rust_decimal::Decimal::from_str_exact(&m.amount).ok())
            .unwrap_or_default();
        if s.payment_method.is_none() && !s.payment_method_init.is_empty() && due_now > rust_decimal::Decimal::ZERO {
            return Err(AppError::failed_precondition(
                "PAYMENT_METHOD_REQUIRED",
                "payment collection was started for this session: attach the payment method before finalizing",
            )
            .with_field("payment_method.payment_token", "is required to finalize"));
        }

        s.status = SessionStatus::Finalizing;
        s.lease_until = Some(self.clock.now_micros() + FINALIZE_LEASE);
        self.save(ctx, &mut s).await?;

        match self.run_finalize(ctx, &s, &priced).await {
            Ok(result) => {
                s.status = SessionStatus::Finalized;
                s.lease_until = None;
                s.result = Some(result);
                self.save(ctx, &mut s).await?;
                Ok(s)
            }
            Err(e) => {
                // Back to PENDING: the session can be corrected or retried,
                // and the retry repeats no step.
                s.status = SessionStatus::Pending;
                s.lease_until = None;
                if let Err(save_err) = self.save(ctx, &mut s).await {
                    tracing::warn!(session = %s.id, error = %save_err, "could not release the finalize lease; it expires by itself");
                }
                Err(e)
            }
        }
    }

    async fn run_finalize(&self, ctx: &CallContext, s: &Session, priced: &pricepb::Quote) -> AppResult<Finalized> {
        let peer = |name: &'static str| move |st: Status| AppError::from_peer(name, &st);
        let settings = self
            .clients
            .catalog
            .clone()
            .get_tenant_settings(self.req(ctx, catpb::GetTenantSettingsRequest {}))
            .await
            .map_err(peer("catalog"))?
            .into_inner()
            .settings
            .unwrap_or_default();
        let defaults = settings.bill_group_defaults.unwrap_or_default();

        // 1. The account and its contact.
        let account = if s.customer.account_id.is_empty() {
            let c = &s.customer;
            let req = subpb::CreateAccountRequest {
                account: Some(subpb::Account {
                    custom_id: c.custom_id.clone(),
                    account_name: if c.account_name.is_empty() { c.name.clone() } else { c.account_name.clone() },
                    currency_code: priced.currency_code.clone(),
                    billing_address: Some(address_pb(&c.billing_address)),
                    contacts: vec![subpb::Contact {
                        name: c.name.clone(),
                        email: c.email.clone(),
                        phone: c.phone.clone(),
                        address: Some(address_pb(&c.billing_address)),
                        primary: true,
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            };
            self.clients
                .accounts
                .clone()
                .create_account(self.keyed(ctx, req, &s.step_key("account")))
                .await
                .map_err(|st| {
                    AppError::from_peer("subscription", &st)
                        .map_fields(|f| f.replace("account.contacts[0].", "customer.").replace("account.", "customer."))
                })?
                .into_inner()
                .account
        } else {
            self.clients
                .accounts
                .clone()
                .get_account(self.req(ctx, subpb::GetAccountRequest { id: s.customer.account_id.clone() }))
                .await
                .map_err(|st| match AppError::from_peer("subscription", &st) {
                    // An account named in the body: INVALID_ARGUMENT ACCOUNT_NOT_FOUND.
                    e if e.code() == tonic::Code::NotFound => AppError::not_found("account", &s.customer.account_id)
                        .into_invalid_reference()
                        .with_field("customer.account_id", "no such account"),
                    e => e,
                })?
                .into_inner()
                .account
        }
        .ok_or_else(|| AppError::internal("subscription service returned no account"))?;
        let contact = account.contacts.first().cloned().unwrap_or_default();

        // 2. The bill group, with the tenant's defaults where the session
        // left a choice open.
        let req = subpb::CreateBillGroupRequest {
            bill_group: Some(subpb::BillGroup {
                account_id: account.id.clone(),
                auto_email_invoice: Some(s.bill_group.auto_email_invoice.unwrap_or(defaults.auto_email_invoice)),
                collect_invoice_balance_automatically: Some(
                    s.bill_group
                        .collect_invoice_balance_automatically
                        .unwrap_or(defaults.collect_invoice_balance_automatically),
                ),
                payment_method_id: s.payment_method.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
                gateway_customer_id: s.gateway_customer_id.clone().unwrap_or_default(),
                collection_method: subpb::CollectionMethod::Automatic as i32,
                currency_code: priced.currency_code.clone(),
                contact_id: contact.id.clone(),
                ..Default::default()
            }),
        };
        let bill_group = self
            .clients
            .accounts
            .clone()
            .create_bill_group(self.keyed(ctx, req, &s.step_key("bill-group")))
            .await
            .map_err(peer("subscription"))?
            .into_inner()
            .bill_group
            .ok_or_else(|| AppError::internal("subscription service returned no bill group"))?;

        // 3. One contract per offering, each with its first invoice and payment.
        let mut result = Finalized {
            account_id: account.id.clone(),
            account_name: account.account_name.clone(),
            contact_id: contact.id.clone(),
            contact_name: contact.name.clone(),
            contact_email: contact.email.clone(),
            bill_group_id: bill_group.id.clone(),
            ..Default::default()
        };
        for (i, o) in s.quote.offerings.iter().enumerate() {
            let req = subpb::CreateSubscriptionRequest {
                account_id: account.id.clone(),
                bill_group_id: bill_group.id.clone(),
                offering: o.offering_id.clone(),
                rate: o.rate_id.clone(),
                items: o
                    .items
                    .iter()
                    .map(|it| subpb::SubscriptionItem {
                        product_id: it.product_id.clone(),
                        quantity: it.quantity.clone(),
                        custom_price: None,
                    })
                    .collect(),
                start_date: if s.quote.start_date.is_empty() {
                    priced.start_date.clone()
                } else {
                    s.quote.start_date.clone()
                },
                coupon_codes: s.quote.coupon_codes.clone(),
                metadata: Default::default(),
                custom_id: String::new(),
                pending: false,
                quote_id: s.quote_id.clone(),
            };
            let created = self
                .clients
                .subscriptions
                .clone()
                .create_subscription(self.keyed(ctx, req, &s.step_key(&format!("subscription:{i}"))))
                .await
                .map_err(|st| AppError::from_peer("subscription", &st).map_fields(subscription_field(i)))?
                .into_inner();
            let sub = created.subscription.ok_or_else(|| AppError::internal("no subscription returned"))?;
            result.contract_ids.push(sub.id);
            if let Some(inv) = created.invoice {
                result.invoices.push(InvoiceSummary {
                    id: inv.id,
                    amount_without_tax: money_in(&inv.amount_without_tax),
                    tax: money_in(&inv.tax),
                    amount: money_in(&inv.amount),
                    line_ids: inv.lines.into_iter().map(|l| l.id).collect(),
                });
            }
            if !created.payment_id.is_empty() {
                let payment = self
                    .clients
                    .payments
                    .clone()
                    .get_payment(self.req(ctx, paypb::GetPaymentRequest { id: created.payment_id.clone() }))
                    .await
                    .map_err(peer("payment-gateway"))?
                    .into_inner()
                    .payment
                    .ok_or_else(|| AppError::internal("no payment returned"))?;
                result.payments.push(PaymentSummary {
                    id: payment.id,
                    amount: money_in(&payment.amount),
                    status: payment.status,
                    action_url: payment.action_url,
                });
            }
        }
        Ok(result)
    }
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::signup_service_server::SignupService for SignupApi {
    async fn create_signup(&self, req: Request<pb::CreateSignupRequest>) -> Res<pb::CreateSignupResponse> {
        let ctx = caller(&req)?;
        recur_server::refuse_card_numbers(req.get_ref(), "recur.signup.v1.CreateSignupRequest")?;
        let signup = self.inner.create(&ctx, req.get_ref()).await?;
        Ok(Response::new(pb::CreateSignupResponse { signup: Some(signup) }))
    }

    async fn update_signup(&self, req: Request<pb::UpdateSignupRequest>) -> Res<pb::UpdateSignupResponse> {
        let ctx = caller(&req)?;
        recur_server::refuse_card_numbers(req.get_ref(), "recur.signup.v1.UpdateSignupRequest")?;
        let signup = self.inner.update(&ctx, req.get_ref()).await?;
        Ok(Response::new(pb::UpdateSignupResponse { signup: Some(signup) }))
    }

    async fn get_signup(&self, req: Request<pb::GetSignupRequest>) -> Res<pb::GetSignupResponse> {
        let ctx = caller(&req)?;
        recur_server::refuse_card_numbers(req.get_ref(), "recur.signup.v1.GetSignupRequest")?;
        let id = &req.get_ref().session_id;
        if id.is_empty() {
            return Err(AppError::invalid("session_id", "is required").into());
        }
        let s = self
            .inner
            .sessions
            .get(&ctx.tenant_id, id, self.inner.clock.now_micros())
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found("signup session", id))?;
        let action = match s.status {
            SessionStatus::Finalized => pb::SignupAction::Finalize,
            SessionStatus::Canceled => pb::SignupAction::Cancel,
            _ => pb::SignupAction::Unspecified,
        };
        Ok(Response::new(pb::GetSignupResponse { signup: Some(signup_pb(&s, action, false)) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_fields_map_into_the_signup_request() {
        assert_eq!(pricing_field("offerings[0].items[1].quantity"), "quote.offerings[0].items[1].quantity");
        assert_eq!(pricing_field("tax_address.country"), "customer.billing_address.country");
        let f = subscription_field(2);
        assert_eq!(f("rate"), "quote.offerings[2].rate_id");
        assert_eq!(f("items[0].quantity"), "quote.offerings[2].items[0].quantity");
    }

    #[test]
    fn customers_need_a_name_and_an_email() {
        let mut v = Violations::new();
        check_customer(&mut v, &CustomerInput { name: "Jo".into(), ..Default::default() });
        let e = v.finish().expect_err("missing email");
        assert_eq!(e.violations()[0].field, "customer.email");

        let mut v = Violations::new();
        check_customer(&mut v, &CustomerInput { account_id: "acct_123".into(), ..Default::default() });
        assert!(v.finish().is_ok(), "an existing account needs nothing else");
    }
}
