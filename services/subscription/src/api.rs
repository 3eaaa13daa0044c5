//! The subscription service's gRPC surface: accounts, bill groups,
//! contracts, invoices, events and the clock. Served here: create/get of
//! accounts, contacts (with the account), bill groups, subscriptions
//! (priced by the pricing service, first invoice charged through the payment
//! gateway), invoices and the event list. The rest of the lifecycle (changes,
//! cancellation, usage, renewals) is not finished yet and answers
//! UNIMPLEMENTED.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use recur_auth::CallContext;
use recur_client::{PaymentClient, PricingClient, request, with_idempotency_key};
use recur_clock::SharedClock;
use recur_error::{AppError, AppResult, Violations};
use recur_money::Currency;
use recur_proto::common::v1 as common;
use recur_proto::convert::{from_timestamp, money_of, opt_timestamp, timestamp};
use recur_proto::payment::v1 as paypb;
use recur_proto::pricing::v1 as pricepb;
use recur_proto::subscription::v1 as pb;
use recur_server::{caller, checked_idempotency_key, fingerprint};
use recur_storage::page::{Cursor, page_size};
use rust_decimal::Decimal;
use serde_json::json;
use tonic::{Code, Request, Response, Status};

use crate::domain::*;
use crate::repo::{Idem, SubscriptionRepo};

#[derive(Clone)]
pub struct SubscriptionApi {
    inner: Arc<Inner>,
}

struct Inner {
    repo: Arc<dyn SubscriptionRepo>,
    pricing: PricingClient,
    payments: PaymentClient,
    clock: SharedClock,
    call_timeout: Duration,
}

impl SubscriptionApi {
    pub fn new(
        repo: Arc<dyn SubscriptionRepo>,
        pricing: PricingClient,
        payments: PaymentClient,
        clock: SharedClock,
        call_timeout: Duration,
    ) -> Self {
        SubscriptionApi { inner: Arc::new(Inner { repo, pricing, payments, clock, call_timeout }) }
    }
}

// ---------- encoding ----------

fn address_pb(a: &Address) -> common::Address {
    common::Address {
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        state: a.state.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.clone(),
    }
}

fn address_in(a: Option<&common::Address>) -> Address {
    a.map(|a| Address {
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        state: a.state.clone(),
        postal_code: a.postal_code.clone(),
        country: a.country.clone(),
    })
    .unwrap_or_default()
}

fn contact_pb(c: &Contact) -> pb::Contact {
    pb::Contact {
        id: c.id.clone(),
        account_id: c.account_id.clone(),
        name: c.name.clone(),
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        title: c.title.clone(),
        email: c.email.clone(),
        phone: c.phone.clone(),
        address: Some(address_pb(&c.address)),
        primary: c.primary,
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
    }
}

fn account_pb(a: &Account, contacts: &[Contact]) -> pb::Account {
    pb::Account {
        id: a.id.clone(),
        custom_id: a.custom_id.clone().unwrap_or_default(),
        account_name: a.account_name.clone(),
        currency_code: a.currency.clone(),
        time_zone: a.time_zone.clone(),
        billing_address: Some(address_pb(&a.billing_address)),
        tags: a.tags.clone(),
        notes: a.notes.clone(),
        contacts: contacts.iter().map(contact_pb).collect(),
        metadata: a.metadata.clone(),
        tax_exempt: a.tax_exempt,
        create_time: Some(timestamp(a.created_at)),
        update_time: Some(timestamp(a.updated_at)),
    }
}

fn collection_pb(c: CollectionMethod) -> i32 {
    (match c {
        CollectionMethod::Automatic => pb::CollectionMethod::Automatic,
        CollectionMethod::Remittance => pb::CollectionMethod::Remittance,
        CollectionMethod::Prepaid => pb::CollectionMethod::Prepaid,
    }) as i32
}

fn bill_group_pb(b: &BillGroup) -> pb::BillGroup {
    pb::BillGroup {
        id: b.id.clone(),
        account_id: b.account_id.clone(),
        name: b.name.clone(),
        auto_email_invoice: Some(b.auto_email_invoice),
        collect_invoice_balance_automatically: Some(b.collect_automatically),
        payment_method_id: b.payment_method_id.clone(),
        gateway_customer_id: b.gateway_customer_id.clone(),
        billing_day: b.billing_day as i32,
        collection_method: collection_pb(b.collection_method),
        currency_code: b.currency.clone(),
        contact_id: b.contact_id.clone(),
        create_time: Some(timestamp(b.created_at)),
        update_time: Some(timestamp(b.updated_at)),
    }
}

fn state_pb(s: SubscriptionState) -> i32 {
    (match s {
        SubscriptionState::Pending => pb::SubscriptionState::Pending,
        SubscriptionState::Trialing => pb::SubscriptionState::Trialing,
        SubscriptionState::Active => pb::SubscriptionState::Active,
        SubscriptionState::PastDue => pb::SubscriptionState::PastDue,
        SubscriptionState::Paused => pb::SubscriptionState::Paused,
        SubscriptionState::Canceled => pb::SubscriptionState::Canceled,
        SubscriptionState::Expired => pb::SubscriptionState::Expired,
    }) as i32
}

