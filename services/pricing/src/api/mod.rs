//! The pricing service's gRPC surface: `Quote`, `PreviewChange` and
//! `RateUsage`. It resolves what a request names against the catalog
//! (through the cache), refuses what cannot be priced with the field that
//! names it, and leaves every amount to the engine in `domain`.

mod wire;

pub(crate) use wire::{period, price_spec};

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono_tz::Tz;
use recur_auth::CallContext;
use recur_clock::SharedClock;
use recur_error::{AppError, AppResult, Violations};
use recur_money::{AmountTooLarge, Ceilings, Currency};
use recur_proto::catalog::v1 as cpb;
use recur_proto::convert::{from_timestamp, money_of, timestamp};
use recur_proto::pricing::v1 as pb;
use recur_server::caller;
use rust_decimal::Decimal;
use tonic::{Request, Response, Status};

use crate::catalog::{CatalogSource, RateView};
use crate::domain::coupon::{CouponSpec, Discount, Duration as CouponDuration};
use crate::domain::proration::{self, ChangeError, ChangeInput, LineKind, Mode, Side, Timing};
use crate::domain::quote::{self, Billing, CartLine, CartOffering, QuoteError, QuoteInput, RateTerms};
use crate::domain::rating::{Model, PriceSpec};
use crate::domain::rating::{bound, rate};
use crate::domain::tax::{JurisdictionRate, TaxEngine, TaxQuery};
use wire::*;

pub struct PricingApi {
    catalog: Arc<dyn CatalogSource>,
    tax: Arc<dyn TaxEngine>,
    clock: SharedClock,
}

impl PricingApi {
    /// The tax a customer at `address` pays under the tenant's `settings`
    /// (`None` when tax is not computed or nothing applies).
    fn tax_rule(
        &self,
        settings: &cpb::TenantSettings,
        compute: bool,
        address: &recur_proto::common::v1::Address,
        exempt: bool,
    ) -> Option<crate::domain::tax::TaxRule> {
        if !compute {
            return None;
        }
        self.tax.rule(&TaxQuery {
            country: address.country.clone(),
            state: address.state.clone(),
            exempt,
            rates: settings
                .tax_rates
                .iter()
                .map(|t| JurisdictionRate {
                    country: t.country.clone(),
                    state: t.state.clone(),
                    percent: decimal(&t.percent),
                })
                .collect(),
            prices_include_tax: settings.prices_include_tax,
        })
    }

    pub fn new(catalog: Arc<dyn CatalogSource>, tax: Arc<dyn TaxEngine>, clock: SharedClock) -> Self {
        PricingApi { catalog, tax, clock }
    }
}

const MAX_OFFERINGS: usize = 50;
const MAX_COUPONS: usize = 10;

/// A cart offering resolved against the catalog.
struct Resolved {
    offering: Arc<cpb::Offering>,
    rate: Arc<RateView>,
    currency: Currency,
    lines: Vec<CartLine>,
}

/// What a request names: an offering, a rate of it, and item quantities.
struct Wanted<'a> {
    /// Where it sits in the request (`offerings[2]`, `change`), for errors.
    prefix: &'a str,
    offering: &'a str,
    rate: &'a str,
    /// Product, quantity (`None`: its default) and a custom price.
    items: &'a [(String, Option<Decimal>, Option<PriceSpec>)],
    /// A contract's own rate prices what was paid even once archived.
    allow_archived: bool,
    /// Quantities for products the items leave out.
    carry: &'a (dyn Fn(&str) -> Option<Decimal> + Sync),
    /// The tenant's largest single line, per currency.
    ceilings: &'a Ceilings,
}

/// The tenant's ceilings, from its catalog settings (validated there).
fn ceilings(s: &cpb::TenantSettings) -> Ceilings {
    Ceilings::lenient(s.max_amounts.iter().map(|(code, amount)| (code.as_str(), amount.as_str())))
}

/// A line of `quantity` under `price` within `ceiling`: the cheap bound
/// first, so an absurd quantity (10^20 seats) is refused without rating it
/// (rating it could overflow), then the exact amount.
fn line_within(
    field: &str,
    price: &crate::domain::rating::PriceSpec,
    quantity: Decimal,
    ceiling: recur_money::Money,
) -> Result<(), AmountTooLarge> {
    let too_large = || AmountTooLarge { field: field.to_string(), ceiling };
    match bound(price, quantity) {
        None => Err(too_large()),
        Some(b) if b <= ceiling.amount() => Ok(()),
        Some(_) => recur_money::check_ceiling(field, rate(price, quantity).amount, ceiling),
    }
}

