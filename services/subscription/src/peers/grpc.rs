//! The peers over gRPC: the pricing service and the payment gateway, with
//! the caller's token and deadline (`recur_client::request`).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use recur_auth::CallContext;
use recur_client::{CatalogClient, PaymentClient, PricingClient, request, with_idempotency_key};
use recur_error::{AppError, AppResult};
use recur_money::Currency;
use recur_proto::catalog::v1 as catpb;
use recur_proto::common::v1 as common;
use recur_proto::convert::{address_pb, from_timestamp, money};
use recur_proto::payment::v1 as paypb;
use recur_proto::pricing::v1 as pricepb;
use rust_decimal::Decimal;

use recur_period::{Period, Unit};

use super::{
    Catalog, ChangeLine, ChangePriced, ChangeQuestion, ChargeInput, PaymentOutcome, PaymentStatus, Payments, Policy,
    Pricing, QuoteInput, RateTerms, UsageQuestion,
};
use crate::domain::invoice::{PricedItem, PricedOffering, PricedQuote};
use crate::domain::lifecycle::ProrationMode;
use crate::domain::usage::{Aggregation, ArrearsItem, Meter, RatedUsage};
use crate::domain::{BillingAnchor, TierLine};
use std::sync::Arc;

pub struct GrpcPricing {
    pub client: PricingClient,
    pub timeout: Duration,
}

pub struct GrpcPayments {
    pub client: PaymentClient,
    pub timeout: Duration,
}

pub struct GrpcCatalog {
    pub client: CatalogClient,
    pub timeout: Duration,
    /// (tenant, rate id) → the rate's terms, and what it bills in arrears:
    /// a rate's period, notice and prices and its products' kinds and
    /// meters never change.
    terms: Memo<RateTerms>,
    arrears: Memo<Arc<Vec<ArrearsItem>>>,
}

impl GrpcCatalog {
    pub fn new(client: CatalogClient, timeout: Duration) -> GrpcCatalog {
        GrpcCatalog { client, timeout, terms: Memo::default(), arrears: Memo::default() }
    }

    /// Rate `id` (id or handle).
    async fn rate(&self, ctx: &CallContext, id: &str) -> AppResult<catpb::Rate> {
        let lookup = if id.starts_with("rate_") {
            catpb::get_rate_request::Lookup::Id(id.to_string())
        } else {
            catpb::get_rate_request::Lookup::Handle(id.to_string())
        };
        self.client
            .clone()
            .get_rate(request(ctx, catpb::GetRateRequest { lookup: Some(lookup) }, self.timeout))
            .await
            .map_err(|s| AppError::from_peer("catalog", &s))?
            .into_inner()
            .rate
            .ok_or_else(|| AppError::internal("catalog returned no rate"))
    }
}

/// Answers about rates that never change, kept per (tenant, rate id) and
/// bounded (emptied when full). Only ids are kept: a handle names the
/// newest version of a rate, which a new version changes.
struct Memo<V> {
    kept: std::sync::Mutex<std::collections::HashMap<(String, String), V>>,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo { kept: Default::default() }
    }
}

/// Most rates one process keeps answers about.
const RATES_KEPT: usize = 10_000;

impl<V: Clone> Memo<V> {
    fn get(&self, tenant: &str, rate_id: &str) -> Option<V> {
        let kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.get(&(tenant.to_string(), rate_id.to_string())).cloned()
    }