fn subscription_pb(s: &Subscription) -> pb::Subscription {
    pb::Subscription {
        id: s.id.clone(),
        custom_id: s.custom_id.clone().unwrap_or_default(),
        account_id: s.account_id.clone(),
        bill_group_id: s.bill_group_id.clone(),
        offering_id: s.offering_id.clone(),
        rate_id: s.rate_id.clone(),
        state: state_pb(s.state),
        items: s
            .items
            .iter()
            .map(|i| pb::SubscriptionItem {
                product_id: i.product_id.clone(),
                quantity: i.quantity.normalize().to_string(),
                custom_price: None,
            })
            .collect(),
        coupon_codes: s.coupon_codes.clone(),
        currency_code: s.currency.code().to_string(),
        recurring_amount: Some(money_of(s.recurring_amount, s.currency)),
        start_date: s.start_date.format("%Y-%m-%d").to_string(),
        metadata: s.metadata.clone(),
        cancel_at_period_end: s.cancel_at_period_end,
        current_period_start: Some(timestamp(s.current_period_start)),
        current_period_end: Some(timestamp(s.current_period_end)),
        trial_start: opt_timestamp(s.trial_start),
        trial_end: opt_timestamp(s.trial_end),
        next_billing_time: opt_timestamp(s.next_billing_at),
        activate_time: opt_timestamp(s.activated_at),
        cancel_time: opt_timestamp(s.canceled_at),
        expire_time: opt_timestamp(s.expires_at),
        create_time: Some(timestamp(s.created_at)),
        update_time: Some(timestamp(s.updated_at)),
        quote_id: s.quote_id.clone(),
    }
}

fn invoice_status_pb(s: InvoiceStatus) -> i32 {
    (match s {
        InvoiceStatus::Draft => pb::InvoiceStatus::Draft,
        InvoiceStatus::Open => pb::InvoiceStatus::Open,
        InvoiceStatus::Paid => pb::InvoiceStatus::Paid,
        InvoiceStatus::Void => pb::InvoiceStatus::Void,
        InvoiceStatus::Uncollectible => pb::InvoiceStatus::Uncollectible,
    }) as i32
}

fn line_kind_pb(k: LineKind) -> i32 {
    (match k {
        LineKind::Subscription => pb::InvoiceLineKind::Subscription,
        LineKind::Usage => pb::InvoiceLineKind::Usage,
        LineKind::Proration => pb::InvoiceLineKind::Proration,
        LineKind::SetupFee => pb::InvoiceLineKind::SetupFee,
        LineKind::OneOff => pb::InvoiceLineKind::OneOff,
    }) as i32
}

fn invoice_pb(i: &Invoice) -> pb::Invoice {
    let c = i.currency;
    pb::Invoice {
        id: i.id.clone(),
        number: i.number.clone(),
        account_id: i.account_id.clone(),
        bill_group_id: i.bill_group_id.clone(),
        subscription_id: i.subscription_id.clone(),
        status: invoice_status_pb(i.status),
        currency_code: c.code().to_string(),
        lines: i
            .lines
            .iter()
            .map(|l| pb::InvoiceLine {
                id: l.id.clone(),
                kind: line_kind_pb(l.kind),
                description: l.description.clone(),
                subscription_id: l.subscription_id.clone(),
                offering_id: l.offering_id.clone(),
                rate_id: l.rate_id.clone(),
                product_id: l.product_id.clone(),
                period_start: opt_timestamp(l.period_start),
                period_end: opt_timestamp(l.period_end),
                quantity: l.quantity.normalize().to_string(),
                unit_amount: l.unit_amount.clone(),
                proration_fraction: l.proration_fraction.clone(),
                tiers: l
                    .tiers
                    .iter()
                    .map(|t| pricepb::TierApplied {
                        tier_index: t.index,
                        quantity: t.quantity.clone(),
                        unit_amount: t.unit_amount.clone(),
                        flat_amount: t.flat_amount.clone(),
                        amount: Some(common::Money { currency_code: c.code().into(), amount: t.amount.clone() }),
                    })
                    .collect(),
                amount_without_tax: Some(money_of(l.amount_without_tax, c)),
                discount: Some(money_of(l.discount, c)),
                tax: Some(money_of(l.tax, c)),
                tax_rate: l.tax_rate.clone(),
                amount: Some(money_of(l.amount, c)),
            })
            .collect(),
        amount_without_tax: Some(money_of(i.amount_without_tax, c)),
        discount: Some(money_of(i.discount, c)),
        tax: Some(money_of(i.tax, c)),
        amount: Some(money_of(i.amount, c)),
        amount_paid: Some(money_of(i.amount_paid, c)),
        amount_due: Some(money_of(i.amount_due(), c)),
        period_start: opt_timestamp(i.period_start),
        period_end: opt_timestamp(i.period_end),
        issue_time: opt_timestamp(i.issued_at),
        due_time: opt_timestamp(i.due_at),
        paid_time: opt_timestamp(i.paid_at),
        payment_ids: i.payment_ids.clone(),
        create_time: Some(timestamp(i.created_at)),
        update_time: Some(timestamp(i.updated_at)),
    }
}

