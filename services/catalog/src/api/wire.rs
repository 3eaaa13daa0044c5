//! Conversions between the wire (proto) and the catalog's domain, and the
//! request pieces every list shares.

use recur_error::{AppError, AppResult, Violations};
use recur_proto::catalog::v1 as pb;
use recur_proto::common::v1::SortDirection;
use recur_proto::convert::timestamp;
use recur_storage::page::{Cursor, SortValue, page_size};
use rust_decimal::Decimal;

use crate::domain::input::{CouponInput, PriceInput, ProductInput, RateInput, TierInput};
use crate::domain::plan::Action;
use crate::domain::validate as check;
use crate::domain::*;

// ---------- enums between wire and domain ----------

pub(super) fn status_to_pb(s: Status) -> i32 {
    match s {
        Status::Active => pb::CatalogStatus::Active as i32,
        Status::Archived => pb::CatalogStatus::Archived as i32,
    }
}

pub(super) fn status_filter(v: &mut Violations, field: &str, raw: i32) -> Option<Status> {
    match pb::CatalogStatus::try_from(raw) {
        Ok(pb::CatalogStatus::Unspecified) => None,
        Ok(pb::CatalogStatus::Active) => Some(Status::Active),
        Ok(pb::CatalogStatus::Archived) => Some(Status::Archived),
        Err(_) => {
            v.add(field, "unknown status");
            None
        }
    }
}

pub(super) fn kind_from_pb(raw: i32) -> Option<ProductKind> {
    match pb::ProductKind::try_from(raw).ok()? {
        pb::ProductKind::Unspecified => None,
        pb::ProductKind::Recurring => Some(ProductKind::Recurring),
        pb::ProductKind::PerUnit => Some(ProductKind::PerUnit),
        pb::ProductKind::OnOff => Some(ProductKind::OnOff),
        pb::ProductKind::Metered => Some(ProductKind::Metered),
        pb::ProductKind::OneTime => Some(ProductKind::OneTime),
    }
}

pub(super) fn kind_to_pb(k: ProductKind) -> i32 {
    (match k {
        ProductKind::Recurring => pb::ProductKind::Recurring,
        ProductKind::PerUnit => pb::ProductKind::PerUnit,
        ProductKind::OnOff => pb::ProductKind::OnOff,
        ProductKind::Metered => pb::ProductKind::Metered,
        ProductKind::OneTime => pb::ProductKind::OneTime,
    }) as i32
}

pub(super) fn aggregation_from_pb(raw: i32) -> Option<Aggregation> {
    match pb::UsageAggregation::try_from(raw).ok()? {
        pb::UsageAggregation::Unspecified => None,
        pb::UsageAggregation::Sum => Some(Aggregation::Sum),
        pb::UsageAggregation::Count => Some(Aggregation::Count),
        pb::UsageAggregation::Max => Some(Aggregation::Max),
        pb::UsageAggregation::UniqueCount => Some(Aggregation::UniqueCount),
        pb::UsageAggregation::Latest => Some(Aggregation::Latest),
    }
}

pub(super) fn aggregation_to_pb(a: Option<Aggregation>) -> i32 {
    (match a {
        None => pb::UsageAggregation::Unspecified,
        Some(Aggregation::Sum) => pb::UsageAggregation::Sum,
        Some(Aggregation::Count) => pb::UsageAggregation::Count,
        Some(Aggregation::Max) => pb::UsageAggregation::Max,
        Some(Aggregation::UniqueCount) => pb::UsageAggregation::UniqueCount,
        Some(Aggregation::Latest) => pb::UsageAggregation::Latest,
    }) as i32
}

pub(super) fn model_from_pb(raw: i32) -> Option<PricingModel> {
    match pb::PricingModel::try_from(raw).ok()? {
        pb::PricingModel::Unspecified => None,
        pb::PricingModel::Flat => Some(PricingModel::Flat),
        pb::PricingModel::PerUnit => Some(PricingModel::PerUnit),
        pb::PricingModel::Tiered => Some(PricingModel::Tiered),
        pb::PricingModel::Volume => Some(PricingModel::Volume),
        pb::PricingModel::Stairstep => Some(PricingModel::Stairstep),
        pb::PricingModel::Package => Some(PricingModel::Package),
    }
}

