//! Catalog resources as a caller describes them — through the API or in a
//! catalog document — and the one place that turns such a description into
//! a valid resource. Both paths share every rule, so a document can never
//! create what the API would refuse, nor the other way round.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use recur_error::Violations;
use recur_money::Currency;
use rust_decimal::Decimal;

use super::validate::{self as check, QUANTITY_PLACES, UNIT_PRICE_PLACES};
use super::*;

#[derive(Clone, Debug, Default)]
pub struct ProductInput {
    pub handle: String,
    pub name: String,
    pub description: String,
    pub kind: Option<ProductKind>,
    pub unit_name: String,
    pub tax_code: String,
    pub min_quantity: String,
    pub max_quantity: String,
    pub default_quantity: String,
    pub aggregation: Option<Aggregation>,
    pub aggregation_property: String,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, Default)]
pub struct TierInput {
    pub up_to: String,
    pub unit_amount: String,
    pub flat_amount: String,
}

#[derive(Clone, Debug, Default)]
pub struct PriceInput {
    /// Where this price sits in the request (`rate.prices[0]`,
    /// `offerings[1].rates[0].prices.seats`), for violations.
    pub path: String,
    /// The product it prices: an id or a handle.
    pub product: String,
    pub model: Option<PricingModel>,
    pub unit_amount: String,
    pub flat_amount: String,
    pub tiers: Vec<TierInput>,
    pub package_size: i64,
}

#[derive(Clone, Debug, Default)]
pub struct RateInput {
    pub handle: String,
    pub name: String,
    pub description: String,
    pub currency: String,
    pub period_unit: Option<PeriodUnit>,
    pub period_count: i64,
    pub timing: Option<Timing>,
    pub trial_days: i64,
    pub contract_term_periods: i64,
    pub auto_renew: bool,
    pub notice_period_days: i64,
    pub setup_fee: String,
    pub prices: Vec<PriceInput>,
    pub metadata: Metadata,
}

#[derive(Clone, Debug, Default)]
pub struct CouponInput {
    pub code: String,
    pub name: String,
    pub discount_type: Option<DiscountType>,
    pub percent_off: String,
    /// (currency, amount) pairs.
    pub amounts_off: Vec<(String, String)>,
    pub duration: Option<CouponDuration>,
    pub duration_periods: i64,
    /// Offerings and products it applies to: ids or handles.
    pub offerings: Vec<String>,
    pub products: Vec<String>,
    pub max_redemptions: i64,
    pub redeem_by: Option<DateTime<Utc>>,
    pub metadata: Metadata,
}

fn whole(v: &mut Violations, field: String, n: i64, max: i64) -> u32 {
    if !(0..=max).contains(&n) {
        v.add(field, format!("must be between 0 and {max}"));
    }
    n.clamp(0, max) as u32
}

fn handle(v: &mut Violations, field: String, raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    check::handle(v, &field, raw);
    Some(raw.to_string())
}

/// A product from its description. `prefix` names it in the request.
pub fn product(v: &mut Violations, prefix: &str, p: &ProductInput, id: String, now: DateTime<Utc>) -> Product {
    check::required(v, &format!("{prefix}.name"), &p.name);
    check::max_len(v, &format!("{prefix}.name"), &p.name, check::NAME_CHARS);
    check::max_len(v, &format!("{prefix}.description"), &p.description, check::TEXT_CHARS);
    check::metadata(v, &format!("{prefix}.metadata"), &p.metadata);
    if p.kind.is_none() {
        v.add(format!("{prefix}.kind"), "is required: RECURRING, PER_UNIT, ON_OFF, METERED or ONE_TIME");
    }
    let product = Product {
        id,
        handle: handle(v, format!("{prefix}.handle"), &p.handle),
        name: p.name.trim().to_string(),
        description: p.description.clone(),
        kind: p.kind.unwrap_or(ProductKind::Recurring),
        unit_name: p.unit_name.clone(),
        tax_code: p.tax_code.clone(),
        min_quantity: check::decimal(v, &format!("{prefix}.min_quantity"), &p.min_quantity, QUANTITY_PLACES),
        max_quantity: check::decimal(v, &format!("{prefix}.max_quantity"), &p.max_quantity, QUANTITY_PLACES),
        default_quantity: check::decimal(
            v,
            &format!("{prefix}.default_quantity"),
            &p.default_quantity,
            QUANTITY_PLACES,
        ),
        aggregation: aggregation(v, prefix, p),
        aggregation_property: p.aggregation_property.trim().to_string(),
        status: Status::Active,
        metadata: p.metadata.clone(),
        created_at: now,
        updated_at: now,
    };
    check::product_bounds(v, prefix, &product);
    product
}