/// Parses the items of a cart offering; `prefix` names it in the request.
fn cart_items(
    v: &mut Violations,
    prefix: &str,
    items: &[pb::CartItem],
) -> Vec<(String, Option<Decimal>, Option<PriceSpec>)> {
    items
        .iter()
        .enumerate()
        .map(|(j, item)| {
            let field = format!("{prefix}.items[{j}]");
            if item.product_id.is_empty() {
                v.add(format!("{field}.product_id"), "is required");
            }
            let custom =
                item.custom_price.as_ref().and_then(|p| wire::custom_spec(v, &format!("{field}.custom_price"), p));
            (item.product_id.clone(), quantity(v, &format!("{field}.quantity"), &item.quantity), custom)
        })
        .collect()
}

impl PricingApi {
    /// Looks up an offering and a rate of it, the offering's products, and
    /// prices each product at the quantity the cart gives (or its default).
    /// `carry` supplies quantities for products the cart leaves out.
    async fn resolve(&self, ctx: &CallContext, want: Wanted<'_>) -> AppResult<Resolved> {
        let Wanted { prefix, offering: offering_key, rate: rate_key, items, allow_archived, carry, ceilings } = want;
        let (offering, rate) = tokio::join!(self.catalog.offering(ctx, offering_key), self.catalog.rate(ctx, rate_key));
        let offering = offering?.ok_or_else(|| {
            AppError::not_found("offering", offering_key)
                .into_invalid_reference()
                .with_field(format!("{prefix}.offering_id"), "no such offering")
        })?;
        let rate = rate?.ok_or_else(|| {
            AppError::not_found("rate", rate_key)
                .into_invalid_reference()
                .with_field(format!("{prefix}.rate_id"), "no such rate")
        })?;
        if rate.offering_id != offering.id {
            return Err(AppError::invalid(
                format!("{prefix}.rate_id"),
                format!("rate {} belongs to another offering", rate.id),
            ));
        }
        if !allow_archived {
            if archived(offering.status) {
                return Err(AppError::failed_precondition(
                    "OFFERING_ARCHIVED",
                    format!("offering {} is archived", offering.id),
                )
                .with_field(format!("{prefix}.offering_id"), "archived offerings cannot be quoted"));
            }
            if archived(rate.status) {
                return Err(AppError::failed_precondition("RATE_ARCHIVED", format!("rate {} is archived", rate.id))
                    .with_field(format!("{prefix}.rate_id"), "archived rates cannot be quoted"));
            }
        }
        let fetched = self.catalog.products(ctx, &offering.product_ids).await?;
        let mut products = Vec::with_capacity(fetched.len());
        for (pid, product) in offering.product_ids.iter().zip(fetched) {
            products.push(product.ok_or_else(|| AppError::internal(format!("offering product {pid} missing")))?);
        }
        // Cart items name products by id or by handle.
        let mut v = Violations::new();
        let mut given: Vec<Option<usize>> = vec![None; products.len()];
        for (j, (reference, _, _)) in items.iter().enumerate() {
            match products.iter().position(|p| &p.id == reference || (!p.handle.is_empty() && &p.handle == reference)) {
                None => v.add(
                    format!("{prefix}.items[{j}].product_id"),
                    format!("{reference:?} is not a product of the offering"),
                ),
                Some(k) if given[k].is_some() => {
                    v.add(format!("{prefix}.items[{j}].product_id"), "product listed twice")
                }
                Some(k) => given[k] = Some(j),
            }
        }
        v.finish()?;
        let currency = rate
            .currency
            .ok_or_else(|| AppError::internal(format!("rate {} has currency {}", rate.id, rate.currency_code)))?;
        let ceiling = ceilings.of(currency);
        let mut too_large = Vec::new();
        if let Err(e) = recur_money::check_ceiling(
            &format!("{prefix}.rate_id"),
            opt_decimal(&rate.setup_fee).unwrap_or_default(),
            ceiling,
        ) {
            too_large.push(e);
        }
        let mut v = Violations::new();
        let mut lines = Vec::with_capacity(products.len());
        for (product, given) in products.iter().zip(given) {
            let price = match given.and_then(|j| items[j].2.as_ref()) {
                Some(custom) => custom,
                None => rate
                    .spec(&product.id)
                    .ok_or_else(|| AppError::internal(format!("rate {} has no price for {}", rate.id, product.id)))?,
            };
            let qty = given
                .and_then(|j| items[j].1)
                .or_else(|| carry(&product.id))
                .unwrap_or_else(|| default_quantity(product));
            let field = match given {
                Some(j) => format!("{prefix}.items[{j}].quantity"),
                None => format!("{prefix}.items"),
            };
            if let Some(min) = opt_decimal(&product.min_quantity).filter(|m| qty < *m && !qty.is_zero()) {
                v.add(field.clone(), format!("{} needs at least {min}", product.name));
            }
            if let Some(max) = opt_decimal(&product.max_quantity).filter(|m| qty > *m) {
                v.add(field.clone(), format!("{} allows at most {max}", product.name));
            }
            // A line priced from the rate alone (no quantity given) names the rate.
            let line_field = if given.is_some() { field } else { format!("{prefix}.rate_id") };
            if let Err(e) = line_within(&line_field, price, qty, ceiling) {
                too_large.push(e);
            }
            lines.push(CartLine {
                product_id: product.id.clone(),
                name: product.name.clone(),
                billing: billing(product, &rate),
                quantity: qty,
                price: price.clone(),
            });
        }
        v.finish()?;
        if !too_large.is_empty() {
            return Err(AmountTooLarge::into_error(too_large));
        }
        Ok(Resolved { offering, rate, currency, lines })
    }