// ---------- helpers ----------

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.len() <= 254
        && !s.chars().any(char::is_whitespace)
}

fn country_ok(c: &str) -> bool {
    c.is_empty() || (c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()))
}

/// The stored result for a repeated key, or a refusal when the key was used
/// for a different request.
fn check_replay<T>(stored: Stored<T>, hash: &str) -> AppResult<(T, bool)> {
    if !stored.created && stored.request_hash != hash {
        return Err(AppError::failed_precondition(
            "IDEMPOTENCY_KEY_REUSED",
            "this idempotency key was used for a different request",
        ));
    }
    Ok((stored.value, stored.created))
}

fn dec(raw: &str) -> Decimal {
    Decimal::from_str(raw).unwrap_or_default()
}

fn money_amount(m: &Option<common::Money>) -> Decimal {
    m.as_ref().map(|m| dec(&m.amount)).unwrap_or_default()
}

/// Pricing answers about its own request (`offerings[0].rate_id`); the
/// caller asked about `rate`.
fn pricing_field(field: &str) -> String {
    match field.strip_prefix("offerings[0].") {
        Some("offering_id") => "offering".into(),
        Some("rate_id") => "rate".into(),
        Some(rest) => rest.to_string(),
        None if field == "offerings[0]" || field == "offerings" => "offering".into(),
        None => field.to_string(),
    }
}

impl Inner {
    fn req<T>(&self, ctx: &CallContext, msg: T) -> tonic::Request<T> {
        request(ctx, msg, self.call_timeout)
    }

    async fn account(&self, tenant: &str, id: &str, field: &str) -> AppResult<(Account, Vec<Contact>)> {
        self.repo
            .get_account(tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found("account", id).with_field(field, "no such account"))
    }

    // ---------- accounts ----------

    async fn create_account(
        &self,
        ctx: &CallContext,
        r: &pb::CreateAccountRequest,
        key: Option<String>,
    ) -> AppResult<(Account, Vec<Contact>)> {
        let a = r.account.clone().unwrap_or_default();
        let mut v = Violations::new();
        // Lengths are bounded by the request codec (`recur_proto::limits`).
        v.check(!a.account_name.trim().is_empty(), "account.account_name", "is required");
        v.check(
            a.currency_code.is_empty() || Currency::from_code(&a.currency_code).is_some(),
            "account.currency_code",
            "unknown currency",
        );
        v.check(
            a.time_zone.is_empty() || chrono_tz::Tz::from_str(&a.time_zone).is_ok(),
            "account.time_zone",
            "unknown IANA time zone",
        );
        let address = address_in(a.billing_address.as_ref());
        v.check(
            country_ok(&address.country),
            "account.billing_address.country",
            "must be an ISO 3166-1 alpha-2 code such as \"US\"",
        );
        for (i, c) in a.contacts.iter().enumerate() {
            if c.email.is_empty() {
                v.add(format!("account.contacts[{i}].email"), "is required");
            } else if !is_email(&c.email) {
                v.add(format!("account.contacts[{i}].email"), "is not an e-mail address");
            }
        }
        v.finish()?;
        let now = self.clock.now_micros();
        let account = Account {
            id: recur_id::new_id(recur_id::Kind::Account),
            custom_id: (!a.custom_id.is_empty()).then(|| a.custom_id.clone()),
            account_name: a.account_name.trim().to_string(),
            currency: a.currency_code.clone(),
            time_zone: a.time_zone.clone(),
            billing_address: address,
            tags: a.tags.clone(),
            notes: a.notes.clone(),
            metadata: a.metadata.clone(),
            tax_exempt: a.tax_exempt,
            created_at: now,
            updated_at: now,
        };
        let contacts: Vec<Contact> = a
            .contacts
            .iter()
            .enumerate()
            .map(|(i, c)| Contact {
                id: recur_id::new_id(recur_id::Kind::Contact),
                account_id: account.id.clone(),
                name: if c.name.is_empty() {
                    format!("{} {}", c.first_name, c.last_name).trim().to_string()
                } else {
                    c.name.clone()
                },
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                title: c.title.clone(),
                email: c.email.clone(),
                phone: c.phone.clone(),
                address: address_in(c.address.as_ref()),
                primary: i == 0,
                created_at: now,
                updated_at: now,
            })
            .collect();
        let hash = fingerprint(r);
        let event = Event::new(
            "account.created",
            &account.id,
            json!({"account_id": account.id, "account_name": account.account_name}),
            now,
        );
        let idem = Idem { key: key.as_deref(), hash: &hash };
        let stored = match self.repo.insert_account(&ctx.tenant_id, &account, &contacts, idem, &event).await {
            // A concurrent request with the same key won the race: read theirs.
            Err(e) if e.is_unique() && key.is_some() => {
                self.repo.insert_account(&ctx.tenant_id, &account, &contacts, idem, &event).await
            }
            other => other,
        }
        .map_err(|e| {
            if e.is_unique() {
                AppError::already_exists("CUSTOM_ID_TAKEN", "another account has this custom_id")
                    .with_field("account.custom_id", "already in use")
            } else {
                e.into()
            }
        })?;
        Ok(check_replay(stored, &hash)?.0)
    }