    fn keep(&self, tenant: &str, rate_id: &str, value: V) {
        if !rate_id.starts_with("rate_") {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() >= RATES_KEPT {
            kept.clear();
        }
        kept.insert((tenant.to_string(), rate_id.to_string()), value);
    }
}

fn dec(raw: &str) -> Decimal {
    Decimal::from_str(raw).unwrap_or_default()
}

fn amount(m: &Option<common::Money>) -> Decimal {
    m.as_ref().map(|m| dec(&m.amount)).unwrap_or_default()
}

/// The custom price of `product` among `prices`, on the wire.
fn custom(prices: &[(String, crate::domain::CustomPrice)], product: &str) -> Option<catpb::Price> {
    prices.iter().find(|(p, _)| p == product).map(|(p, c)| crate::api::wire::custom_price_pb(p, c))
}

fn ts(t: &Option<prost_types::Timestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.as_ref().and_then(from_timestamp)
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

fn tier_lines(tiers: &[pricepb::TierApplied]) -> Vec<TierLine> {
    tiers
        .iter()
        .map(|t| TierLine {
            index: t.tier_index,
            quantity: t.quantity.clone(),
            unit_amount: t.unit_amount.clone(),
            flat_amount: t.flat_amount.clone(),
            amount: t.amount.as_ref().map(|m| m.amount.clone()).unwrap_or_default(),
        })
        .collect()
}

fn priced_offering(o: &pricepb::QuoteOffering) -> PricedOffering {
    PricedOffering {
        offering_id: o.offering_id.clone(),
        rate_id: o.rate_id.clone(),
        items: o
            .items
            .iter()
            .map(|i| {
                let b = i.breakdown.clone().unwrap_or_default();
                PricedItem {
                    product_id: i.product_id.clone(),
                    description: i.description.clone(),
                    setup_fee: i.kind == pricepb::QuoteItemKind::SetupFee as i32,
                    quantity: dec(&i.quantity),
                    unit_amount: b.unit_amount.clone(),
                    tiers: tier_lines(&b.tiers),
                    tax_rate: b.tax_rate.clone(),
                    amount_without_tax: amount(&i.amount_without_tax),
                    discount: amount(&i.discount),
                    tax: amount(&i.tax),
                    amount: amount(&i.amount),
                    recurring_amount: amount(&i.recurring_amount),
                }
            })
            .collect(),
        amount: amount(&o.amount),
        recurring_amount: amount(&o.recurring_amount),
        period_start: ts(&o.period_start),
        period_end: ts(&o.period_end),
        trial_end: ts(&o.trial_end),
        next_billing_at: ts(&o.next_billing_time),
        billing_anchor: o
            .billing_anchor
            .as_ref()
            .map(|a| BillingAnchor { day: a.day.max(0) as u32, month: a.month.max(0) as u32 })
            .unwrap_or_default(),
        first_fraction: if o.first_period_fraction.is_empty() { "1".into() } else { o.first_period_fraction.clone() },
    }
}

#[async_trait]
impl Pricing for GrpcPricing {
    async fn quote(&self, ctx: &CallContext, q: &QuoteInput) -> AppResult<PricedQuote> {
        let req = pricepb::QuoteRequest {
            offerings: vec![pricepb::CartOffering {
                offering_id: q.offering.clone(),
                rate_id: q.rate.clone(),
                items: q
                    .items
                    .iter()
                    .map(|(p, qty)| pricepb::CartItem {
                        product_id: p.clone(),
                        quantity: qty.clone(),
                        custom_price: custom(&q.custom_prices, p),
                    })
                    .collect(),
            }],
            coupon_codes: q.coupon_codes.clone(),
            coupon_usages: q
                .coupon_usages
                .iter()
                .map(|(code, times_redeemed, periods_applied)| pricepb::CouponUsage {
                    code: code.clone(),
                    times_redeemed: *times_redeemed,
                    periods_applied: *periods_applied,
                })
                .collect(),
            tax_address: Some(address_pb(&q.tax_address)),
            tax_exempt: q.tax_exempt,
            start_date: q.start_date.clone(),
            compute_tax: q.compute_tax,
            time_zone: q.time_zone.clone(),
            continuation: q.continuation,
            billing_day: i32::try_from(q.billing_day).unwrap_or(0),
        };
        let quote = self
            .client
            .clone()
            .quote(request(ctx, req, self.timeout))
            .await
            .map_err(|s| AppError::from_peer("pricing", &s).map_fields(pricing_field).into_invalid_reference())?
            .into_inner()
            .quote
            .ok_or_else(|| AppError::internal("pricing returned no quote"))?;
        let currency = Currency::from_code(&quote.currency_code).ok_or_else(|| AppError::internal("quote currency"))?;
        Ok(PricedQuote {
            currency,
            start: ts(&quote.start_time),
            start_date: quote.start_date.clone(),
            amount: amount(&quote.amount),
            offerings: quote.offerings.iter().map(priced_offering).collect(),
            fixed_left: coupon_amounts(&quote.fixed_amounts_left),
        })
    }

    async fn preview_change(&self, ctx: &CallContext, q: &ChangeQuestion) -> AppResult<ChangePriced> {
        let req = pricepb::PreviewChangeRequest {
            current: Some(pricepb::ContractState {
                offering_id: q.offering_id.clone(),
                rate_id: q.rate_id.clone(),
                items: q
                    .items
                    .iter()
                    .map(|(p, qty)| pricepb::CartItem {
                        product_id: p.clone(),
                        quantity: qty.normalize().to_string(),
                        custom_price: custom(&q.custom_prices, p),
                    })
                    .collect(),
                period_start: Some(recur_proto::convert::timestamp(q.period_start)),
                period_end: Some(recur_proto::convert::timestamp(q.period_end)),
                billing_anchor: q
                    .anchor
                    .is_set()
                    .then_some(pricepb::BillingAnchor { day: q.anchor.day as i32, month: q.anchor.month as i32 }),
            }),
            change: Some(pricepb::ContractChange {
                rate_id: q.new_rate.clone(),
                items: q
                    .new_items
                    .iter()
                    .map(|(p, qty)| pricepb::CartItem {
                        product_id: p.clone(),
                        quantity: qty.clone(),
                        custom_price: custom(&q.new_custom_prices, p),
                    })
                    .collect(),
                timing: if q.at_period_end {
                    pricepb::ChangeTiming::EndOfTerm
                } else {
                    pricepb::ChangeTiming::Immediate
                } as i32,
            }),
            change_time: Some(recur_proto::convert::timestamp(q.at)),
            time_zone: q.time_zone.clone(),
            proration_mode: match q.mode {
                ProrationMode::Day => catpb::ProrationMode::Day,
                ProrationMode::Second => catpb::ProrationMode::Second,
            } as i32,
        };
        let r = self
            .client
            .clone()
            .preview_change(request(ctx, req, self.timeout))
            .await
            .map_err(|s| {
                AppError::from_peer("pricing", &s)
                    .map_fields(|f| match f.strip_prefix("change.") {
                        Some("rate_id") => "change.rate".to_string(),
                        Some(rest) => format!("change.{rest}"),
                        None => f.to_string(),
                    })
                    .into_invalid_reference()
            })?
            .into_inner();
        let lines: Vec<ChangeLine> = r
            .lines
            .iter()
            .map(|l| {
                let credit = l.kind == pricepb::ProrationLineKind::Credit as i32;
                let a = amount(&l.amount);
                ChangeLine {
                    credit,
                    product_id: l.product_id.clone(),
                    rate_id: l.rate_id.clone(),
                    quantity: dec(&l.quantity),
                    period_start: ts(&l.period_start),
                    period_end: ts(&l.period_end),
                    fraction: l.fraction.clone(),
                    amount: if credit { -a.abs() } else { a },
                    description: l.description.clone(),
                }
            })
            .collect();
        let missing = || AppError::internal("pricing's change preview lacks its period");
        Ok(ChangePriced {
            net: lines.iter().map(|l| l.amount).sum(),
            lines,
            next_recurring: amount(&r.next_recurring_amount),
            effective_at: ts(&r.effective_time).ok_or_else(missing)?,
            new_period_start: ts(&r.new_period_start).ok_or_else(missing)?,
            new_period_end: ts(&r.new_period_end).ok_or_else(missing)?,
            anchor: r
                .billing_anchor
                .as_ref()
                .map(|a| BillingAnchor { day: a.day.max(0) as u32, month: a.month.max(0) as u32 })
                .unwrap_or_default(),
            items: r.items.iter().map(|i| (i.product_id.clone(), dec(&i.quantity))).collect(),
            offering_id: r.offering_id.clone(),
            custom_prices: Vec::new(),
        })
    }

    async fn rate_usage(&self, ctx: &CallContext, q: &UsageQuestion) -> AppResult<RatedUsage> {
        let req = pricepb::RateUsageRequest {
            rate_id: q.rate_id.clone(),
            product_id: q.product_id.clone(),
            quantity: q.quantity.normalize().to_string(),
            period_start: Some(recur_proto::convert::timestamp(q.period_start)),
            period_end: Some(recur_proto::convert::timestamp(q.period_end)),
            tax_address: Some(address_pb(&q.tax_address)),
            tax_exempt: q.tax_exempt,
            compute_tax: q.compute_tax,
            custom_price: q.custom_price.as_ref().map(|c| crate::api::wire::custom_price_pb(&q.product_id, c)),
            full_period_start: q.full_period.map(|(s, _)| recur_proto::convert::timestamp(s)),
            full_period_end: q.full_period.map(|(_, e)| recur_proto::convert::timestamp(e)),
            time_zone: q.time_zone.clone(),
            coupon_codes: q.coupons.iter().map(|(c, _)| c.clone()).collect(),
            coupon_usages: q
                .coupons
                .iter()
                .map(|(code, n)| pricepb::CouponUsage { code: code.clone(), times_redeemed: 0, periods_applied: *n })
                .collect(),
            fixed_amounts_left: q
                .fixed_left
                .iter()
                .map(|(code, m)| pricepb::CouponAmount { code: code.clone(), amount: Some(money(*m)) })
                .collect(),
            whole_fixed_amounts: q.whole_fixed,
        };
        let r = self
            .client
            .clone()
            .rate_usage(request(ctx, req, self.timeout))
            .await
            .map_err(|s| AppError::from_peer("pricing", &s).into_invalid_reference())?
            .into_inner();
        let b = r.breakdown.unwrap_or_default();
        Ok(RatedUsage {
            unit_amount: b.unit_amount.clone(),
            tiers: tier_lines(&b.tiers),
            tax_rate: b.tax_rate.clone(),
            amount_without_tax: amount(&r.amount_without_tax),
            tax: amount(&r.tax),
            amount: amount(&r.total),
            discount: amount(&r.discount),
            fraction: r.proration_fraction,
            fixed_left: coupon_amounts(&r.fixed_amounts_left),
        })
    }
}

/// Pricing's `(code, amount)` pairs.
fn coupon_amounts(amounts: &[pricepb::CouponAmount]) -> Vec<(String, Decimal)> {
    amounts.iter().map(|a| (a.code.clone(), amount(&a.amount))).collect()
}

#[async_trait]
impl Payments for GrpcPayments {
    async fn check_method(
        &self,
        ctx: &CallContext,
        customer_id: &str,
        payment_method_id: &str,
        field: &str,
    ) -> AppResult<()> {
        let req = paypb::ListPaymentMethodsRequest { customer_id: customer_id.to_string() };
        let methods = self
            .client
            .clone()
            .list_payment_methods(request(ctx, req, self.timeout))
            .await
            .map_err(|s| {
                AppError::from_peer("payment-gateway", &s).into_invalid_reference().map_fields(|_| field.to_string())
            })?
            .into_inner()
            .payment_methods;
        if !payment_method_id.is_empty() && !methods.iter().any(|m| m.id == payment_method_id) {
            return Err(AppError::new(
                tonic::Code::InvalidArgument,
                "PAYMENT_METHOD_NOT_FOUND",
                format!("payment method {:?} is not a usable method of the gateway customer", payment_method_id),
            )
            .with_field(field, "no such payment method on the gateway customer"));
        }
        Ok(())
    }

    async fn charge(&self, ctx: &CallContext, c: &ChargeInput) -> AppResult<PaymentOutcome> {
        let req = paypb::ChargeRequest {
            customer_id: c.customer_id.clone(),
            payment_method_id: c.payment_method_id.clone(),
            amount: Some(money(c.amount)),
            invoice_id: c.invoice_id.clone(),
            description: c.description.clone(),
            idempotency_key: c.idempotency_key.clone(),
            return_url: String::new(),
            metadata: Default::default(),
        };
        let payment = self
            .client
            .clone()
            .charge(with_idempotency_key(request(ctx, req, self.timeout), &c.idempotency_key))
            .await
            .map_err(|s| AppError::from_peer("payment-gateway", &s).into_invalid_reference())?
            .into_inner()
            .payment
            .ok_or_else(|| AppError::internal("payment gateway returned no payment"))?;
        Ok(outcome(&payment))
    }

    async fn payment_events(
        &self,
        ctx: &CallContext,
        after_sequence: i64,
        limit: i32,
    ) -> AppResult<Vec<crate::peers::PaymentEvent>> {
        let req = paypb::ListPaymentEventsRequest { after_sequence, page_size: limit };
        let events = self
            .client
            .clone()
            .list_payment_events(request(ctx, req, self.timeout))
            .await
            .map_err(|s| AppError::from_peer("payment-gateway", &s))?
            .into_inner()
            .events;
        Ok(events
            .into_iter()
            .filter_map(|e| {
                let p = e.payment?;
                Some(crate::peers::PaymentEvent {
                    sequence: e.sequence,
                    invoice_id: p.invoice_id.clone(),
                    payment: outcome(&p),
                })
            })
            .collect())
    }
}

/// A gateway payment as the subscription service sees it: settled either
/// way, or not yet (processing, waiting for 3-D Secure).
fn outcome(payment: &paypb::Payment) -> PaymentOutcome {
    let status = match paypb::PaymentStatus::try_from(payment.status) {
        Ok(paypb::PaymentStatus::Succeeded) => PaymentStatus::Succeeded,
        Ok(paypb::PaymentStatus::Failed) => PaymentStatus::Failed,
        _ => PaymentStatus::Pending,
    };
    PaymentOutcome {
        payment_id: payment.id.clone(),
        status,
        amount: amount(&payment.amount),
        decline_code: payment.decline_code.clone(),
    }
}

#[async_trait]
impl Catalog for GrpcCatalog {
    async fn policy(&self, ctx: &CallContext) -> AppResult<Policy> {
        let settings = self
            .client
            .clone()
            .get_tenant_settings(request(ctx, catpb::GetTenantSettingsRequest {}, self.timeout))
            .await
            .map_err(|s| AppError::from_peer("catalog", &s))?
            .into_inner()
            .settings
            .unwrap_or_default();
        let d = settings.subscription_defaults.unwrap_or_default();
        Ok(Policy {
            time_zone: if settings.time_zone.is_empty() { "UTC".to_string() } else { settings.time_zone },
            proration: if settings.proration_mode == catpb::ProrationMode::Second as i32 {
                ProrationMode::Second
            } else {
                ProrationMode::Day
            },
            change_at_period_end: d.change_at_period_end,
            credit_unused_on_cancel: d.credit_unused_on_cancel,
            invoice_due_days: if d.invoice_due_days <= 0 { 30 } else { d.invoice_due_days as u32 },
            grace: match &d.invoice_grace_period {
                Some(g) => chrono::Duration::seconds(g.seconds.clamp(0, 7 * 86_400)),
                None => crate::app::renew::GRACE_PERIOD,
            },
            dunning: match settings.dunning {
                Some(dn) => {
                    use crate::domain::dunning::{Dunning, FinalAction};
                    Dunning {
                        retry_days: dn.retry_offset_days.iter().map(|d| (*d).clamp(0, 365) as u32).collect(),
                        final_action: match catpb::DunningFinalAction::try_from(dn.final_action) {
                            Ok(catpb::DunningFinalAction::MarkUncollectible) => FinalAction::MarkUncollectible,
                            Ok(catpb::DunningFinalAction::LeavePastDue) => FinalAction::LeavePastDue,
                            _ => FinalAction::CancelSubscription,
                        },
                    }
                }
                None => Default::default(),
            },
        })
    }

    async fn coupon_terms(&self, ctx: &CallContext, code: &str) -> AppResult<Option<(String, i64)>> {
        let req = catpb::GetCouponRequest { lookup: Some(catpb::get_coupon_request::Lookup::Code(code.to_string())) };
        match self.client.clone().get_coupon(request(ctx, req, self.timeout)).await {
            Ok(r) => Ok(r.into_inner().coupon.map(|c| (c.id, i64::from(c.max_redemptions.max(0))))),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(AppError::from_peer("catalog", &s)),
        }
    }

    async fn product(&self, ctx: &CallContext, id: &str) -> AppResult<Option<(String, String)>> {
        let lookup = if id.starts_with("prod_") {
            catpb::get_product_request::Lookup::Id(id.to_string())
        } else {
            catpb::get_product_request::Lookup::Handle(id.to_string())
        };
        let req = catpb::GetProductRequest { lookup: Some(lookup) };
        match self.client.clone().get_product(request(ctx, req, self.timeout)).await {
            Ok(r) => Ok(r.into_inner().product.map(|p| (p.id, p.name))),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(AppError::from_peer("catalog", &s)),
        }
    }

    async fn rate_terms(&self, ctx: &CallContext, id: &str) -> AppResult<RateTerms> {
        if let Some(kept) = self.terms.get(&ctx.tenant_id, id) {
            return Ok(kept);
        }
        let rate = self.rate(ctx, id).await?;
        let bp = rate.billing_period.unwrap_or_default();
        let unit = match catpb::PeriodUnit::try_from(bp.unit) {
            Ok(catpb::PeriodUnit::Day) => Unit::Day,
            Ok(catpb::PeriodUnit::Week) => Unit::Week,
            Ok(catpb::PeriodUnit::Year) => Unit::Year,
            _ => Unit::Month,
        };
        let terms = RateTerms {
            period: Period { unit, count: bp.count.max(1) as u32 },
            notice_days: rate.notice_period_days.max(0) as u32,
        };
        self.terms.keep(&ctx.tenant_id, id, terms);
        Ok(terms)
    }

    async fn coupon_code(&self, ctx: &CallContext, id: &str) -> AppResult<Option<String>> {
        let req = catpb::GetCouponRequest { lookup: Some(catpb::get_coupon_request::Lookup::Id(id.to_string())) };
        match self.client.clone().get_coupon(request(ctx, req, self.timeout)).await {
            Ok(r) => Ok(r.into_inner().coupon.map(|c| c.code)),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(AppError::from_peer("catalog", &s)),
        }
    }

    async fn arrears_items(&self, ctx: &CallContext, rate_id: &str) -> AppResult<Arc<Vec<ArrearsItem>>> {
        if let Some(kept) = self.arrears.get(&ctx.tenant_id, rate_id) {
            return Ok(kept);
        }
        let rate = self.rate(ctx, rate_id).await?;
        let whole_rate = rate.timing == catpb::BillingTiming::InArrears as i32;
        let mut items = Vec::new();
        for price in &rate.prices {
            let req = catpb::GetProductRequest {
                lookup: Some(catpb::get_product_request::Lookup::Id(price.product_id.clone())),
            };
            let product = self
                .client
                .clone()
                .get_product(request(ctx, req, self.timeout))
                .await
                .map_err(|s| AppError::from_peer("catalog", &s))?
                .into_inner()
                .product
                .ok_or_else(|| AppError::internal("catalog returned no product"))?;
            let meter = (product.kind == catpb::ProductKind::Metered as i32).then(|| Meter {
                aggregation: match catpb::UsageAggregation::try_from(product.aggregation) {
                    Ok(catpb::UsageAggregation::Count) => Aggregation::Count,
                    Ok(catpb::UsageAggregation::Max) => Aggregation::Max,
                    Ok(catpb::UsageAggregation::UniqueCount) => Aggregation::UniqueCount,
                    Ok(catpb::UsageAggregation::Latest) => Aggregation::Latest,
                    _ => Aggregation::Sum,
                },
                property: product.aggregation_property.clone(),
            });
            // A one-time product is billed once, at the start, not per period.
            let one_time = product.kind == catpb::ProductKind::OneTime as i32;
            if meter.is_some() || (whole_rate && !one_time) {
                items.push(ArrearsItem { product_id: product.id.clone(), name: product.name.clone(), meter });
            }
        }
        let items = Arc::new(items);
        self.arrears.keep(&ctx.tenant_id, rate_id, items.clone());
        Ok(items)
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
}