    /// The coupons of a quote, checked: known, active, not expired, not
    /// exhausted, with an amount in the quote's currency, and applying to
    /// something in the cart.
    async fn coupons(
        &self,
        ctx: &CallContext,
        req: &pb::QuoteRequest,
        cart: &[Resolved],
        currency: Currency,
    ) -> AppResult<Vec<CouponSpec>> {
        let usages: HashMap<&str, &pb::CouponUsage> = req.coupon_usages.iter().map(|u| (u.code.as_str(), u)).collect();
        let now = self.clock.now();
        let mut specs = Vec::with_capacity(req.coupon_codes.len());
        for (i, code) in req.coupon_codes.iter().enumerate() {
            let field = format!("coupon_codes[{i}]");
            let c = self.catalog.coupon(ctx, code).await?.ok_or_else(|| {
                AppError::not_found("coupon", code).into_invalid_reference().with_field(field.clone(), "no such coupon")
            })?;
            let usage = usages.get(code.as_str());
            let periods_applied = usage.map(|u| u.periods_applied.max(0) as u32).unwrap_or(0);
            // A customer who already holds the coupon keeps it; the redeem-by
            // date and the redemption limit stop new redemptions only.
            if periods_applied == 0 {
                if archived(c.status) {
                    return Err(AppError::failed_precondition(
                        "COUPON_ARCHIVED",
                        format!("coupon {code} is no longer offered"),
                    )
                    .with_field(field, "archived"));
                }
                if c.redeem_by.as_ref().and_then(from_timestamp).is_some_and(|by| by <= now) {
                    return Err(AppError::failed_precondition(
                        "COUPON_EXPIRED",
                        format!("coupon {code} could be redeemed until its redeem-by date"),
                    )
                    .with_field(field, "expired"));
                }
                let redeemed = usage.map(|u| u.times_redeemed).unwrap_or(0);
                if c.max_redemptions > 0 && redeemed >= c.max_redemptions {
                    return Err(AppError::failed_precondition(
                        "COUPON_EXHAUSTED",
                        format!("coupon {code} was redeemed {redeemed} times of at most {}", c.max_redemptions),
                    )
                    .with_field(field, "exhausted"));
                }
            }
            let spec = coupon_spec(&c, periods_applied, currency).ok_or_else(|| {
                AppError::failed_precondition("COUPON_CURRENCY", format!("coupon {code} has no amount in {currency}"))
                    .with_field(field.clone(), format!("no amount in {currency}"))
            })?;
            let applies = cart.iter().any(|r| {
                spec.applies_to(&r.offering.id, None)
                    || r.lines.iter().any(|l| spec.applies_to(&r.offering.id, Some(&l.product_id)))
            });
            if !applies {
                return Err(AppError::failed_precondition(
                    "COUPON_NOT_APPLICABLE",
                    format!("coupon {code} applies to nothing in the cart"),
                )
                .with_field(field, "applies to other offerings or products"));
            }
            specs.push(spec);
        }
        Ok(specs)
    }

