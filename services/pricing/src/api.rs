//! The pricing service's gRPC surface. `Quote` and `RateUsage` are served;
//! `PreviewChange` (proration) and coupons are not finished yet.

use std::str::FromStr;
use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use recur_auth::CallContext;
use recur_clock::SharedClock;
use recur_error::{AppError, AppResult, Violations};
use recur_money::Currency;
use recur_proto::catalog::v1 as cpb;
use recur_proto::convert::{money_of, timestamp};
use recur_proto::pricing::v1 as pb;
use recur_server::caller;
use rust_decimal::Decimal;
use tonic::{Code, Request, Response, Status};

use crate::catalog::CatalogSource;
use crate::domain::period::{Period, Unit};
use crate::domain::quote::{
    self, Amounts, Billing, CartLine, CartOffering, ItemKind, QuoteError, QuoteInput, RateTerms,
};
use crate::domain::rating::{Model, PriceSpec, Tier, rate};
use crate::domain::tax::{JurisdictionRate, rule_for};

pub struct PricingApi {
    catalog: Arc<dyn CatalogSource>,
    clock: SharedClock,
}

impl PricingApi {
    pub fn new(catalog: Arc<dyn CatalogSource>, clock: SharedClock) -> Self {
        PricingApi { catalog, clock }
    }
}

const MAX_OFFERINGS: usize = 50;
const QUANTITY_PLACES: u32 = 6;

fn decimal(raw: &str) -> Decimal {
    // Catalog values were validated on the way in; an unreadable one is
    // treated as absent rather than panicking.
    Decimal::from_str(raw).unwrap_or_default()
}

fn opt_decimal(raw: &str) -> Option<Decimal> {
    if raw.is_empty() { None } else { Decimal::from_str(raw).ok() }
}

fn price_spec(p: &cpb::Price) -> PriceSpec {
    let model = match cpb::PricingModel::try_from(p.model) {
        Ok(cpb::PricingModel::PerUnit) => Model::PerUnit,
        Ok(cpb::PricingModel::Tiered) => Model::Tiered,
        Ok(cpb::PricingModel::Volume) => Model::Volume,
        Ok(cpb::PricingModel::Stairstep) => Model::Stairstep,
        Ok(cpb::PricingModel::Package) => Model::Package,
        _ => Model::Flat,
    };
    PriceSpec {
        model,
        unit_amount: decimal(&p.unit_amount),
        flat_amount: decimal(&p.flat_amount),
        tiers: p
            .tiers
            .iter()
            .map(|t| Tier {
                up_to: opt_decimal(&t.up_to),
                unit_amount: decimal(&t.unit_amount),
                flat_amount: decimal(&t.flat_amount),
            })
            .collect(),
        package_size: p.package_size.max(1),
    }
}

fn model_pb(m: Model) -> i32 {
    (match m {
        Model::Flat => cpb::PricingModel::Flat,
        Model::PerUnit => cpb::PricingModel::PerUnit,
        Model::Tiered => cpb::PricingModel::Tiered,
        Model::Volume => cpb::PricingModel::Volume,
        Model::Stairstep => cpb::PricingModel::Stairstep,
        Model::Package => cpb::PricingModel::Package,
    }) as i32
}

fn period(r: &cpb::Rate) -> Period {
    let bp = r.billing_period.unwrap_or_default();
    let unit = match cpb::PeriodUnit::try_from(bp.unit) {
        Ok(cpb::PeriodUnit::Day) => Unit::Day,
        Ok(cpb::PeriodUnit::Week) => Unit::Week,
        Ok(cpb::PeriodUnit::Year) => Unit::Year,
        _ => Unit::Month,
    };
    Period { unit, count: bp.count.max(1) as u32 }
}

fn archived(status: i32) -> bool {
    status == cpb::CatalogStatus::Archived as i32
}