    // ---------- bill groups ----------

    async fn create_bill_group(
        &self,
        ctx: &CallContext,
        r: &pb::CreateBillGroupRequest,
        key: Option<String>,
    ) -> AppResult<BillGroup> {
        let b = r.bill_group.clone().unwrap_or_default();
        let mut v = Violations::new();
        v.check(!b.account_id.is_empty(), "bill_group.account_id", "is required");
        v.check((0..=31).contains(&b.billing_day), "bill_group.billing_day", "must be between 0 and 31");
        v.check(
            b.currency_code.is_empty() || Currency::from_code(&b.currency_code).is_some(),
            "bill_group.currency_code",
            "unknown currency",
        );
        let collection_method = match pb::CollectionMethod::try_from(b.collection_method) {
            Ok(pb::CollectionMethod::Remittance) => CollectionMethod::Remittance,
            Ok(pb::CollectionMethod::Prepaid) => CollectionMethod::Prepaid,
            Ok(_) => CollectionMethod::Automatic,
            Err(_) => {
                v.add("bill_group.collection_method", "unknown collection method");
                CollectionMethod::Automatic
            }
        };
        v.finish()?;
        let (account, contacts) = self
            .account(&ctx.tenant_id, &b.account_id, "bill_group.account_id")
            .await
            .map_err(AppError::into_invalid_reference)?;
        if !b.contact_id.is_empty() && !contacts.iter().any(|c| c.id == b.contact_id) {
            return Err(AppError::invalid("bill_group.contact_id", "not a contact of the account"));
        }
        let now = self.clock.now_micros();
        let bg = BillGroup {
            id: recur_id::new_id(recur_id::Kind::BillGroup),
            account_id: account.id.clone(),
            name: if b.name.is_empty() { account.account_name.clone() } else { b.name.clone() },
            // Callers apply the tenant's defaults (sign-up does); an unset
            // flag here means the usual: e-mail invoices, collect them.
            auto_email_invoice: b.auto_email_invoice.unwrap_or(true),
            collect_automatically: b.collect_invoice_balance_automatically.unwrap_or(true),
            payment_method_id: b.payment_method_id.clone(),
            gateway_customer_id: b.gateway_customer_id.clone(),
            billing_day: b.billing_day as u32,
            collection_method,
            currency: b.currency_code.clone(),
            contact_id: if b.contact_id.is_empty() {
                contacts.first().map(|c| c.id.clone()).unwrap_or_default()
            } else {
                b.contact_id.clone()
            },
            created_at: now,
            updated_at: now,
        };
        let hash = fingerprint(r);
        let event =
            Event::new("bill_group.created", &bg.id, json!({"bill_group_id": bg.id, "account_id": bg.account_id}), now);
        let idem = Idem { key: key.as_deref(), hash: &hash };
        let stored = match self.repo.insert_bill_group(&ctx.tenant_id, &bg, idem, &event).await {
            Err(e) if e.is_unique() && key.is_some() => {
                self.repo.insert_bill_group(&ctx.tenant_id, &bg, idem, &event).await
            }
            other => other,
        }?;
        Ok(check_replay(stored, &hash)?.0)
    }

    // ---------- subscriptions ----------