    /// What the contract's coupons in `r` take off an in-arrears line of
    /// `base` for `product_id` on a rate of `offering_id`: each coupon
    /// still in force that applies to it, in order (see
    /// [`crate::domain::coupon::allocate`]), a FIXED_AMOUNT one at most what
    /// the invoice's other lines left of it (`left`; its whole amount when
    /// `r.whole_fixed_amounts` and it is not listed; else nothing). A coupon
    /// the customer holds applies whatever its redemption limits say now;
    /// an unknown code is refused. Answers the line's discount and what each
    /// such FIXED_AMOUNT coupon has left after it.
    #[allow(clippy::too_many_arguments)]
    async fn usage_discount(
        &self,
        ctx: &CallContext,
        r: &pb::RateUsageRequest,
        offering_id: &str,
        product_id: &str,
        base: Decimal,
        currency: Currency,
        left: &HashMap<String, Decimal>,
    ) -> AppResult<(crate::domain::coupon::LineDiscount, Vec<(String, Decimal)>)> {
        let usages: HashMap<&str, &pb::CouponUsage> = r.coupon_usages.iter().map(|u| (u.code.as_str(), u)).collect();
        let mut specs = Vec::with_capacity(r.coupon_codes.len());
        for (i, code) in r.coupon_codes.iter().enumerate() {
            let c = self.catalog.coupon(ctx, code).await?.ok_or_else(|| {
                AppError::not_found("coupon", code)
                    .into_invalid_reference()
                    .with_field(format!("coupon_codes[{i}]"), "no such coupon")
            })?;
            let periods_applied = usages.get(code.as_str()).map(|u| u.periods_applied.max(0) as u32).unwrap_or(0);
            let Some(mut spec) = coupon_spec(&c, periods_applied, currency).filter(|s| s.active_in(0)) else {
                continue;
            };
            if let Discount::Fixed(whole) = spec.discount {
                let budget = match left.get(code.as_str()) {
                    Some(l) => (*l).min(currency.round(whole)),
                    None if r.whole_fixed_amounts => currency.round(whole),
                    None => continue,
                };
                spec.discount = Discount::Fixed(budget);
            }
            specs.push(spec);
        }
        let line = crate::domain::coupon::Discountable { offering_id, product_id: Some(product_id), base };
        let refs: Vec<&CouponSpec> = specs.iter().collect();
        let d = crate::domain::coupon::allocate(&[line], &refs, currency);
        // Each fixed coupon's budget here less what the line took of it.
        let after = crate::domain::coupon::fixed_left(&d, &refs, currency);
        Ok((d.into_iter().next().unwrap_or_default(), after))
    }

    async fn quote(&self, ctx: &CallContext, req: &pb::QuoteRequest) -> AppResult<pb::Quote> {
        // 1. The request's own shape, every problem at once.
        let mut v = Violations::new();
        if req.offerings.is_empty() {
            v.add("offerings", "a quote needs at least one offering");
        }
        v.check(req.offerings.len() <= MAX_OFFERINGS, "offerings", format!("at most {MAX_OFFERINGS} offerings"));
        let mut requested = Vec::with_capacity(req.offerings.len());
        for (i, o) in req.offerings.iter().enumerate() {
            v.check(!o.offering_id.is_empty(), format!("offerings[{i}].offering_id"), "is required");
            v.check(!o.rate_id.is_empty(), format!("offerings[{i}].rate_id"), "is required");
            requested.push(cart_items(&mut v, &format!("offerings[{i}]"), &o.items));
        }
        check_coupon_codes(&mut v, &req.coupon_codes);
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
        let tax = self.tax_rule(&settings, req.compute_tax, &address, req.tax_exempt);
        let ceilings = ceilings(&settings);
        let mut cart = Vec::with_capacity(req.offerings.len());
        for (i, (o, items)) in req.offerings.iter().zip(&requested).enumerate() {
            let prefix = format!("offerings[{i}]");
            let want = Wanted {
                prefix: &prefix,
                offering: &o.offering_id,
                rate: &o.rate_id,
                items,
                // A contract going on keeps its rate: archiving one stops
                // new sign-ups, not the renewals of those who have it.
                allow_archived: req.continuation,
                carry: &|_| None,
                ceilings: &ceilings,
            };
            cart.push(self.resolve(ctx, want).await?);
        }
        let currency = cart.first().map(|r| r.currency).unwrap_or_else(|| settings_currency(&settings));
        if let Some(i) = cart.iter().position(|r| r.currency != currency) {
            return Err(AppError::invalid(
                format!("offerings[{i}].rate_id"),
                "all offerings of a quote must share one currency",
            ));
        }
        let coupons = self.coupons(ctx, req, &cart, currency).await?;

        // 3. The engine.
        let offerings = cart
            .into_iter()
            .map(|r| CartOffering {
                offering_id: r.offering.id.clone(),
                rate: RateTerms {
                    rate_id: r.rate.id.clone(),
                    currency: r.currency,
                    period: r.rate.period,
                    trial_days: if req.continuation { 0 } else { r.rate.trial_days.max(0) as u32 },
                    setup_fee: if req.continuation { None } else { opt_decimal(&r.rate.setup_fee) },
                },
                lines: if req.continuation {
                    r.lines.into_iter().filter(|l| l.billing != Billing::OneTime).collect()
                } else {
                    r.lines
                },
            })
            .collect();
        if !(0..=31).contains(&req.billing_day) {
            return Err(AppError::invalid("billing_day", "must be between 1 and 31 (0: anniversary billing)"));
        }
        let billing_day = u32::try_from(req.billing_day).ok().filter(|d| *d > 0);
        let by_second = settings.proration_mode == cpb::ProrationMode::Second as i32;
        let q = quote::quote(&QuoteInput { offerings, start_date, tz, tax, coupons, billing_day, by_second }).map_err(
            |e| match e {
                QuoteError::MixedCurrencies { offering_index } => AppError::invalid(
                    format!("offerings[{offering_index}].rate_id"),
                    "all offerings of a quote must share one currency",
                ),
                QuoteError::OutOfRange { offering_index } => {
                    AppError::invalid(format!("offerings[{offering_index}]"), "billing dates fall outside the calendar")
                }
            },
        )?;
        // Each offering's total is one invoice's worth too.
        let ceiling = ceilings.of(q.currency);
        let too_large: Vec<AmountTooLarge> = q
            .offerings
            .iter()
            .enumerate()
            .flat_map(|(i, o)| [o.now.amount, o.recurring.amount].map(|a| (i, a)))
            .filter_map(|(i, a)| recur_money::check_ceiling(&format!("offerings[{i}]"), a, ceiling).err())
            .take(1)
            .collect();
        if !too_large.is_empty() {
            return Err(AmountTooLarge::into_error(too_large));
        }
        Ok(quote_pb(&q, start_date, tz_name))
    }