/// The quantity an item takes when the cart gives none: the product's
/// default, else its minimum, else one unit (no usage for metered products).
fn default_quantity(p: &cpb::Product) -> Decimal {
    opt_decimal(&p.default_quantity)
        .or_else(|| opt_decimal(&p.min_quantity))
        .unwrap_or(if p.kind == cpb::ProductKind::Metered as i32 { Decimal::ZERO } else { Decimal::ONE })
}

fn billing(p: &cpb::Product, r: &cpb::Rate) -> Billing {
    if p.kind == cpb::ProductKind::OneTime as i32 {
        Billing::OneTime
    } else if p.kind == cpb::ProductKind::Metered as i32 || r.timing == cpb::BillingTiming::InArrears as i32 {
        Billing::InArrears
    } else {
        Billing::InAdvance
    }
}

/// Parses a cart item's quantity; `Ok(None)` when it was left empty.
fn quantity(v: &mut Violations, field: &str, raw: &str) -> Option<Decimal> {
    if raw.is_empty() {
        return None;
    }
    match recur_money::parse_non_negative(raw) {
        Ok(q) if q.normalize().scale() > QUANTITY_PLACES => {
            v.add(field, format!("must have at most {QUANTITY_PLACES} decimal places"));
            None
        }
        Ok(q) => Some(q),
        Err(e) => {
            v.add(field, e.to_string());
            None
        }
    }
}

pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()
}

fn amounts_pb(
    a: Amounts,
    c: Currency,
) -> (
    Option<recur_proto::common::v1::Money>,
    Option<recur_proto::common::v1::Money>,
    Option<recur_proto::common::v1::Money>,
    Option<recur_proto::common::v1::Money>,
) {
    (
        Some(money_of(a.without_tax, c)),
        Some(money_of(a.discount, c)),
        Some(money_of(a.tax, c)),
        Some(money_of(a.amount, c)),
    )
}