    async fn create_subscription(
        &self,
        ctx: &CallContext,
        r: &pb::CreateSubscriptionRequest,
        key: Option<String>,
    ) -> AppResult<(Subscription, Option<Invoice>, String)> {
        let tenant = ctx.tenant_id.as_str();
        let mut v = Violations::new();
        v.check(!r.account_id.is_empty(), "account_id", "is required");
        v.check(!r.bill_group_id.is_empty(), "bill_group_id", "is required");
        v.check(!r.offering.is_empty(), "offering", "is required");
        v.check(!r.rate.is_empty(), "rate", "is required");
        v.check(
            r.start_date.is_empty() || NaiveDate::parse_from_str(&r.start_date, "%Y-%m-%d").is_ok(),
            "start_date",
            "must be a date as YYYY-MM-DD",
        );
        for (i, item) in r.items.iter().enumerate() {
            v.check(!item.product_id.is_empty(), format!("items[{i}].product_id"), "is required");
            if item.custom_price.is_some() {
                v.add(format!("items[{i}].custom_price"), "custom prices are not supported yet");
            }
        }
        v.finish()?;
        let (account, _) =
            self.account(tenant, &r.account_id, "account_id").await.map_err(AppError::into_invalid_reference)?;
        let bill_group = self
            .repo
            .get_bill_group(tenant, &r.bill_group_id)
            .await?
            .filter(|b| b.account_id == account.id)
            .ok_or_else(|| {
                AppError::not_found("bill group", &r.bill_group_id)
                    .into_invalid_reference()
                    .with_field("bill_group_id", "no such bill group on this account")
            })?;

        let hash = fingerprint(r);
        let now = self.clock.now_micros();

        // Price it (tax included when the account's country is known).
        let quote_req = pricepb::QuoteRequest {
            offerings: vec![pricepb::CartOffering {
                offering_id: r.offering.clone(),
                rate_id: r.rate.clone(),
                items: r
                    .items
                    .iter()
                    .map(|i| pricepb::CartItem { product_id: i.product_id.clone(), quantity: i.quantity.clone() })
                    .collect(),
            }],
            coupon_codes: r.coupon_codes.clone(),
            coupon_usages: Vec::new(),
            tax_address: Some(address_pb(&account.billing_address)),
            tax_exempt: account.tax_exempt,
            start_date: r.start_date.clone(),
            compute_tax: !account.billing_address.country.is_empty(),
            time_zone: account.time_zone.clone(),
        };
        let quote = self
            .pricing
            .clone()
            .quote(self.req(ctx, quote_req))
            .await
            .map_err(|s| AppError::from_peer("pricing", &s).map_fields(pricing_field).into_invalid_reference())?
            .into_inner()
            .quote
            .ok_or_else(|| AppError::internal("pricing returned no quote"))?;
        let offering = quote.offerings.first().ok_or_else(|| AppError::internal("quote without offering"))?;
        let currency = Currency::from_code(&quote.currency_code).ok_or_else(|| AppError::internal("quote currency"))?;
        let ts = |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(from_timestamp);
        let period_start = ts(&offering.period_start).ok_or_else(|| AppError::internal("quote without period"))?;
        let period_end = ts(&offering.period_end).ok_or_else(|| AppError::internal("quote without period"))?;
        let trial_end = ts(&offering.trial_end);
        let start = ts(&quote.start_time).unwrap_or(period_start);
        let start_date = NaiveDate::parse_from_str(&quote.start_date, "%Y-%m-%d").map_err(AppError::internal)?;
        let future = start > now;
        let state = if r.pending || future {
            SubscriptionState::Pending
        } else if trial_end.is_some() {
            SubscriptionState::Trialing
        } else {
            SubscriptionState::Active
        };
        let sub = Subscription {
            id: recur_id::new_id(recur_id::Kind::Subscription),
            custom_id: (!r.custom_id.is_empty()).then(|| r.custom_id.clone()),
            account_id: account.id.clone(),
            bill_group_id: bill_group.id.clone(),
            offering_id: offering.offering_id.clone(),
            rate_id: offering.rate_id.clone(),
            state,
            items: offering
                .items
                .iter()
                .filter(|i| i.kind == pricepb::QuoteItemKind::Product as i32)
                .map(|i| Item { product_id: i.product_id.clone(), quantity: dec(&i.quantity) })
                .collect(),
            coupon_codes: r.coupon_codes.clone(),
            currency,
            recurring_amount: money_amount(&offering.recurring_amount),
            start_date,
            metadata: r.metadata.clone(),
            cancel_at_period_end: false,
            current_period_start: period_start,
            current_period_end: period_end,
            trial_start: trial_end.map(|_| start),
            trial_end,
            next_billing_at: ts(&offering.next_billing_time),
            activated_at: (state != SubscriptionState::Pending).then_some(now),
            canceled_at: None,
            expires_at: None,
            quote_id: r.quote_id.clone(),
            created_at: now,
            updated_at: now,
        };

        // The first invoice: what is due now, one line per charged item.
        let invoice = (state != SubscriptionState::Pending && !money_amount(&quote.amount).is_zero()).then(|| {
            let lines: Vec<InvoiceLine> = offering
                .items
                .iter()
                .filter(|i| !money_amount(&i.amount).is_zero() || !money_amount(&i.amount_without_tax).is_zero())
                .map(|i| {
                    let b = i.breakdown.clone().unwrap_or_default();
                    let kind = if i.kind == pricepb::QuoteItemKind::SetupFee as i32 {
                        LineKind::SetupFee
                    } else if money_amount(&i.recurring_amount).is_zero() {
                        LineKind::OneOff
                    } else {
                        LineKind::Subscription
                    };
                    InvoiceLine {
                        id: recur_id::new_id(recur_id::Kind::InvoiceLine),
                        kind,
                        description: i.description.clone(),
                        subscription_id: sub.id.clone(),
                        offering_id: offering.offering_id.clone(),
                        rate_id: offering.rate_id.clone(),
                        product_id: i.product_id.clone(),
                        period_start: (kind == LineKind::Subscription).then_some(period_start),
                        period_end: (kind == LineKind::Subscription).then_some(period_end),
                        quantity: dec(&i.quantity),
                        unit_amount: b.unit_amount.clone(),
                        proration_fraction: "1".into(),
                        tiers: b
                            .tiers
                            .iter()
                            .map(|t| TierLine {
                                index: t.tier_index,
                                quantity: t.quantity.clone(),
                                unit_amount: t.unit_amount.clone(),
                                flat_amount: t.flat_amount.clone(),
                                amount: t.amount.as_ref().map(|m| m.amount.clone()).unwrap_or_default(),
                            })
                            .collect(),
                        amount_without_tax: money_amount(&i.amount_without_tax),
                        discount: money_amount(&i.discount),
                        tax: money_amount(&i.tax),
                        tax_rate: b.tax_rate.clone(),
                        amount: money_amount(&i.amount),
                    }
                })
                .collect();
            let mut inv = Invoice {
                id: recur_id::new_id(recur_id::Kind::Invoice),
                number: String::new(),
                account_id: account.id.clone(),
                bill_group_id: bill_group.id.clone(),
                subscription_id: sub.id.clone(),
                status: InvoiceStatus::Open,
                currency,
                lines,
                amount_without_tax: Decimal::ZERO,
                discount: Decimal::ZERO,
                tax: Decimal::ZERO,
                amount: Decimal::ZERO,
                amount_paid: Decimal::ZERO,
                period_start: Some(period_start),
                period_end: Some(period_end),
                issued_at: Some(now),
                due_at: Some(if bill_group.can_charge_automatically() {
                    now
                } else {
                    now + chrono::Duration::days(30)
                }),
                paid_at: None,
                payment_ids: Vec::new(),
                created_at: now,
                updated_at: now,
            };
            inv.total_lines();
            inv
        });
        if let Some(inv) = &invoice {
            // The invoice is the sum of its lines; so is the quote. They agree.
            if inv.amount != money_amount(&quote.amount) {
                return Err(AppError::internal(format!(
                    "invoice total {} differs from quote {}",
                    inv.amount,
                    money_amount(&quote.amount)
                )));
            }
        }
        let mut events = vec![Event::new(
            "subscription.created",
            &sub.id,
            json!({"subscription_id": sub.id, "account_id": sub.account_id, "state": sub.state.as_str()}),
            now,
        )];
        if let Some(inv) = &invoice {
            events.push(Event::new(
                "invoice.created",
                &inv.id,
                json!({"invoice_id": inv.id, "amount": inv.amount.to_string()}),
                now,
            ));
        }
        let idem = Idem { key: key.as_deref(), hash: &hash };
        let stored = match self.repo.insert_subscription(tenant, &sub, invoice.as_ref(), idem, &events).await {
            Err(e) if e.is_unique() && key.is_some() => {
                self.repo.insert_subscription(tenant, &sub, invoice.as_ref(), idem, &events).await
            }
            other => other,
        }
        .map_err(|e| {
            if e.is_unique() {
                AppError::already_exists("CUSTOM_ID_TAKEN", "another subscription has this custom_id")
                    .with_field("custom_id", "already in use")
            } else {
                e.into()
            }
        })?;
        let (sub, _) = check_replay(stored, &hash)?;

        // Collect the first invoice (again, on a retry: the payment gateway
        // answers a repeated key with the same payment, never a new charge).
        let first = self.repo.invoices_of_subscription(tenant, &sub.id).await?.into_iter().next();
        let mut payment_id = String::new();
        let mut sub = sub;
        let first = match first {
            Some(inv)
                if inv.status == InvoiceStatus::Open
                    && bill_group.can_charge_automatically()
                    && inv.amount_due() > Decimal::ZERO =>
            {
                let (inv, pid, failed) = self.collect(ctx, &bill_group, inv).await?;
                payment_id = pid;
                if failed && sub.state != SubscriptionState::PastDue {
                    let at = self.clock.now_micros();
                    let event = Event::new(
                        "subscription.past_due",
                        &sub.id,
                        json!({"subscription_id": sub.id, "invoice_id": inv.id}),
                        at,
                    );
                    self.repo.set_subscription_state(tenant, &sub.id, SubscriptionState::PastDue, at, &event).await?;
                    sub.state = SubscriptionState::PastDue;
                    sub.updated_at = at;
                }
                Some(inv)
            }
            Some(inv) => {
                payment_id = inv.payment_ids.last().cloned().unwrap_or_default();
                Some(inv)
            }
            None => None,
        };
        Ok((sub, first, payment_id))
    }