    async fn preview_change(
        &self,
        ctx: &CallContext,
        req: &pb::PreviewChangeRequest,
    ) -> AppResult<pb::PreviewChangeResponse> {
        let mut v = Violations::new();
        let current = req.current.clone().unwrap_or_default();
        let change = req.change.clone().unwrap_or_default();
        v.check(!current.offering_id.is_empty(), "current.offering_id", "is required");
        v.check(!current.rate_id.is_empty(), "current.rate_id", "is required");
        let current_items = cart_items(&mut v, "current", &current.items);
        let change_items = cart_items(&mut v, "change", &change.items);
        let start = current.period_start.as_ref().and_then(from_timestamp);
        let end = current.period_end.as_ref().and_then(from_timestamp);
        v.check(start.is_some(), "current.period_start", "is required");
        v.check(end.is_some(), "current.period_end", "is required");
        if let (Some(s), Some(e)) = (start, end) {
            v.check(s < e, "current.period_end", "must come after period_start");
        }
        // Unset: derived from period_start by the engine.
        let anchor = current.billing_anchor.as_ref().and_then(|a| wire::anchor(&mut v, "current.billing_anchor", a));
        let timing = match pb::ChangeTiming::try_from(change.timing) {
            Ok(pb::ChangeTiming::Immediate) => Timing::Immediate,
            Ok(pb::ChangeTiming::EndOfTerm) => Timing::EndOfTerm,
            _ => {
                v.add("change.timing", "is required: IMMEDIATE or END_OF_TERM");
                Timing::Immediate
            }
        };
        let at = match &req.change_time {
            Some(t) => from_timestamp(t).unwrap_or_else(|| {
                v.add("change_time", "is not a valid instant");
                self.clock.now()
            }),
            None => self.clock.now(),
        };
        if !req.time_zone.is_empty() && Tz::from_str(&req.time_zone).is_err() {
            v.add("time_zone", format!("unknown IANA time zone {:?}", req.time_zone));
        }
        let requested_mode = match cpb::ProrationMode::try_from(req.proration_mode) {
            Ok(cpb::ProrationMode::Day) => Some(Mode::Day),
            Ok(cpb::ProrationMode::Second) => Some(Mode::Second),
            Ok(cpb::ProrationMode::Unspecified) => None,
            Err(_) => {
                v.add("proration_mode", "unknown proration mode");
                None
            }
        };
        v.finish()?;
        let (Some(period_start), Some(period_end)) = (start, end) else {
            return Err(AppError::internal("validated change lacks its period"));
        };
        if timing == Timing::Immediate && (at < period_start || at >= period_end) {
            return Err(AppError::invalid("change_time", "an immediate change must fall inside the current period"));
        }

        let settings = self.catalog.settings(ctx).await?;
        let ceilings = ceilings(&settings);
        let tz_name = if req.time_zone.is_empty() { settings.time_zone.as_str() } else { req.time_zone.as_str() };
        let tz = Tz::from_str(tz_name).unwrap_or(chrono_tz::UTC);
        let mode = requested_mode.unwrap_or(if settings.proration_mode == cpb::ProrationMode::Second as i32 {
            Mode::Second
        } else {
            Mode::Day
        });
        // The contract's own rate may since have been archived; it still
        // prices what was paid.
        let want = Wanted {
            prefix: "current",
            offering: &current.offering_id,
            rate: &current.rate_id,
            items: &current_items,
            allow_archived: true,
            carry: &|_| None,
            ceilings: &ceilings,
        };
        let old = self.resolve(ctx, want).await?;
        let new_rate_key = if change.rate_id.is_empty() { old.rate.id.clone() } else { change.rate_id.clone() };
        let new_rate = self.catalog.rate(ctx, &new_rate_key).await?.ok_or_else(|| {
            AppError::not_found("rate", &new_rate_key)
                .into_invalid_reference()
                .with_field("change.rate_id", "no such rate")
        })?;
        let same_rate = new_rate.id == old.rate.id;
        // Products the change leaves unnamed keep their current quantity.
        let kept: HashMap<String, Decimal> = old.lines.iter().map(|l| (l.product_id.clone(), l.quantity)).collect();
        let new_items = if change_items.is_empty() && same_rate { current_items.clone() } else { change_items };
        let carry = |p: &str| kept.get(p).copied();
        let want = Wanted {
            prefix: "change",
            offering: &new_rate.offering_id,
            rate: &new_rate.id,
            items: &new_items,
            allow_archived: same_rate,
            carry: &carry,
            ceilings: &ceilings,
        };
        let new = self.resolve(ctx, want).await.map_err(|e| {
            e.map_fields(|f| match f {
                "change.offering_id" => "change.rate_id".to_string(),
                other => other.to_string(),
            })
        })?;
        if new.currency != old.currency {
            return Err(AppError::invalid(
                "change.rate_id",
                format!("the new rate is in {}, the contract in {}", new.currency, old.currency),
            ));
        }
        let outcome = proration::preview(&ChangeInput {
            currency: old.currency,
            tz,
            mode,
            timing,
            period_start,
            period_end,
            anchor,
            at,
            old: Side { rate_id: old.rate.id.clone(), period: old.rate.period, lines: old.lines },
            new: Side { rate_id: new.rate.id.clone(), period: new.rate.period, lines: new.lines.clone() },
        })
        .map_err(|e| match e {
            ChangeError::BadPeriod => AppError::invalid("current.period_end", "must come after period_start"),
            ChangeError::OutsidePeriod => {
                AppError::invalid("change_time", "an immediate change must fall inside the current period")
            }
            ChangeError::OutOfRange => AppError::invalid("change.rate_id", "billing dates fall outside the calendar"),
        })?;
        let c = old.currency;
        Ok(pb::PreviewChangeResponse {
            lines: outcome
                .lines
                .iter()
                .map(|l| pb::ProrationLine {
                    kind: match l.kind {
                        LineKind::Credit => pb::ProrationLineKind::Credit,
                        LineKind::Charge => pb::ProrationLineKind::Charge,
                    } as i32,
                    product_id: l.product_id.clone(),
                    rate_id: l.rate_id.clone(),
                    quantity: l.quantity.normalize().to_string(),
                    period_start: Some(timestamp(l.period_start)),
                    period_end: Some(timestamp(l.period_end)),
                    fraction: l.fraction().normalize().to_string(),
                    amount: Some(money_of(l.amount, c)),
                    description: l.description.clone(),
                })
                .collect(),
            amount_due_now: Some(money_of(outcome.due_now, c)),
            next_recurring_amount: Some(money_of(outcome.next_recurring, c)),
            effective_time: Some(timestamp(outcome.effective)),
            new_period_start: Some(timestamp(outcome.new_period_start)),
            new_period_end: Some(timestamp(outcome.new_period_end)),
            billing_anchor: Some(pb::BillingAnchor {
                day: outcome.anchor.day as i32,
                month: outcome.anchor.month as i32,
            }),
            items: new
                .lines
                .iter()
                .map(|l| pb::CartItem {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity.normalize().to_string(),
                    custom_price: None,
                })
                .collect(),
            offering_id: new_rate.offering_id.clone(),
        })
    }
}