pub(super) fn model_to_pb(m: PricingModel) -> i32 {
    (match m {
        PricingModel::Flat => pb::PricingModel::Flat,
        PricingModel::PerUnit => pb::PricingModel::PerUnit,
        PricingModel::Tiered => pb::PricingModel::Tiered,
        PricingModel::Volume => pb::PricingModel::Volume,
        PricingModel::Stairstep => pb::PricingModel::Stairstep,
        PricingModel::Package => pb::PricingModel::Package,
    }) as i32
}

pub(super) fn unit_from_pb(raw: i32) -> Option<PeriodUnit> {
    match pb::PeriodUnit::try_from(raw).ok()? {
        pb::PeriodUnit::Unspecified => None,
        pb::PeriodUnit::Day => Some(PeriodUnit::Day),
        pb::PeriodUnit::Week => Some(PeriodUnit::Week),
        pb::PeriodUnit::Month => Some(PeriodUnit::Month),
        pb::PeriodUnit::Year => Some(PeriodUnit::Year),
    }
}

pub(super) fn unit_to_pb(u: PeriodUnit) -> i32 {
    (match u {
        PeriodUnit::Day => pb::PeriodUnit::Day,
        PeriodUnit::Week => pb::PeriodUnit::Week,
        PeriodUnit::Month => pb::PeriodUnit::Month,
        PeriodUnit::Year => pb::PeriodUnit::Year,
    }) as i32
}

pub(super) fn timing_to_pb(t: Timing) -> i32 {
    (match t {
        Timing::InAdvance => pb::BillingTiming::InAdvance,
        Timing::InArrears => pb::BillingTiming::InArrears,
    }) as i32
}

pub(super) fn proration_to_pb(p: ProrationMode) -> i32 {
    (match p {
        ProrationMode::Day => pb::ProrationMode::Day,
        ProrationMode::Second => pb::ProrationMode::Second,
    }) as i32
}

pub(super) fn final_action_to_pb(a: DunningFinalAction) -> i32 {
    (match a {
        DunningFinalAction::CancelSubscription => pb::DunningFinalAction::CancelSubscription,
        DunningFinalAction::MarkUncollectible => pb::DunningFinalAction::MarkUncollectible,
        DunningFinalAction::LeavePastDue => pb::DunningFinalAction::LeavePastDue,
    }) as i32
}