    /// Charges what is due on `inv` through the payment gateway, with the
    /// invoice id as idempotency key. Returns the invoice as it now stands,
    /// the payment id, and whether the payment failed.
    async fn collect(&self, ctx: &CallContext, bg: &BillGroup, mut inv: Invoice) -> AppResult<(Invoice, String, bool)> {
        let key = format!("invoice:{}", inv.id);
        let charge = paypb::ChargeRequest {
            customer_id: bg.gateway_customer_id.clone(),
            payment_method_id: bg.payment_method_id.clone(),
            amount: Some(money_of(inv.amount_due(), inv.currency)),
            invoice_id: inv.id.clone(),
            description: format!("Invoice {}", inv.number),
            idempotency_key: key.clone(),
            return_url: String::new(),
            metadata: Default::default(),
        };
        let payment = self
            .payments
            .clone()
            .charge(with_idempotency_key(self.req(ctx, charge), &key))
            .await
            .map_err(|s| {
                // The gateway customer and method are the bill group's.
                AppError::from_peer("payment-gateway", &s).map_fields(|f| match f {
                    "customer_id" | "payment_method_id" => "bill_group_id".into(),
                    other => other.to_string(),
                })
            })?
            .into_inner()
            .payment
            .ok_or_else(|| AppError::internal("payment gateway returned no payment"))?;
        let now = self.clock.now_micros();
        if !inv.payment_ids.contains(&payment.id) {
            inv.payment_ids.push(payment.id.clone());
        }
        inv.updated_at = now;
        let status = paypb::PaymentStatus::try_from(payment.status).unwrap_or(paypb::PaymentStatus::Unspecified);
        let mut events = Vec::new();
        match status {
            paypb::PaymentStatus::Succeeded => {
                inv.amount_paid += money_amount(&payment.amount);
                if inv.amount_due().is_zero() {
                    inv.status = InvoiceStatus::Paid;
                    inv.paid_at = Some(now);
                    events.push(Event::new(
                        "invoice.paid",
                        &inv.id,
                        json!({"invoice_id": inv.id, "payment_id": payment.id}),
                        now,
                    ));
                }
            }
            paypb::PaymentStatus::Failed => {
                events.push(Event::new(
                    "invoice.payment_failed",
                    &inv.id,
                    json!({"invoice_id": inv.id, "payment_id": payment.id, "decline_code": payment.decline_code}),
                    now,
                ));
            }
            _ => {}
        }
        self.repo.record_payment(&ctx.tenant_id, &inv, &events).await?;
        Ok((inv, payment.id, status == paypb::PaymentStatus::Failed))
    }
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::account_service_server::AccountService for SubscriptionApi {
    async fn create_account(&self, req: Request<pb::CreateAccountRequest>) -> Res<pb::CreateAccountResponse> {
        let ctx = caller(&req)?;
        let key = checked_idempotency_key(&req)?;
        let (a, contacts) = self.inner.create_account(&ctx, req.get_ref(), key).await?;
        Ok(Response::new(pb::CreateAccountResponse { account: Some(account_pb(&a, &contacts)) }))
    }

    async fn get_account(&self, req: Request<pb::GetAccountRequest>) -> Res<pb::GetAccountResponse> {
        let ctx = caller(&req)?;
        let (a, contacts) = self.inner.account(&ctx.tenant_id, &req.get_ref().id, "id").await?;
        Ok(Response::new(pb::GetAccountResponse { account: Some(account_pb(&a, &contacts)) }))
    }

    async fn list_accounts(&self, req: Request<pb::ListAccountsRequest>) -> Res<pb::ListAccountsResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.check(r.page_size >= 0, "page_size", "must not be negative");
        v.check(r.tag.is_empty(), "tag", "filtering by tag is not supported yet");
        let after =
            Cursor::decode_time(&r.page_token).map(|c| c.map(|(t, id)| Cursor::time(t, id))).unwrap_or_else(|_| {
                v.add("page_token", "is not a token this API issued");
                None
            });
        v.finish()?;
        let limit = page_size(r.page_size);
        let mut rows =
            self.inner.repo.list_accounts(&ctx.tenant_id, after.as_ref(), limit + 1).await.map_err(AppError::from)?;
        let next_page_token = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|(a, _)| Cursor::time(a.created_at, a.id.clone()).encode()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: rows.iter().map(|(a, c)| account_pb(a, c)).collect(),
            next_page_token,
        }))
    }

    async fn find_account(&self, req: Request<pb::FindAccountRequest>) -> Res<pb::FindAccountResponse> {
        use pb::find_account_request::Key;
        let ctx = caller(&req)?;
        let (custom_id, email) = match &req.get_ref().key {
            Some(Key::CustomId(c)) if !c.is_empty() => (Some(c.as_str()), None),
            Some(Key::Email(e)) if !e.is_empty() => (None, Some(e.as_str())),
            _ => return Err(AppError::invalid("key", "give a custom_id or an email").into()),
        };
        let id = self
            .inner
            .repo
            .find_account(&ctx.tenant_id, custom_id, email)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found("account", custom_id.or(email).unwrap_or_default()))?;
        let (a, contacts) = self.inner.account(&ctx.tenant_id, &id, "key").await?;
        Ok(Response::new(pb::FindAccountResponse { account: Some(account_pb(&a, &contacts)) }))
    }

    async fn create_bill_group(&self, req: Request<pb::CreateBillGroupRequest>) -> Res<pb::CreateBillGroupResponse> {
        let ctx = caller(&req)?;
        let key = checked_idempotency_key(&req)?;
        let bg = self.inner.create_bill_group(&ctx, req.get_ref(), key).await?;
        Ok(Response::new(pb::CreateBillGroupResponse { bill_group: Some(bill_group_pb(&bg)) }))
    }

    async fn get_bill_group(&self, req: Request<pb::GetBillGroupRequest>) -> Res<pb::GetBillGroupResponse> {
        let ctx = caller(&req)?;
        let id = &req.get_ref().id;
        let bg = self
            .inner
            .repo
            .get_bill_group(&ctx.tenant_id, id)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found("bill group", id))?;
        Ok(Response::new(pb::GetBillGroupResponse { bill_group: Some(bill_group_pb(&bg)) }))
    }
}