fn settings_currency(s: &cpb::TenantSettings) -> Currency {
    Currency::from_code(&s.default_currency)
        .or_else(|| Currency::from_code("USD"))
        .unwrap_or_else(|| unreachable!("USD is a known currency"))
}

type Res<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::pricing_service_server::PricingService for PricingApi {
    async fn quote(&self, req: Request<pb::QuoteRequest>) -> Res<pb::QuoteResponse> {
        let ctx = caller(&req)?;
        let quote = self.quote(&ctx, req.get_ref()).await?;
        Ok(Response::new(pb::QuoteResponse { quote: Some(quote) }))
    }

    async fn preview_change(&self, req: Request<pb::PreviewChangeRequest>) -> Res<pb::PreviewChangeResponse> {
        let ctx = caller(&req)?;
        Ok(Response::new(self.preview_change(&ctx, req.get_ref()).await?))
    }

    async fn rate_usage(&self, req: Request<pb::RateUsageRequest>) -> Res<pb::RateUsageResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        v.check(!r.rate_id.is_empty(), "rate_id", "is required");
        v.check(!r.product_id.is_empty(), "product_id", "is required");
        v.check(!r.quantity.is_empty(), "quantity", "is required");
        let qty = quantity(&mut v, "quantity", &r.quantity);
        let custom = r.custom_price.as_ref().and_then(|p| wire::custom_spec(&mut v, "custom_price", p));
        let address = r.tax_address.clone().unwrap_or_default();
        if r.compute_tax && !r.tax_exempt && address.country.is_empty() {
            v.add("tax_address.country", "is required to compute tax");
        }
        let full = part_of_period(&mut v, &r);
        check_coupon_codes(&mut v, &r.coupon_codes);
        v.finish()?;
        let rate_pb = self.catalog.rate(&ctx, &r.rate_id).await?.ok_or_else(|| {
            AppError::not_found("rate", &r.rate_id).into_invalid_reference().with_field("rate_id", "no such rate")
        })?;
        // The product may be named by id or handle.
        let product = self.catalog.product(&ctx, &r.product_id).await?.ok_or_else(|| {
            AppError::not_found("product", &r.product_id)
                .into_invalid_reference()
                .with_field("product_id", "no such product")
        })?;
        let product_id = product.id.clone();
        let price = rate_pb.prices.iter().find(|p| p.product_id == product_id).ok_or_else(|| {
            AppError::invalid("product_id", format!("rate {} does not price {}", rate_pb.id, r.product_id))
        })?;
        let currency = Currency::from_code(&rate_pb.currency_code)
            .ok_or_else(|| AppError::internal(format!("rate currency {}", rate_pb.currency_code)))?;
        let unit_amount = match &custom {
            Some(c) if matches!(c.model, Model::PerUnit | Model::Package) => c.unit_amount.to_string(),
            Some(_) => String::new(),
            None => price.unit_amount.clone(),
        };
        let spec = custom.unwrap_or_else(|| price_spec(price));
        let qty = qty.unwrap_or_default();
        let settings = self.catalog.settings(&ctx).await?;
        let ceiling = ceilings(&settings).of(currency);
        line_within("quantity", &spec, qty, ceiling).map_err(AppError::from)?;
        let rated = rate(&spec, qty);
        // A per-period item billed for part of a period is prorated (once,
        // from the unrounded amount); usage is what it is.
        let (amount, fraction) = match full {
            Some((whole, part)) if product.kind != cpb::ProductKind::Metered as i32 => {
                let mode =
                    if settings.proration_mode == cpb::ProrationMode::Second as i32 { Mode::Second } else { Mode::Day };
                let tz_name = if r.time_zone.is_empty() { settings.time_zone.as_str() } else { r.time_zone.as_str() };
                let tz = Tz::from_str(tz_name).unwrap_or(chrono_tz::UTC);
                let (part, total) = proration::part_of(mode, tz, whole, part);
                let fraction = if total == 0 { Decimal::ONE } else { Decimal::from(part) / Decimal::from(total) };
                (proration::prorate(rated.amount, part, total, currency), fraction)
            }
            _ => (currency.round(rated.amount), Decimal::ONE),
        };
        let left = fixed_amounts_left(&r, currency)?;
        let (discount, fixed_after) =
            self.usage_discount(&ctx, &r, &rate_pb.offering_id, &product_id, amount, currency, &left).await?;
        let tax = self.tax_rule(&settings, r.compute_tax, &address, r.tax_exempt);
        let line = crate::domain::tax::taxed(amount, discount.amount, currency, tax.as_ref());
        Ok(Response::new(pb::RateUsageResponse {
            amount: Some(money_of(amount, currency)),
            breakdown: Some(pb::ItemBreakdown {
                model: model_pb(spec.model),
                tiers: tiers_pb(&rated, currency),
                unit_amount,
                tax_rate: tax.as_ref().map(|t| recur_money::plain(t.percent)).unwrap_or_default(),
                tax_jurisdiction: tax.as_ref().map(|t| t.jurisdiction.clone()).unwrap_or_default(),
                in_arrears: true,
                discount: (!discount.amount.is_zero()).then(|| money_of(discount.amount, currency)),
                coupon_codes: discount.codes,
                ..Default::default()
            }),
            amount_without_tax: Some(money_of(line.without_tax, currency)),
            tax: Some(money_of(line.tax, currency)),
            total: Some(money_of(line.amount, currency)),
            proration_fraction: fraction.round_dp(6).normalize().to_string(),
            discount: Some(money_of(discount.amount, currency)),
            fixed_amounts_left: wire::coupon_amounts_pb(&fixed_after, currency),
        }))
    }
}