impl PricingApi {
    async fn quote(&self, ctx: &CallContext, req: &pb::QuoteRequest) -> AppResult<pb::Quote> {
        // 1. The request's own shape, every problem at once.
        let mut v = Violations::new();
        if req.offerings.is_empty() {
            v.add("offerings", "a quote needs at least one offering");
        }
        if req.offerings.len() > MAX_OFFERINGS {
            v.add("offerings", format!("at most {MAX_OFFERINGS} offerings"));
        }
        let mut requested: Vec<Vec<(String, Option<Decimal>)>> = Vec::new();
        for (i, o) in req.offerings.iter().enumerate() {
            v.check(!o.offering_id.is_empty(), format!("offerings[{i}].offering_id"), "is required");
            v.check(!o.rate_id.is_empty(), format!("offerings[{i}].rate_id"), "is required");
            let mut items = Vec::new();
            for (j, item) in o.items.iter().enumerate() {
                let field = format!("offerings[{i}].items[{j}]");
                if item.product_id.is_empty() {
                    v.add(format!("{field}.product_id"), "is required");
                }
                items.push((item.product_id.clone(), quantity(&mut v, &format!("{field}.quantity"), &item.quantity)));
            }
            requested.push(items);
        }
        if !req.coupon_codes.is_empty() {
            return Err(AppError::new(Code::Unimplemented, "COUPONS_UNSUPPORTED", "coupons are not supported yet")
                .with_field("coupon_codes", "coupons are not supported yet"));
        }
        let start_date = if req.start_date.is_empty() {
            None
        } else {
            let d = parse_date(&req.start_date);
            v.check(d.is_some(), "start_date", "must be a date as YYYY-MM-DD");
            d
        };
        let address = req.tax_address.clone().unwrap_or_default();
        if req.compute_tax && !req.tax_exempt && address.country.is_empty() {
            v.add("tax_address.country", "is required to compute tax");
        }
        if !req.time_zone.is_empty() && Tz::from_str(&req.time_zone).is_err() {
            v.add("time_zone", format!("unknown IANA time zone {:?}", req.time_zone));
        }
        v.finish()?;

        // 2. What the catalog says.
        let settings = self.catalog.settings(ctx).await?;
        let tz_name = if req.time_zone.is_empty() { settings.time_zone.as_str() } else { req.time_zone.as_str() };
        let tz = Tz::from_str(tz_name).unwrap_or(chrono_tz::UTC);
        let start_date = start_date.unwrap_or_else(|| crate::domain::period::local_date(self.clock.now(), tz));
        let tax = if req.compute_tax && !req.tax_exempt {
            let rates: Vec<JurisdictionRate> = settings
                .tax_rates
                .iter()
                .map(|t| JurisdictionRate {
                    country: t.country.clone(),
                    state: t.state.clone(),
                    percent: decimal(&t.percent),
                })
                .collect();
            rule_for(&rates, &address.country, &address.state, settings.prices_include_tax)
        } else {
            None
        };

        let mut cart = Vec::with_capacity(req.offerings.len());
        for (i, (o, items)) in req.offerings.iter().zip(requested).enumerate() {
            let (offering, rate) =
                tokio::join!(self.catalog.offering(ctx, &o.offering_id), self.catalog.rate(ctx, &o.rate_id));
            let offering = offering?.ok_or_else(|| {
                AppError::not_found("offering", &o.offering_id)
                    .with_field(format!("offerings[{i}].offering_id"), "no such offering")
            })?;
            let rate = rate?.ok_or_else(|| {
                AppError::not_found("rate", &o.rate_id).with_field(format!("offerings[{i}].rate_id"), "no such rate")
            })?;
            if rate.offering_id != offering.id {
                return Err(AppError::invalid(
                    format!("offerings[{i}].rate_id"),
                    format!("rate {} belongs to another offering", rate.id),
                ));
            }
            if archived(offering.status) {
                return Err(AppError::failed_precondition(
                    "OFFERING_ARCHIVED",
                    format!("offering {} is archived", offering.id),
                )
                .with_field(format!("offerings[{i}].offering_id"), "archived offerings cannot be quoted"));
            }
            if archived(rate.status) {
                return Err(AppError::failed_precondition("RATE_ARCHIVED", format!("rate {} is archived", rate.id))
                    .with_field(format!("offerings[{i}].rate_id"), "archived rates cannot be quoted"));
            }
            // The offering's products; cart items name them by id or handle.
            let fetched =
                futures::future::join_all(offering.product_ids.iter().map(|p| self.catalog.product(ctx, p))).await;
            let mut products = Vec::with_capacity(fetched.len());
            for (pid, product) in offering.product_ids.iter().zip(fetched) {
                products.push(product?.ok_or_else(|| AppError::internal(format!("offering product {pid} missing")))?);
            }
            let mut v = Violations::new();
            let mut given: Vec<Option<usize>> = vec![None; products.len()];
            for (j, (reference, _)) in items.iter().enumerate() {
                match products
                    .iter()
                    .position(|p| &p.id == reference || (!p.handle.is_empty() && &p.handle == reference))
                {
                    None => v.add(
                        format!("offerings[{i}].items[{j}].product_id"),
                        format!("{reference:?} is not a product of the offering"),
                    ),
                    Some(k) if given[k].is_some() => {
                        v.add(format!("offerings[{i}].items[{j}].product_id"), "product listed twice")
                    }
                    Some(k) => given[k] = Some(j),
                }
            }
            v.finish()?;
            let mut v = Violations::new();
            let mut lines = Vec::with_capacity(products.len());
            for (product, given) in products.iter().zip(given) {
                let price =
                    rate.prices.iter().find(|p| p.product_id == product.id).ok_or_else(|| {
                        AppError::internal(format!("rate {} has no price for {}", rate.id, product.id))
                    })?;
                let qty = given.and_then(|j| items[j].1).unwrap_or_else(|| default_quantity(product));
                let field = match given {
                    Some(j) => format!("offerings[{i}].items[{j}].quantity"),
                    None => format!("offerings[{i}].items"),
                };
                if let Some(min) = opt_decimal(&product.min_quantity).filter(|m| qty < *m) {
                    v.add(field.clone(), format!("{} needs at least {min}", product.name));
                }
                if let Some(max) = opt_decimal(&product.max_quantity).filter(|m| qty > *m) {
                    v.add(field, format!("{} allows at most {max}", product.name));
                }
                lines.push(CartLine {
                    product_id: product.id.clone(),
                    name: product.name.clone(),
                    billing: billing(product, &rate),
                    quantity: qty,
                    price: price_spec(price),
                });
            }
            v.finish()?;
            let currency = Currency::from_code(&rate.currency_code)
                .ok_or_else(|| AppError::internal(format!("rate {} has currency {}", rate.id, rate.currency_code)))?;
            cart.push(CartOffering {
                offering_id: offering.id.clone(),
                rate: RateTerms {
                    rate_id: rate.id.clone(),
                    currency,
                    period: period(&rate),
                    trial_days: rate.trial_days.max(0) as u32,
                    setup_fee: opt_decimal(&rate.setup_fee),
                },
                lines,
            });
        }

        // 3. The engine.
        let q = quote::quote(&QuoteInput { offerings: cart, start_date, tz, tax }).map_err(|e| match e {
            QuoteError::MixedCurrencies { offering_index } => AppError::invalid(
                format!("offerings[{offering_index}].rate_id"),
                "all offerings of a quote must share one currency",
            ),
            QuoteError::OutOfRange { offering_index } => {
                AppError::invalid(format!("offerings[{offering_index}]"), "billing dates fall outside the calendar")
            }
        })?;
        Ok(encode_quote(&q, start_date, tz_name))
    }
}