pub(super) fn dec_str(d: Option<Decimal>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

// ---------- encoding ----------

pub(super) fn product_pb(p: &Product) -> pb::Product {
    pb::Product {
        id: p.id.clone(),
        handle: p.handle.clone().unwrap_or_default(),
        name: p.name.clone(),
        description: p.description.clone(),
        kind: kind_to_pb(p.kind),
        unit_name: p.unit_name.clone(),
        tax_code: p.tax_code.clone(),
        min_quantity: dec_str(p.min_quantity),
        max_quantity: dec_str(p.max_quantity),
        default_quantity: dec_str(p.default_quantity),
        aggregation: aggregation_to_pb(p.aggregation),
        aggregation_property: p.aggregation_property.clone(),
        status: status_to_pb(p.status),
        metadata: p.metadata.clone(),
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
    }
}

pub(super) fn offering_pb(o: &Offering) -> pb::Offering {
    pb::Offering {
        id: o.id.clone(),
        handle: o.handle.clone().unwrap_or_default(),
        name: o.name.clone(),
        description: o.description.clone(),
        product_ids: o.product_ids.clone(),
        status: status_to_pb(o.status),
        metadata: o.metadata.clone(),
        create_time: Some(timestamp(o.created_at)),
        update_time: Some(timestamp(o.updated_at)),
    }
}

pub(super) fn price_pb(p: &Price) -> pb::Price {
    pb::Price {
        product_id: p.product_id.clone(),
        model: model_to_pb(p.model),
        unit_amount: dec_str(p.unit_amount),
        flat_amount: dec_str(p.flat_amount),
        tiers: p
            .tiers
            .iter()
            .map(|t| pb::Tier {
                up_to: dec_str(t.up_to),
                unit_amount: t.unit_amount.to_string(),
                flat_amount: t.flat_amount.to_string(),
            })
            .collect(),
        package_size: p.package_size.unwrap_or(0),
    }
}

pub(super) fn rate_pb(r: &Rate) -> pb::Rate {
    pb::Rate {
        id: r.id.clone(),
        handle: r.handle.clone().unwrap_or_default(),
        offering_id: r.offering_id.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        currency_code: r.currency.code().to_string(),
        billing_period: Some(pb::BillingPeriod {
            unit: unit_to_pb(r.billing_period.unit),
            count: r.billing_period.count as i32,
        }),
        timing: timing_to_pb(r.timing),
        trial_days: r.trial_days as i32,
        contract_term_periods: r.contract_term_periods as i32,
        auto_renew: r.auto_renew,
        notice_period_days: r.notice_period_days as i32,
        setup_fee: dec_str(r.setup_fee),
        prices: r.prices.iter().map(price_pb).collect(),
        status: status_to_pb(r.status),
        metadata: r.metadata.clone(),
        create_time: Some(timestamp(r.created_at)),
        update_time: Some(timestamp(r.updated_at)),
        version: r.version as i32,
    }
}

pub(super) fn settings_pb(tenant: &str, s: &TenantSettings) -> pb::TenantSettings {
    pb::TenantSettings {
        tenant_id: tenant.to_string(),
        default_currency: s.default_currency.code().to_string(),
        time_zone: s.time_zone.clone(),
        bill_group_defaults: Some(pb::BillGroupDefaults {
            auto_email_invoice: s.auto_email_invoice,
            collect_invoice_balance_automatically: s.collect_invoice_balance_automatically,
        }),
        proration_mode: proration_to_pb(s.proration_mode),
        tax_rates: s
            .tax_rates
            .iter()
            .map(|t| pb::TaxRate {
                country: t.country.clone(),
                state: t.state.clone(),
                percent: t.percent.to_string(),
                name: t.name.clone(),
            })
            .collect(),
        prices_include_tax: s.prices_include_tax,
        dunning: Some(pb::DunningSchedule {
            retry_offset_days: s.dunning.retry_offset_days.iter().map(|d| *d as i32).collect(),
            final_action: final_action_to_pb(s.dunning.final_action),
        }),
        max_amounts: s
            .ceilings()
            .iter()
            .map(|m| (m.currency().code().to_string(), recur_money::plain(m.amount())))
            .collect(),
        subscription_defaults: Some(pb::SubscriptionDefaults {
            change_at_period_end: s.subscription_defaults.change_at_period_end,
            credit_unused_on_cancel: s.subscription_defaults.credit_unused_on_cancel,
            invoice_due_days: s.subscription_defaults.invoice_due_days as i32,
            invoice_grace_period: Some(prost_types::Duration {
                seconds: i64::from(
                    s.subscription_defaults.invoice_grace_secs.unwrap_or(crate::domain::DEFAULT_GRACE_SECS),
                ),
                nanos: 0,
            }),
        }),
        update_time: s.updated_at.map(timestamp),
    }
}

// ---------- shared request pieces ----------

pub(super) fn lookup<'a>(field: &str, id: Option<&'a str>, handle: Option<&'a str>) -> AppResult<Lookup<'a>> {
    match (id, handle) {
        (Some(id), _) if !id.is_empty() => Ok(Lookup::Id(id)),
        (_, Some(h)) if !h.is_empty() => Ok(Lookup::Handle(h)),
        _ => Err(AppError::invalid(field, "give an id or a handle")),
    }
}

/// A reference that may be an id or a handle.
pub(super) fn reference(s: &str) -> Lookup<'_> {
    if recur_id::looks_like_id(s) { Lookup::Id(s) } else { Lookup::Handle(s) }
}