#[tonic::async_trait]
impl pb::subscription_service_server::SubscriptionService for SubscriptionApi {
    async fn create_subscription(
        &self,
        req: Request<pb::CreateSubscriptionRequest>,
    ) -> Res<pb::CreateSubscriptionResponse> {
        let ctx = caller(&req)?;
        let key = checked_idempotency_key(&req)?;
        let (sub, invoice, payment_id) = self.inner.create_subscription(&ctx, req.get_ref(), key).await?;
        Ok(Response::new(pb::CreateSubscriptionResponse {
            subscription: Some(subscription_pb(&sub)),
            invoice: invoice.as_ref().map(invoice_pb),
            payment_id,
        }))
    }

    async fn get_subscription(&self, req: Request<pb::GetSubscriptionRequest>) -> Res<pb::GetSubscriptionResponse> {
        let ctx = caller(&req)?;
        let id = &req.get_ref().id;
        let sub = self
            .inner
            .repo
            .get_subscription(&ctx.tenant_id, id)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found("subscription", id))?;
        Ok(Response::new(pb::GetSubscriptionResponse { subscription: Some(subscription_pb(&sub)) }))
    }
}

#[tonic::async_trait]
impl pb::invoice_service_server::InvoiceService for SubscriptionApi {
    async fn get_invoice(&self, req: Request<pb::GetInvoiceRequest>) -> Res<pb::GetInvoiceResponse> {
        let ctx = caller(&req)?;
        let id = &req.get_ref().id;
        let inv = self
            .inner
            .repo
            .get_invoice(&ctx.tenant_id, id)
            .await
            .map_err(AppError::from)?
            .ok_or_else(|| AppError::not_found("invoice", id))?;
        Ok(Response::new(pb::GetInvoiceResponse { invoice: Some(invoice_pb(&inv)) }))
    }
}