fn encode_quote(q: &quote::Quote, start_date: NaiveDate, tz: &str) -> pb::Quote {
    let c = q.currency;
    let tax_rate = q.tax.as_ref().map(|t| t.percent.to_string()).unwrap_or_default();
    let jurisdiction = q.tax.as_ref().map(|t| t.jurisdiction.clone()).unwrap_or_default();
    let offerings: Vec<pb::QuoteOffering> = q
        .offerings
        .iter()
        .map(|o| {
            let items = o
                .items
                .iter()
                .map(|i| {
                    let (amount_without_tax, discount, tax, amount) = amounts_pb(i.now, c);
                    pb::QuoteItem {
                        product_id: i.product_id.clone(),
                        quantity: i.quantity.normalize().to_string(),
                        amount_without_tax,
                        discount,
                        tax,
                        amount,
                        breakdown: Some(pb::ItemBreakdown {
                            model: i.price.as_ref().map(|p| model_pb(p.model)).unwrap_or_default(),
                            tiers: i
                                .rated
                                .tiers
                                .iter()
                                .map(|t| pb::TierApplied {
                                    tier_index: t.index as i32,
                                    quantity: t.quantity.normalize().to_string(),
                                    unit_amount: t.unit_amount.to_string(),
                                    flat_amount: t.flat_amount.to_string(),
                                    amount: Some(recur_proto::common::v1::Money {
                                        currency_code: c.code().into(),
                                        amount: t.amount.normalize().to_string(),
                                    }),
                                })
                                .collect(),
                            unit_amount: i
                                .price
                                .as_ref()
                                .filter(|p| matches!(p.model, Model::PerUnit | Model::Package))
                                .map(|p| p.unit_amount.to_string())
                                .unwrap_or_default(),
                            flat_amount: i
                                .price
                                .as_ref()
                                .filter(|p| p.model == Model::Flat)
                                .map(|p| money_of(p.flat_amount, c)),
                            setup_fee: (i.kind == ItemKind::SetupFee).then(|| money_of(i.rated.amount, c)),
                            discount: Some(money_of(i.now.discount, c)),
                            tax_rate: tax_rate.clone(),
                            tax_jurisdiction: jurisdiction.clone(),
                            in_arrears: i.billing == Billing::InArrears,
                            coupon_codes: Vec::new(),
                        }),
                        recurring_amount: Some(money_of(i.recurring.amount, c)),
                        kind: match i.kind {
                            ItemKind::Product => pb::QuoteItemKind::Product as i32,
                            ItemKind::SetupFee => pb::QuoteItemKind::SetupFee as i32,
                        },
                        description: i.description.clone(),
                    }
                })
                .collect();
            let (amount_without_tax, discount, tax, amount) = amounts_pb(o.now, c);
            pb::QuoteOffering {
                offering_id: o.offering_id.clone(),
                rate_id: o.rate_id.clone(),
                amount_without_tax,
                discount,
                tax,
                amount,
                items,
                recurring_amount: Some(money_of(o.recurring.amount, c)),
                period_start: Some(timestamp(o.period_start)),
                period_end: Some(timestamp(o.period_end)),
                trial_end: o.trial_end.map(timestamp),
                next_billing_time: Some(timestamp(o.next_billing)),
            }
        })
        .collect();
    let first = q.offerings.first();
    let (amount_without_tax, discount, tax, amount) = amounts_pb(q.now, c);
    pb::Quote {
        currency_code: c.code().to_string(),
        amount_without_tax,
        discount,
        tax,
        amount,
        offerings,
        period_start: first.map(|o| timestamp(o.period_start)),
        period_end: first.map(|o| timestamp(o.period_end)),
        trial_end: first.and_then(|o| o.trial_end).map(timestamp),
        next_billing_time: q.offerings.iter().map(|o| o.next_billing).min().map(timestamp),
        recurring_amount: Some(money_of(q.recurring.amount, c)),
        start_date: start_date.format("%Y-%m-%d").to_string(),
        time_zone: tz.to_string(),
        tax_computed: q.tax.is_some(),
        start_time: Some(timestamp(q.start)),
    }
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::pricing_service_server::PricingService for PricingApi {
    async fn quote(&self, req: Request<pb::QuoteRequest>) -> Res<pb::QuoteResponse> {
        let ctx = caller(&req)?;
        let quote = self.quote(&ctx, req.get_ref()).await?;
        Ok(Response::new(pb::QuoteResponse { quote: Some(quote) }))
    }

    async fn rate_usage(&self, req: Request<pb::RateUsageRequest>) -> Res<pb::RateUsageResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.check(!r.rate_id.is_empty(), "rate_id", "is required");
        v.check(!r.product_id.is_empty(), "product_id", "is required");
        let qty = quantity(&mut v, "quantity", &r.quantity);
        v.check(!r.quantity.is_empty(), "quantity", "is required");
        v.finish()?;
        let rate_pb = self
            .catalog
            .rate(&ctx, &r.rate_id)
            .await?
            .ok_or_else(|| AppError::not_found("rate", &r.rate_id).with_field("rate_id", "no such rate"))?;
        let price = rate_pb.prices.iter().find(|p| p.product_id == r.product_id).ok_or_else(|| {
            AppError::invalid("product_id", format!("rate {} does not price {}", rate_pb.id, r.product_id))
        })?;
        let currency = Currency::from_code(&rate_pb.currency_code)
            .ok_or_else(|| AppError::internal(format!("rate currency {}", rate_pb.currency_code)))?;
        let spec = price_spec(price);
        let rated = rate(&spec, qty.unwrap_or_default());
        Ok(Response::new(pb::RateUsageResponse {
            amount: Some(money_of(rated.amount, currency)),
            breakdown: Some(pb::ItemBreakdown {
                model: model_pb(spec.model),
                tiers: rated
                    .tiers
                    .iter()
                    .map(|t| pb::TierApplied {
                        tier_index: t.index as i32,
                        quantity: t.quantity.normalize().to_string(),
                        unit_amount: t.unit_amount.to_string(),
                        flat_amount: t.flat_amount.to_string(),
                        amount: Some(recur_proto::common::v1::Money {
                            currency_code: currency.code().into(),
                            amount: t.amount.normalize().to_string(),
                        }),
                    })
                    .collect(),
                unit_amount: price.unit_amount.clone(),
                in_arrears: true,
                ..Default::default()
            }),
        }))
    }
}