/// `name_field` is what a name ordering is called for this resource
/// ("name", or "code" for coupons).
pub(super) fn page_query(
    v: &mut Violations,
    size: i32,
    token: &str,
    order_by: &str,
    direction: i32,
    name_field: &str,
) -> PageQuery {
    if size < 0 {
        v.add("page_size", "must not be negative");
    }
    let order = match order_by {
        "" | "create_time" => Order::CreateTime,
        o if o == name_field => Order::Name,
        _ => {
            v.add("order_by", format!("supported: create_time, {name_field}"));
            Order::CreateTime
        }
    };
    let after = match Cursor::decode(token) {
        Ok(Some(c)) => {
            let fits = matches!(
                (&c.value, order),
                (SortValue::Time(_), Order::CreateTime) | (SortValue::Text(_), Order::Name)
            );
            if !fits {
                v.add("page_token", "was issued for another ordering");
            }
            Some(c)
        }
        Ok(None) => None,
        Err(_) => {
            v.add("page_token", "is not a token this API issued");
            None
        }
    };
    let descending = match SortDirection::try_from(direction) {
        Ok(SortDirection::Desc) => true,
        Ok(_) => false,
        Err(_) => {
            v.add("direction", "unknown direction");
            false
        }
    };
    // One row more than asked tells whether another page follows.
    PageQuery { after, limit: page_size(size) + 1, order, descending }
}

/// Splits the extra row off a page and makes the next page token.
/// `key` gives a row's creation time, name and id.
pub(super) fn finish_page<T>(
    rows: Vec<T>,
    page: &PageQuery,
    key: impl Fn(&T) -> (chrono::DateTime<chrono::Utc>, String, String),
) -> (Vec<T>, String) {
    recur_storage::page::finish(rows, page.limit - 1, |r| {
        let (time, name, id) = key(r);
        match page.order {
            Order::CreateTime => Cursor::time(time, id),
            Order::Name => Cursor::text(name, id),
        }
    })
}

pub(super) fn handle_input(v: &mut Violations, field: &str, raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    check::handle(v, field, raw);
    Some(raw.to_string())
}

pub(super) fn unique_violation(e: recur_storage::StorageError, field: &str, what: &str) -> AppError {
    if e.is_unique() {
        AppError::already_exists("HANDLE_TAKEN", format!("another {what} already has this handle"))
            .with_field(field, "handle already in use")
    } else {
        e.into()
    }
}

pub(super) fn mask_paths(mask: &Option<prost_types::FieldMask>) -> Vec<String> {
    mask.as_ref().map(|m| m.paths.clone()).unwrap_or_default()
}

// ---------- products ----------

pub(super) fn discount_to_pb(d: DiscountType) -> i32 {
    (match d {
        DiscountType::Percent => pb::DiscountType::Percent,
        DiscountType::FixedAmount => pb::DiscountType::FixedAmount,
    }) as i32
}

pub(super) fn duration_to_pb(d: CouponDuration) -> i32 {
    (match d {
        CouponDuration::Once => pb::CouponDuration::Once,
        CouponDuration::Repeating => pb::CouponDuration::Repeating,
        CouponDuration::Forever => pb::CouponDuration::Forever,
    }) as i32
}

pub(super) fn coupon_pb(c: &Coupon) -> pb::Coupon {
    pb::Coupon {
        id: c.id.clone(),
        code: c.code.clone(),
        name: c.name.clone(),
        discount_type: discount_to_pb(c.discount_type),
        percent_off: dec_str(c.percent_off),
        amounts_off: c
            .amounts_off
            .iter()
            .map(|(code, amount)| recur_proto::common::v1::Money {
                currency_code: code.clone(),
                amount: amount.to_string(),
            })
            .collect(),
        duration: duration_to_pb(c.duration),
        duration_periods: c.duration_periods as i32,
        offering_ids: c.offering_ids.clone(),
        product_ids: c.product_ids.clone(),
        max_redemptions: c.max_redemptions as i32,
        redeem_by: c.redeem_by.map(timestamp),
        status: status_to_pb(c.status),
        metadata: c.metadata.clone(),
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
    }
}

