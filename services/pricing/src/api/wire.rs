//! Between the wire and the engine: catalog protos into engine inputs,
//! engine results into protos.

use std::str::FromStr;

use chrono::NaiveDate;
use recur_error::Violations;
use recur_money::Currency;
use recur_proto::catalog::v1 as cpb;
use recur_proto::common::v1 as common;
use recur_proto::convert::{money_of, timestamp};
use recur_proto::pricing::v1 as pb;
use rust_decimal::Decimal;

use crate::domain::period::{Anchor, Period, Unit};
use crate::domain::quote::{self, Amounts, Billing, ItemKind};
use crate::domain::rating::{Model, PriceSpec, Rated, Tier};

pub const QUANTITY_PLACES: u32 = 6;

/// Catalog values were validated when they were stored; one that cannot be
/// read is treated as absent rather than panicking.
pub fn decimal(raw: &str) -> Decimal {
    Decimal::from_str(raw).unwrap_or_default()
}

pub fn opt_decimal(raw: &str) -> Option<Decimal> {
    if raw.is_empty() { None } else { Decimal::from_str(raw).ok() }
}

pub fn price_spec(p: &cpb::Price) -> PriceSpec {
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

pub fn model_pb(m: Model) -> i32 {
    (match m {
        Model::Flat => cpb::PricingModel::Flat,
        Model::PerUnit => cpb::PricingModel::PerUnit,
        Model::Tiered => cpb::PricingModel::Tiered,
        Model::Volume => cpb::PricingModel::Volume,
        Model::Stairstep => cpb::PricingModel::Stairstep,
        Model::Package => cpb::PricingModel::Package,
    }) as i32
}

pub fn period(r: &cpb::Rate) -> Period {
    let bp = r.billing_period.unwrap_or_default();
    let unit = match cpb::PeriodUnit::try_from(bp.unit) {
        Ok(cpb::PeriodUnit::Day) => Unit::Day,
        Ok(cpb::PeriodUnit::Week) => Unit::Week,
        Ok(cpb::PeriodUnit::Year) => Unit::Year,
        _ => Unit::Month,
    };
    Period { unit, count: bp.count.max(1) as u32 }
}

pub fn anchor_pb(a: Anchor) -> pb::BillingAnchor {
    // Days and months are at most 31; the casts cannot truncate.
    pb::BillingAnchor { day: a.day as i32, month: a.month as i32 }
}

/// A contract's anchor from the wire, each part checked (day 1-31, month
/// 0-12) and named under `field` when out of range.
pub fn anchor(v: &mut Violations, field: &str, a: &pb::BillingAnchor) -> Option<Anchor> {
    let day = u32::try_from(a.day).ok().filter(|d| (1..=31).contains(d));
    let month = u32::try_from(a.month).ok().filter(|m| *m <= 12);
    v.check(day.is_some(), format!("{field}.day"), "must be a day of the month, 1-31");
    v.check(month.is_some(), format!("{field}.month"), "must be a month, 1-12, or 0 for periods other than yearly");
    Anchor::new(day?, month?)
}

pub fn archived(status: i32) -> bool {
    status == cpb::CatalogStatus::Archived as i32
}

/// The quantity an item takes when the cart gives none: the product's
/// default, else its minimum, else one unit (no usage for metered products).
pub fn default_quantity(p: &cpb::Product) -> Decimal {
    opt_decimal(&p.default_quantity)
        .or_else(|| opt_decimal(&p.min_quantity))
        .unwrap_or(if p.kind == cpb::ProductKind::Metered as i32 { Decimal::ZERO } else { Decimal::ONE })
}

pub fn billing(p: &cpb::Product, r: &cpb::Rate) -> Billing {
    if p.kind == cpb::ProductKind::OneTime as i32 {
        Billing::OneTime
    } else if p.kind == cpb::ProductKind::Metered as i32 || r.timing == cpb::BillingTiming::InArrears as i32 {
        Billing::InArrears
    } else {
        Billing::InAdvance
    }
}

/// Parses a cart item's quantity; `None` when it was left empty.
pub fn quantity(v: &mut Violations, field: &str, raw: &str) -> Option<Decimal> {
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

pub fn tiers_pb(r: &Rated, c: Currency) -> Vec<pb::TierApplied> {
    r.tiers
        .iter()
        .map(|t| pb::TierApplied {
            tier_index: t.index as i32,
            quantity: recur_money::plain(t.quantity.normalize()),
            unit_amount: recur_money::plain(t.unit_amount),
            flat_amount: recur_money::plain(t.flat_amount),
            // A tier's share is shown exactly; only the line is rounded.
            amount: Some(common::Money {
                currency_code: c.code().into(),
                amount: recur_money::plain(t.amount.normalize()),
            }),
        })
        .collect()
}

type Four = (Option<common::Money>, Option<common::Money>, Option<common::Money>, Option<common::Money>);

fn amounts_pb(a: Amounts, c: Currency) -> Four {
    (
        Some(money_of(a.without_tax, c)),
        Some(money_of(a.discount, c)),
        Some(money_of(a.tax, c)),
        Some(money_of(a.amount, c)),
    )
}

pub fn quote_pb(q: &quote::Quote, start_date: NaiveDate, tz: &str) -> pb::Quote {
    let c = q.currency;
    let tax_rate = q.tax.as_ref().map(|t| recur_money::plain(t.percent)).unwrap_or_default();
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
                        quantity: recur_money::plain(i.quantity.normalize()),
                        amount_without_tax,
                        discount,
                        tax,
                        amount,
                        breakdown: Some(pb::ItemBreakdown {
                            model: i.price.as_ref().map(|p| model_pb(p.model)).unwrap_or_default(),
                            tiers: tiers_pb(&i.rated, c),
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
                            // The line's own `discount` always says it; the
                            // breakdown repeats it only when there is one.
                            discount: (!i.now.discount.is_zero()).then(|| money_of(i.now.discount, c)),
                            tax_rate: tax_rate.clone(),
                            tax_jurisdiction: jurisdiction.clone(),
                            in_arrears: i.billing == Billing::InArrears,
                            coupon_codes: i.coupon_codes.clone(),
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
                billing_anchor: Some(anchor_pb(o.anchor)),
                first_period_fraction: o.first_fraction.round_dp(10).normalize().to_string(),
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
        fixed_amounts_left: coupon_amounts_pb(&q.fixed_left, c),
    }
}

/// `(code, amount)` pairs as CouponAmount messages.
pub fn coupon_amounts_pb(amounts: &[(String, Decimal)], c: Currency) -> Vec<pb::CouponAmount> {
    amounts.iter().map(|(code, a)| pb::CouponAmount { code: code.clone(), amount: Some(money_of(*a, c)) }).collect()
}

/// A custom price of a cart item, checked for the shape its model needs
/// (`field` names it in the request); `None` when refused.
pub fn custom_spec(v: &mut Violations, field: &str, p: &cpb::Price) -> Option<PriceSpec> {
    let before = v.len();
    let amount = |v: &mut Violations, name: &str, raw: &str, required: bool| {
        if raw.is_empty() {
            if required {
                v.add(format!("{field}.{name}"), "is required by the pricing model");
            }
            return;
        }
        if recur_money::parse_non_negative(raw).is_err() {
            v.add(format!("{field}.{name}"), "must be a non-negative decimal");
        }
    };
    match cpb::PricingModel::try_from(p.model) {
        Ok(cpb::PricingModel::Flat) => amount(v, "flat_amount", &p.flat_amount, true),
        Ok(cpb::PricingModel::PerUnit | cpb::PricingModel::Package) => amount(v, "unit_amount", &p.unit_amount, true),
        Ok(cpb::PricingModel::Tiered | cpb::PricingModel::Volume | cpb::PricingModel::Stairstep) => {
            if p.tiers.is_empty() {
                v.add(format!("{field}.tiers"), "the pricing model needs at least one tier");
            }
            for (i, t) in p.tiers.iter().enumerate() {
                amount(v, &format!("tiers[{i}].unit_amount"), &t.unit_amount, false);
                amount(v, &format!("tiers[{i}].flat_amount"), &t.flat_amount, false);
                amount(v, &format!("tiers[{i}].up_to"), &t.up_to, false);
            }
        }
        _ => v.add(format!("{field}.model"), "is required"),
    }
    (v.len() == before).then(|| price_spec(p))
}