#[tonic::async_trait]
impl pb::event_service_server::EventService for SubscriptionApi {
    async fn list_events(&self, req: Request<pb::ListEventsRequest>) -> Res<pb::ListEventsResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.check(r.page_size >= 0, "page_size", "must not be negative");
        v.check(r.r#type.is_empty() && r.resource_id.is_empty(), "type", "filtering events is not supported yet");
        let after: i64 = if r.page_token.is_empty() {
            0
        } else {
            r.page_token.parse().unwrap_or_else(|_| {
                v.add("page_token", "is not a token this API issued");
                0
            })
        };
        v.finish()?;
        let limit = page_size(r.page_size);
        let mut events = self.inner.repo.list_events(&ctx.tenant_id, after, limit + 1).await.map_err(AppError::from)?;
        let next_page_token = if events.len() as i64 > limit {
            events.truncate(limit as usize);
            events.last().map(|e| e.seq.to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListEventsResponse {
            events: events
                .iter()
                .map(|e| pb::Event {
                    id: e.id.clone(),
                    r#type: e.event_type.clone(),
                    resource_id: e.resource_id.clone(),
                    data_json: e.data_json.clone(),
                    sequence: e.seq,
                    create_time: Some(timestamp(e.created_at)),
                })
                .collect(),
            next_page_token,
        }))
    }
}

#[tonic::async_trait]
impl pb::clock_service_server::ClockService for SubscriptionApi {
    async fn get_clock(&self, req: Request<pb::GetClockRequest>) -> Res<pb::GetClockResponse> {
        caller(&req)?;
        Ok(Response::new(pb::GetClockResponse {
            clock: Some(pb::Clock { now: Some(timestamp(self.inner.clock.now())), test_mode: false }),
        }))
    }

    async fn advance_clock(&self, req: Request<pb::AdvanceClockRequest>) -> Res<pb::AdvanceClockResponse> {
        caller(&req)?;
        Err(AppError::new(Code::FailedPrecondition, "NOT_TEST_MODE", "test clocks are not available yet").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pricing_fields_map_to_this_request() {
        assert_eq!(pricing_field("offerings[0].offering_id"), "offering");
        assert_eq!(pricing_field("offerings[0].rate_id"), "rate");
        assert_eq!(pricing_field("offerings[0].items[2].quantity"), "items[2].quantity");
        assert_eq!(pricing_field("start_date"), "start_date");
    }

    #[test]
    fn emails() {
        assert!(is_email("jdoe@example.com"));
        for bad in ["", "jdoe", "@x.com", "a@b", "a b@c.com", "a@.com"] {
            assert!(!is_email(bad), "{bad}");
        }
    }
}