pub(super) fn product_in(p: &pb::Product) -> ProductInput {
    ProductInput {
        handle: p.handle.clone(),
        name: p.name.clone(),
        description: p.description.clone(),
        kind: kind_from_pb(p.kind),
        unit_name: p.unit_name.clone(),
        tax_code: p.tax_code.clone(),
        min_quantity: p.min_quantity.clone(),
        max_quantity: p.max_quantity.clone(),
        default_quantity: p.default_quantity.clone(),
        aggregation: aggregation_from_pb(p.aggregation),
        aggregation_property: p.aggregation_property.clone(),
        metadata: p.metadata.clone(),
    }
}

pub(super) fn rate_in(r: &pb::Rate) -> RateInput {
    let period = r.billing_period.unwrap_or_default();
    RateInput {
        handle: r.handle.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        currency: r.currency_code.clone(),
        period_unit: unit_from_pb(period.unit),
        period_count: i64::from(period.count),
        timing: match pb::BillingTiming::try_from(r.timing) {
            Ok(pb::BillingTiming::InArrears) => Some(Timing::InArrears),
            Ok(_) => Some(Timing::InAdvance),
            Err(_) => None,
        },
        trial_days: i64::from(r.trial_days),
        contract_term_periods: i64::from(r.contract_term_periods),
        auto_renew: r.auto_renew,
        notice_period_days: i64::from(r.notice_period_days),
        setup_fee: r.setup_fee.clone(),
        prices: r
            .prices
            .iter()
            .enumerate()
            .map(|(i, p)| PriceInput {
                path: format!("rate.prices[{i}]"),
                product: p.product_id.clone(),
                model: model_from_pb(p.model),
                unit_amount: p.unit_amount.clone(),
                flat_amount: p.flat_amount.clone(),
                tiers: p
                    .tiers
                    .iter()
                    .map(|t| TierInput {
                        up_to: t.up_to.clone(),
                        unit_amount: t.unit_amount.clone(),
                        flat_amount: t.flat_amount.clone(),
                    })
                    .collect(),
                package_size: p.package_size,
            })
            .collect(),
        metadata: r.metadata.clone(),
    }
}

pub(super) fn coupon_in(c: &pb::Coupon) -> Result<CouponInput, ()> {
    let discount_type = match pb::DiscountType::try_from(c.discount_type) {
        Ok(pb::DiscountType::Percent) => Some(DiscountType::Percent),
        Ok(pb::DiscountType::FixedAmount) => Some(DiscountType::FixedAmount),
        Ok(pb::DiscountType::Unspecified) => None,
        Err(_) => return Err(()),
    };
    let duration = match pb::CouponDuration::try_from(c.duration) {
        Ok(pb::CouponDuration::Once) => Some(CouponDuration::Once),
        Ok(pb::CouponDuration::Repeating) => Some(CouponDuration::Repeating),
        Ok(pb::CouponDuration::Forever) => Some(CouponDuration::Forever),
        Ok(pb::CouponDuration::Unspecified) => None,
        Err(_) => return Err(()),
    };
    Ok(CouponInput {
        code: c.code.clone(),
        name: c.name.clone(),
        discount_type,
        percent_off: c.percent_off.clone(),
        amounts_off: c.amounts_off.iter().map(|m| (m.currency_code.clone(), m.amount.clone())).collect(),
        duration,
        duration_periods: i64::from(c.duration_periods),
        offerings: c.offering_ids.clone(),
        products: c.product_ids.clone(),
        max_redemptions: i64::from(c.max_redemptions),
        redeem_by: c.redeem_by.as_ref().and_then(recur_proto::convert::from_timestamp),
        metadata: c.metadata.clone(),
    })
}

pub(super) fn action_pb(a: Action) -> i32 {
    (match a {
        Action::Created => pb::ChangeAction::Created,
        Action::Changed => pb::ChangeAction::Changed,
        Action::Archived => pb::ChangeAction::Archived,
        Action::Unchanged => pb::ChangeAction::Unchanged,
    }) as i32
}