/// A product's aggregation: a METERED product's (SUM by default); no other
/// kind has one. UNIQUE_COUNT needs the property it counts, and only it
/// takes one.
fn aggregation(v: &mut Violations, prefix: &str, p: &ProductInput) -> Option<Aggregation> {
    let property = p.aggregation_property.trim();
    check::max_len(v, &format!("{prefix}.aggregation_property"), property, check::NAME_CHARS);
    if p.kind != Some(ProductKind::Metered) {
        if p.aggregation.is_some() {
            v.add(format!("{prefix}.aggregation"), "only a METERED product aggregates usage");
        }
        if !property.is_empty() {
            v.add(format!("{prefix}.aggregation_property"), "only a METERED product aggregates usage");
        }
        return None;
    }
    let agg = p.aggregation.unwrap_or(Aggregation::Sum);
    if agg == Aggregation::UniqueCount && property.is_empty() {
        v.add(
            format!("{prefix}.aggregation_property"),
            "is required for UNIQUE_COUNT: the property whose distinct values are counted",
        );
    }
    if agg != Aggregation::UniqueCount && !property.is_empty() {
        v.add(format!("{prefix}.aggregation_property"), "is only for UNIQUE_COUNT");
    }
    Some(agg)
}

/// A rate of `offering` from its description. `resolve` turns a product
/// reference (id or handle) into a product id. `None` when the description
/// is too broken to make a rate of (the violations say why).
#[allow(clippy::too_many_arguments)]
pub fn rate(
    v: &mut Violations,
    prefix: &str,
    r: &RateInput,
    offering: &Offering,
    resolve: &dyn Fn(&str) -> Option<String>,
    id: String,
    version: u32,
    now: DateTime<Utc>,
) -> Option<Rate> {
    check::required(v, &format!("{prefix}.name"), &r.name);
    check::max_len(v, &format!("{prefix}.name"), &r.name, check::NAME_CHARS);
    check::metadata(v, &format!("{prefix}.metadata"), &r.metadata);
    let handle = handle(v, format!("{prefix}.handle"), &r.handle);
    let currency = Currency::from_code(&r.currency);
    if currency.is_none() {
        v.add(
            format!("{prefix}.currency_code"),
            format!("unknown ISO 4217 currency {:?}", recur_error::excerpt(&r.currency)),
        );
    }
    if r.period_unit.is_none() {
        v.add(format!("{prefix}.billing_period.unit"), "is required: DAY, WEEK, MONTH or YEAR");
    }
    if !(1..=1000).contains(&r.period_count) {
        v.add(format!("{prefix}.billing_period.count"), "must be between 1 and 1000");
    }
    let trial_days = whole(v, format!("{prefix}.trial_days"), r.trial_days, 3650);
    let contract_term_periods = whole(v, format!("{prefix}.contract_term_periods"), r.contract_term_periods, 1200);
    let notice_period_days = whole(v, format!("{prefix}.notice_period_days"), r.notice_period_days, 3650);
    let setup_fee = check::amount(v, &format!("{prefix}.setup_fee"), &r.setup_fee, currency);
    if r.auto_renew && contract_term_periods == 0 {
        v.add(format!("{prefix}.auto_renew"), "only a fixed-term contract (contract_term_periods > 0) renews");
    }

    let mut prices = Vec::with_capacity(r.prices.len());
    let mut priced = HashSet::new();
    for p in &r.prices {
        let path = &p.path;
        let product_id = resolve(&p.product);
        match &product_id {
            None => v.add(format!("{path}.product_id"), format!("no product {:?}", recur_error::excerpt(&p.product))),
            Some(pid) if !offering.product_ids.contains(pid) => v.add(
                format!("{path}.product_id"),
                format!("{:?} is not a product of the offering", recur_error::excerpt(&p.product)),
            ),
            Some(pid) if !priced.insert(pid.clone()) => v.add(format!("{path}.product_id"), "product priced twice"),
            Some(_) => {}
        }
        if p.model.is_none() {
            v.add(format!("{path}.model"), "is required: FLAT, PER_UNIT, TIERED, VOLUME, STAIRSTEP or PACKAGE");
        }
        let tiers = p
            .tiers
            .iter()
            .enumerate()
            .map(|(t, tier)| Tier {
                up_to: check::decimal(v, &format!("{path}.tiers[{t}].up_to"), &tier.up_to, QUANTITY_PLACES),
                unit_amount: check::decimal(
                    v,
                    &format!("{path}.tiers[{t}].unit_amount"),
                    &tier.unit_amount,
                    UNIT_PRICE_PLACES,
                )
                .unwrap_or_default(),
                flat_amount: check::amount(v, &format!("{path}.tiers[{t}].flat_amount"), &tier.flat_amount, currency)
                    .unwrap_or_default(),
            })
            .collect();
        let price = Price {
            product_id: product_id.unwrap_or_default(),
            model: p.model.unwrap_or(PricingModel::Flat),
            unit_amount: check::decimal(v, &format!("{path}.unit_amount"), &p.unit_amount, UNIT_PRICE_PLACES),
            flat_amount: check::amount(v, &format!("{path}.flat_amount"), &p.flat_amount, currency),
            tiers,
            package_size: (p.package_size != 0).then_some(p.package_size),
        };
        if p.model.is_some() {
            check::price_shape(v, path, &price);
        }
        prices.push(price);
    }
    for pid in offering.product_ids.iter().filter(|pid| !priced.contains(*pid)) {
        v.add(format!("{prefix}.prices"), format!("missing a price for product {pid}"));
    }
    let (currency, unit) = (currency?, r.period_unit?);
    Some(Rate {
        id,
        handle,
        offering_id: offering.id.clone(),
        name: r.name.trim().to_string(),
        description: r.description.clone(),
        currency,
        billing_period: BillingPeriod { unit, count: r.period_count.clamp(1, 1000) as u32 },
        timing: r.timing.unwrap_or(Timing::InAdvance),
        trial_days,
        contract_term_periods,
        auto_renew: r.auto_renew,
        notice_period_days,
        setup_fee,
        prices,
        status: Status::Active,
        metadata: r.metadata.clone(),
        version,
        created_at: now,
        updated_at: now,
    })
}