/// A RateUsage request's `fixed_amounts_left` by code: each a code of its
/// coupons, once, an amount of 0 or more in the rate's `currency`.
fn fixed_amounts_left(r: &pb::RateUsageRequest, currency: Currency) -> AppResult<HashMap<String, Decimal>> {
    let mut v = Violations::new();
    let mut left = HashMap::new();
    for (i, a) in r.fixed_amounts_left.iter().enumerate() {
        let field = format!("fixed_amounts_left[{i}]");
        if !r.coupon_codes.contains(&a.code) {
            v.add(format!("{field}.code"), "not one of coupon_codes");
            continue;
        }
        let amount = match a.amount.as_ref().map(recur_proto::convert::parse_money) {
            None => {
                v.add(format!("{field}.amount"), "is required");
                continue;
            }
            Some(Err(recur_proto::convert::MoneyError::Currency(e))) => {
                v.add(format!("{field}.amount.currency_code"), e);
                continue;
            }
            Some(Err(recur_proto::convert::MoneyError::Amount(e))) => {
                v.add(format!("{field}.amount.amount"), e.to_string());
                continue;
            }
            Some(Ok(m)) => m,
        };
        if amount.currency() != currency {
            v.add(format!("{field}.amount.currency_code"), format!("must be the rate's currency {}", currency.code()));
        } else if amount.amount() < Decimal::ZERO {
            v.add(format!("{field}.amount.amount"), "must not be negative");
        } else if left.insert(a.code.clone(), amount.amount()).is_some() {
            v.add(format!("{field}.code"), "coupon listed twice");
        }
    }
    v.finish()?;
    Ok(left)
}