/// A coupon from its description. `offering` and `product` resolve
/// references (ids or handles) to ids.
pub fn coupon(
    v: &mut Violations,
    prefix: &str,
    c: &CouponInput,
    offering: &dyn Fn(&str) -> Option<String>,
    product: &dyn Fn(&str) -> Option<String>,
    id: String,
    now: DateTime<Utc>,
) -> Coupon {
    let code_ok = !c.code.is_empty()
        && c.code.len() <= check::CODE_CHARS
        && c.code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    v.check(code_ok, format!("{prefix}.code"), "must be 1-100 letters, digits, '-' or '_'");
    check::max_len(v, &format!("{prefix}.name"), &c.name, check::NAME_CHARS);
    check::metadata(v, &format!("{prefix}.metadata"), &c.metadata);
    let mut percent_off = None;
    let mut amounts_off = BTreeMap::new();
    match c.discount_type {
        None => v.add(format!("{prefix}.discount_type"), "is required: PERCENT or FIXED_AMOUNT"),
        Some(DiscountType::Percent) => {
            let field = format!("{prefix}.percent_off");
            if c.percent_off.is_empty() {
                v.add(field.clone(), "is required for a PERCENT coupon");
            }
            percent_off = check::decimal(v, &field, &c.percent_off, 4);
            if percent_off.is_some_and(|p| p.is_zero() || p > Decimal::ONE_HUNDRED) {
                v.add(field, "must be greater than 0 and at most 100");
            }
            if !c.amounts_off.is_empty() {
                v.add(format!("{prefix}.amounts_off"), "a PERCENT coupon takes no fixed amounts");
            }
        }
        Some(DiscountType::FixedAmount) => {
            if c.amounts_off.is_empty() {
                v.add(
                    format!("{prefix}.amounts_off"),
                    "a FIXED_AMOUNT coupon needs an amount in at least one currency",
                );
            }
            if !c.percent_off.is_empty() {
                v.add(format!("{prefix}.percent_off"), "a FIXED_AMOUNT coupon takes no percentage");
            }
            for (i, (code, amount)) in c.amounts_off.iter().enumerate() {
                let field = format!("{prefix}.amounts_off[{i}]");
                match Currency::from_code(code) {
                    None => v.add(
                        format!("{field}.currency_code"),
                        format!("unknown currency {:?}", recur_error::excerpt(code)),
                    ),
                    Some(cur) => {
                        if amount.is_empty() {
                            v.add(format!("{field}.amount"), "is required");
                        }
                        if let Some(a) = check::amount(v, &format!("{field}.amount"), amount, Some(cur)) {
                            if a.is_zero() {
                                v.add(format!("{field}.amount"), "must be greater than 0");
                            }
                            if amounts_off.insert(code.clone(), a).is_some() {
                                v.add(format!("{field}.currency_code"), "currency listed twice");
                            }
                        }
                    }
                }
            }
        }
    }
    let duration_periods = whole(v, format!("{prefix}.duration_periods"), c.duration_periods, 1200);
    match c.duration {
        None => v.add(format!("{prefix}.duration"), "is required: ONCE, REPEATING or FOREVER"),
        Some(CouponDuration::Repeating) if duration_periods == 0 => {
            v.add(format!("{prefix}.duration_periods"), "a REPEATING coupon lasts at least one period")
        }
        Some(CouponDuration::Once | CouponDuration::Forever) if duration_periods != 0 => {
            v.add(format!("{prefix}.duration_periods"), "only REPEATING coupons take a number of periods")
        }
        _ => {}
    }
    let max_redemptions = whole(v, format!("{prefix}.max_redemptions"), c.max_redemptions, i64::from(u32::MAX >> 1));
    let mut resolve_all = |what: &str, refs: &[String], resolve: &dyn Fn(&str) -> Option<String>| -> Vec<String> {
        let mut out = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            match resolve(r) {
                Some(id) if !out.contains(&id) => out.push(id),
                Some(_) => v.add(format!("{prefix}.{what}[{i}]"), "listed twice"),
                None => v.add(
                    format!("{prefix}.{what}[{i}]"),
                    format!("no such {} {:?}", what.trim_end_matches("_ids"), recur_error::excerpt(r)),
                ),
            }
        }
        out
    };
    let offering_ids = resolve_all("offering_ids", &c.offerings, offering);
    let product_ids = resolve_all("product_ids", &c.products, product);
    if c.redeem_by.is_some_and(|t| t <= now) {
        v.add(format!("{prefix}.redeem_by"), "must lie in the future");
    }
    Coupon {
        id,
        code: c.code.clone(),
        name: if c.name.is_empty() { c.code.clone() } else { c.name.trim().to_string() },
        discount_type: c.discount_type.unwrap_or(DiscountType::Percent),
        percent_off,
        amounts_off,
        duration: c.duration.unwrap_or(CouponDuration::Once),
        duration_periods,
        offering_ids,
        product_ids,
        max_redemptions,
        redeem_by: c.redeem_by,
        status: Status::Active,
        metadata: c.metadata.clone(),
        created_at: now,
        updated_at: now,
    }
}

/// Whether two rates charge the same: everything but the names, metadata,
/// ids, versions and times. A rate whose terms change is a new rate.
pub fn same_terms(a: &Rate, b: &Rate) -> bool {
    a.offering_id == b.offering_id
        && a.currency == b.currency
        && a.billing_period == b.billing_period
        && a.timing == b.timing
        && a.trial_days == b.trial_days
        && a.contract_term_periods == b.contract_term_periods
        && a.auto_renew == b.auto_renew
        && a.notice_period_days == b.notice_period_days
        && a.setup_fee.map(|d| d.normalize()) == b.setup_fee.map(|d| d.normalize())
        && same_prices(&a.prices, &b.prices)
}

fn same_prices(a: &[Price], b: &[Price]) -> bool {
    let norm = |p: &Price| {
        (
            p.product_id.clone(),
            p.model,
            p.unit_amount.map(|d| d.normalize()),
            p.flat_amount.map(|d| d.normalize()),
            p.tiers
                .iter()
                .map(|t| (t.up_to.map(|d| d.normalize()), t.unit_amount.normalize(), t.flat_amount.normalize()))
                .collect::<Vec<_>>(),
            p.package_size,
        )
    };
    let mut a: Vec<_> = a.iter().map(norm).collect();
    let mut b: Vec<_> = b.iter().map(norm).collect();
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    a == b
}

/// Whether a coupon's discount terms (what it takes off, for how long, on
/// what) are the same; those never change once customers hold the code.
pub fn same_coupon_terms(a: &Coupon, b: &Coupon) -> bool {
    let mut ao = a.offering_ids.clone();
    let mut bo = b.offering_ids.clone();
    let mut ap = a.product_ids.clone();
    let mut bp = b.product_ids.clone();
    ao.sort();
    bo.sort();
    ap.sort();
    bp.sort();
    a.discount_type == b.discount_type
        && a.percent_off.map(|d| d.normalize()) == b.percent_off.map(|d| d.normalize())
        && a.amounts_off
            .iter()
            .map(|(k, v)| (k, v.normalize()))
            .eq(b.amounts_off.iter().map(|(k, v)| (k, v.normalize())))
        && a.duration == b.duration
        && a.duration_periods == b.duration_periods
        && ao == bo
        && ap == bp
}