/// A request's coupon codes: at most [`MAX_COUPONS`], none empty, none twice.
fn check_coupon_codes(v: &mut Violations, codes: &[String]) {
    v.check(codes.len() <= MAX_COUPONS, "coupon_codes", format!("at most {MAX_COUPONS} coupons"));
    for (i, code) in codes.iter().enumerate() {
        if code.is_empty() {
            v.add(format!("coupon_codes[{i}]"), "is empty");
        } else if codes[..i].contains(code) {
            v.add(format!("coupon_codes[{i}]"), "coupon listed twice");
        }
    }
}

/// Coupon `c` as the pricing rules see it, `periods_applied` invoices in;
/// `None` for a fixed amount that has no amount in `currency`.
fn coupon_spec(c: &cpb::Coupon, periods_applied: u32, currency: Currency) -> Option<CouponSpec> {
    let discount = match cpb::DiscountType::try_from(c.discount_type) {
        Ok(cpb::DiscountType::FixedAmount) => Discount::Fixed(
            c.amounts_off.iter().find(|m| m.currency_code == currency.code()).map(|m| decimal(&m.amount))?,
        ),
        _ => Discount::Percent(decimal(&c.percent_off)),
    };
    let duration = match cpb::CouponDuration::try_from(c.duration) {
        Ok(cpb::CouponDuration::Repeating) => CouponDuration::Repeating(c.duration_periods.max(0) as u32),
        Ok(cpb::CouponDuration::Forever) => CouponDuration::Forever,
        _ => CouponDuration::Once,
    };
    Some(CouponSpec {
        code: c.code.clone(),
        discount,
        duration,
        periods_applied,
        offering_ids: c.offering_ids.clone(),
        product_ids: c.product_ids.clone(),
    })
}

/// `[start, end)`.
type Span = (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>);

/// The whole period and the part of it a RateUsage request bills
/// (`((full start, full end), (start, end))`), when it names a whole
/// period; what is wrong with them goes to `v`.
fn part_of_period(v: &mut Violations, r: &pb::RateUsageRequest) -> Option<(Span, Span)> {
    if !r.time_zone.is_empty() && Tz::from_str(&r.time_zone).is_err() {
        v.add("time_zone", format!("unknown IANA time zone {:?}", r.time_zone));
    }
    let (fs, fe) = match (&r.full_period_start, &r.full_period_end) {
        (None, None) => return None,
        (Some(fs), Some(fe)) => (from_timestamp(fs), from_timestamp(fe)),
        (None, Some(_)) => {
            v.add("full_period_start", "is required with full_period_end");
            return None;
        }
        (Some(_), None) => {
            v.add("full_period_end", "is required with full_period_start");
            return None;
        }
    };
    let (ps, pe) = (r.period_start.as_ref().and_then(from_timestamp), r.period_end.as_ref().and_then(from_timestamp));
    let (Some(fs), Some(fe), Some(ps), Some(pe)) = (fs, fe, ps, pe) else {
        v.add("period_start", "period_start, period_end and the full period must be valid times");
        return None;
    };
    if fs >= fe {
        v.add("full_period_end", "must come after full_period_start");
        return None;
    }
    if ps > pe || ps < fs || pe > fe {
        v.add("period_start", "the period must lie within the full period");
        return None;
    }
    Some(((fs, fe), (ps, pe)))
}
