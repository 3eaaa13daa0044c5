//! The catalog's gRPC surface: decode and validate the request, apply the
//! catalog's rules, store, encode. Coupons and catalog-as-code are not served
//! yet (they answer UNIMPLEMENTED).

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;

use recur_clock::SharedClock;
use recur_error::{AppError, AppResult, Violations};
use recur_money::Currency;
use recur_proto::catalog::v1 as pb;
use recur_proto::common::v1::SortDirection;
use recur_proto::convert::timestamp;
use recur_server::caller;
use recur_storage::page::{Cursor, page_size};
use rust_decimal::Decimal;
use tonic::{Request, Response};

use crate::domain::validate::{self as check, QUANTITY_PLACES, UNIT_PRICE_PLACES};
use crate::domain::*;
use crate::repo::CatalogRepo;

pub struct CatalogApi {
    repo: Arc<dyn CatalogRepo>,
    clock: SharedClock,
}

impl CatalogApi {
    pub fn new(repo: Arc<dyn CatalogRepo>, clock: SharedClock) -> Self {
        CatalogApi { repo, clock }
    }
}

// ---------- enums between wire and domain ----------

fn status_to_pb(s: Status) -> i32 {
    match s {
        Status::Active => pb::CatalogStatus::Active as i32,
        Status::Archived => pb::CatalogStatus::Archived as i32,
    }
}

fn status_filter(v: &mut Violations, field: &str, raw: i32) -> Option<Status> {
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

fn kind_from_pb(raw: i32) -> Option<ProductKind> {
    match pb::ProductKind::try_from(raw).ok()? {
        pb::ProductKind::Unspecified => None,
        pb::ProductKind::Recurring => Some(ProductKind::Recurring),
        pb::ProductKind::PerUnit => Some(ProductKind::PerUnit),
        pb::ProductKind::OnOff => Some(ProductKind::OnOff),
        pb::ProductKind::Metered => Some(ProductKind::Metered),
        pb::ProductKind::OneTime => Some(ProductKind::OneTime),
    }
}

fn kind_to_pb(k: ProductKind) -> i32 {
    (match k {
        ProductKind::Recurring => pb::ProductKind::Recurring,
        ProductKind::PerUnit => pb::ProductKind::PerUnit,
        ProductKind::OnOff => pb::ProductKind::OnOff,
        ProductKind::Metered => pb::ProductKind::Metered,
        ProductKind::OneTime => pb::ProductKind::OneTime,
    }) as i32
}

fn model_from_pb(raw: i32) -> Option<PricingModel> {
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

fn model_to_pb(m: PricingModel) -> i32 {
    (match m {
        PricingModel::Flat => pb::PricingModel::Flat,
        PricingModel::PerUnit => pb::PricingModel::PerUnit,
        PricingModel::Tiered => pb::PricingModel::Tiered,
        PricingModel::Volume => pb::PricingModel::Volume,
        PricingModel::Stairstep => pb::PricingModel::Stairstep,
        PricingModel::Package => pb::PricingModel::Package,
    }) as i32
}

fn unit_from_pb(raw: i32) -> Option<PeriodUnit> {
    match pb::PeriodUnit::try_from(raw).ok()? {
        pb::PeriodUnit::Unspecified => None,
        pb::PeriodUnit::Day => Some(PeriodUnit::Day),
        pb::PeriodUnit::Week => Some(PeriodUnit::Week),
        pb::PeriodUnit::Month => Some(PeriodUnit::Month),
        pb::PeriodUnit::Year => Some(PeriodUnit::Year),
    }
}

fn unit_to_pb(u: PeriodUnit) -> i32 {
    (match u {
        PeriodUnit::Day => pb::PeriodUnit::Day,
        PeriodUnit::Week => pb::PeriodUnit::Week,
        PeriodUnit::Month => pb::PeriodUnit::Month,
        PeriodUnit::Year => pb::PeriodUnit::Year,
    }) as i32
}

fn timing_to_pb(t: Timing) -> i32 {
    (match t {
        Timing::InAdvance => pb::BillingTiming::InAdvance,
        Timing::InArrears => pb::BillingTiming::InArrears,
    }) as i32
}

fn proration_to_pb(p: ProrationMode) -> i32 {
    (match p {
        ProrationMode::Day => pb::ProrationMode::Day,
        ProrationMode::Second => pb::ProrationMode::Second,
    }) as i32
}

fn final_action_to_pb(a: DunningFinalAction) -> i32 {
    (match a {
        DunningFinalAction::CancelSubscription => pb::DunningFinalAction::CancelSubscription,
        DunningFinalAction::MarkUncollectible => pb::DunningFinalAction::MarkUncollectible,
        DunningFinalAction::LeavePastDue => pb::DunningFinalAction::LeavePastDue,
    }) as i32
}

fn dec_str(d: Option<Decimal>) -> String {
    d.map(|d| d.to_string()).unwrap_or_default()
}

// ---------- encoding ----------

fn product_pb(p: &Product) -> pb::Product {
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
        status: status_to_pb(p.status),
        metadata: p.metadata.clone(),
        create_time: Some(timestamp(p.created_at)),
        update_time: Some(timestamp(p.updated_at)),
    }
}

fn offering_pb(o: &Offering) -> pb::Offering {
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

fn price_pb(p: &Price) -> pb::Price {
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

fn rate_pb(r: &Rate) -> pb::Rate {
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

fn settings_pb(tenant: &str, s: &TenantSettings) -> pb::TenantSettings {
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
        update_time: s.updated_at.map(timestamp),
    }
}

// ---------- shared request pieces ----------

fn lookup<'a>(field: &str, id: Option<&'a str>, handle: Option<&'a str>) -> AppResult<Lookup<'a>> {
    match (id, handle) {
        (Some(id), _) if !id.is_empty() => Ok(Lookup::Id(id)),
        (_, Some(h)) if !h.is_empty() => Ok(Lookup::Handle(h)),
        _ => Err(AppError::invalid(field, "give an id or a handle")),
    }
}

/// A reference that may be an id or a handle.
fn reference(s: &str) -> Lookup<'_> {
    if recur_id::looks_like_id(s) { Lookup::Id(s) } else { Lookup::Handle(s) }
}

fn page_query(v: &mut Violations, size: i32, token: &str, order_by: &str, direction: i32) -> PageQuery {
    if size < 0 {
        v.add("page_size", "must not be negative");
    }
    let after = match Cursor::decode(token) {
        Ok(c) => c,
        Err(_) => {
            v.add("page_token", "is not a token this API issued");
            None
        }
    };
    if !matches!(order_by, "" | "create_time") {
        v.add("order_by", "supported: create_time");
    }
    let descending = match SortDirection::try_from(direction) {
        Ok(SortDirection::Desc) => true,
        Ok(_) => false,
        Err(_) => {
            v.add("direction", "unknown direction");
            false
        }
    };
    // One row more than asked tells whether another page follows.
    PageQuery { after, limit: page_size(size) + 1, descending }
}

/// Splits the extra row off a page and makes the next page token.
fn finish_page<T>(mut rows: Vec<T>, page: &PageQuery, key: impl Fn(&T) -> Cursor) -> (Vec<T>, String) {
    let wanted = (page.limit - 1) as usize;
    if rows.len() > wanted {
        rows.truncate(wanted);
        let token = rows.last().map(|r| key(r).encode()).unwrap_or_default();
        (rows, token)
    } else {
        (rows, String::new())
    }
}

fn handle_input(v: &mut Violations, field: &str, raw: &str) -> Option<String> {
    if raw.is_empty() {
        return None;
    }
    check::handle(v, field, raw);
    Some(raw.to_string())
}

fn unique_violation(e: recur_storage::StorageError, field: &str, what: &str) -> AppError {
    if e.is_unique() {
        AppError::already_exists("HANDLE_TAKEN", format!("another {what} already has this handle"))
            .with_field(field, "handle already in use")
    } else {
        e.into()
    }
}

fn mask_paths(mask: &Option<prost_types::FieldMask>) -> Vec<String> {
    mask.as_ref().map(|m| m.paths.clone()).unwrap_or_default()
}

// ---------- products ----------

fn product_input(v: &mut Violations, p: &pb::Product, now: chrono::DateTime<chrono::Utc>) -> Product {
    check::required(v, "product.name", &p.name);
    check::max_len(v, "product.name", &p.name, 200);
    check::max_len(v, "product.description", &p.description, 2000);
    check::metadata(v, "product.metadata", &p.metadata);
    let kind = kind_from_pb(p.kind);
    if kind.is_none() {
        v.add("product.kind", "is required: RECURRING, PER_UNIT, ON_OFF, METERED or ONE_TIME");
    }
    Product {
        id: recur_id::new_id(recur_id::Kind::Product),
        handle: handle_input(v, "product.handle", &p.handle),
        name: p.name.trim().to_string(),
        description: p.description.clone(),
        kind: kind.unwrap_or(ProductKind::Recurring),
        unit_name: p.unit_name.clone(),
        tax_code: p.tax_code.clone(),
        min_quantity: check::decimal(v, "product.min_quantity", &p.min_quantity, QUANTITY_PLACES),
        max_quantity: check::decimal(v, "product.max_quantity", &p.max_quantity, QUANTITY_PLACES),
        default_quantity: check::decimal(v, "product.default_quantity", &p.default_quantity, QUANTITY_PLACES),
        status: Status::Active,
        metadata: p.metadata.clone(),
        created_at: now,
        updated_at: now,
    }
}

impl CatalogApi {
    async fn product(&self, tenant: &str, key: Lookup<'_>, what: &str) -> AppResult<Product> {
        self.repo.get_product(tenant, key).await?.ok_or_else(|| AppError::not_found("product", what))
    }

    async fn offering(&self, tenant: &str, key: Lookup<'_>, what: &str) -> AppResult<Offering> {
        self.repo.get_offering(tenant, key).await?.ok_or_else(|| AppError::not_found("offering", what))
    }

    async fn rate(&self, tenant: &str, key: Lookup<'_>, what: &str) -> AppResult<Rate> {
        self.repo.get_rate(tenant, key).await?.ok_or_else(|| AppError::not_found("rate", what))
    }

    async fn create_product(&self, tenant: &str, input: &pb::Product) -> AppResult<Product> {
        let mut v = Violations::new();
        let product = product_input(&mut v, input, self.clock.now_micros());
        check::product_bounds(&mut v, "product", &product);
        v.finish()?;
        self.repo
            .insert_product(tenant, &product)
            .await
            .map_err(|e| unique_violation(e, "product.handle", "product"))?;
        Ok(product)
    }

    async fn update_product(&self, tenant: &str, input: &pb::Product, paths: &[String]) -> AppResult<Product> {
        let mut current = self.product(tenant, Lookup::Id(&input.id), &input.id).await?;
        let mut v = Violations::new();
        let all = paths.is_empty();
        let wants = |p: &str| all || paths.iter().any(|x| x == p);
        for p in paths {
            if !matches!(
                p.as_str(),
                "handle"
                    | "name"
                    | "description"
                    | "unit_name"
                    | "tax_code"
                    | "min_quantity"
                    | "max_quantity"
                    | "default_quantity"
                    | "metadata"
            ) {
                v.add("update_mask.paths", format!("{p:?} cannot be updated"));
            }
        }
        if wants("handle") {
            current.handle = handle_input(&mut v, "product.handle", &input.handle);
        }
        if wants("name") {
            check::required(&mut v, "product.name", &input.name);
            current.name = input.name.trim().to_string();
        }
        if wants("description") {
            current.description = input.description.clone();
        }
        if wants("unit_name") {
            current.unit_name = input.unit_name.clone();
        }
        if wants("tax_code") {
            current.tax_code = input.tax_code.clone();
        }
        if wants("min_quantity") {
            current.min_quantity = check::decimal(&mut v, "product.min_quantity", &input.min_quantity, QUANTITY_PLACES);
        }
        if wants("max_quantity") {
            current.max_quantity = check::decimal(&mut v, "product.max_quantity", &input.max_quantity, QUANTITY_PLACES);
        }
        if wants("default_quantity") {
            current.default_quantity =
                check::decimal(&mut v, "product.default_quantity", &input.default_quantity, QUANTITY_PLACES);
        }
        if wants("metadata") {
            check::metadata(&mut v, "product.metadata", &input.metadata);
            current.metadata = input.metadata.clone();
        }
        check::product_bounds(&mut v, "product", &current);
        v.finish()?;
        current.updated_at = self.clock.now_micros();
        self.repo
            .update_product(tenant, &current)
            .await
            .map_err(|e| unique_violation(e, "product.handle", "product"))?;
        Ok(current)
    }

    async fn archive_product(&self, tenant: &str, id: &str) -> AppResult<Product> {
        let mut p = self.product(tenant, Lookup::Id(id), id).await?;
        if p.status != Status::Archived {
            p.status = Status::Archived;
            p.updated_at = self.clock.now_micros();
            self.repo.update_product(tenant, &p).await?;
        }
        Ok(p)
    }

    // ---------- offerings ----------

    async fn create_offering(&self, tenant: &str, input: &pb::Offering) -> AppResult<Offering> {
        let mut v = Violations::new();
        check::required(&mut v, "offering.name", &input.name);
        check::max_len(&mut v, "offering.name", &input.name, 200);
        check::metadata(&mut v, "offering.metadata", &input.metadata);
        let handle = handle_input(&mut v, "offering.handle", &input.handle);
        if input.product_ids.is_empty() {
            v.add("offering.product_ids", "an offering includes at least one product");
        }
        let mut seen = HashSet::new();
        for (i, pid) in input.product_ids.iter().enumerate() {
            let field = format!("offering.product_ids[{i}]");
            if !seen.insert(pid.as_str()) {
                v.add(field, "product listed twice");
                continue;
            }
            match self.repo.get_product(tenant, Lookup::Id(pid)).await? {
                None => v.add(field, format!("no product {pid:?}")),
                Some(p) if p.status == Status::Archived => {
                    return Err(AppError::failed_precondition(
                        "PRODUCT_ARCHIVED",
                        format!("product {pid} is archived"),
                    )
                    .with_field(field, "archived products cannot join new offerings"));
                }
                Some(_) => {}
            }
        }
        v.finish()?;
        let now = self.clock.now_micros();
        let offering = Offering {
            id: recur_id::new_id(recur_id::Kind::Offering),
            handle,
            name: input.name.trim().to_string(),
            description: input.description.clone(),
            product_ids: input.product_ids.clone(),
            status: Status::Active,
            metadata: input.metadata.clone(),
            created_at: now,
            updated_at: now,
        };
        self.repo
            .insert_offering(tenant, &offering)
            .await
            .map_err(|e| unique_violation(e, "offering.handle", "offering"))?;
        Ok(offering)
    }

    async fn update_offering(&self, tenant: &str, input: &pb::Offering, paths: &[String]) -> AppResult<Offering> {
        let mut current = self.offering(tenant, Lookup::Id(&input.id), &input.id).await?;
        let mut v = Violations::new();
        let all = paths.is_empty();
        let wants = |p: &str| all || paths.iter().any(|x| x == p);
        for p in paths {
            if !matches!(p.as_str(), "handle" | "name" | "description" | "metadata") {
                v.add("update_mask.paths", format!("{p:?} cannot be updated"));
            }
        }
        if wants("handle") {
            current.handle = handle_input(&mut v, "offering.handle", &input.handle);
        }
        if wants("name") {
            check::required(&mut v, "offering.name", &input.name);
            current.name = input.name.trim().to_string();
        }
        if wants("description") {
            current.description = input.description.clone();
        }
        if wants("metadata") {
            check::metadata(&mut v, "offering.metadata", &input.metadata);
            current.metadata = input.metadata.clone();
        }
        v.finish()?;
        current.updated_at = self.clock.now_micros();
        self.repo
            .update_offering(tenant, &current)
            .await
            .map_err(|e| unique_violation(e, "offering.handle", "offering"))?;
        Ok(current)
    }

    async fn archive_offering(&self, tenant: &str, id: &str) -> AppResult<Offering> {
        let mut o = self.offering(tenant, Lookup::Id(id), id).await?;
        if o.status != Status::Archived {
            o.status = Status::Archived;
            o.updated_at = self.clock.now_micros();
            self.repo.update_offering(tenant, &o).await?;
        }
        Ok(o)
    }

    // ---------- rates ----------

    async fn create_rate(&self, tenant: &str, input: &pb::Rate) -> AppResult<Rate> {
        let mut v = Violations::new();
        check::required(&mut v, "rate.name", &input.name);
        check::max_len(&mut v, "rate.name", &input.name, 200);
        check::metadata(&mut v, "rate.metadata", &input.metadata);
        let handle = handle_input(&mut v, "rate.handle", &input.handle);
        let currency = Currency::from_code(&input.currency_code);
        if currency.is_none() {
            v.add("rate.currency_code", format!("unknown ISO 4217 currency {:?}", input.currency_code));
        }
        let period = input.billing_period.unwrap_or_default();
        let unit = unit_from_pb(period.unit);
        if unit.is_none() {
            v.add("rate.billing_period.unit", "is required: DAY, WEEK, MONTH or YEAR");
        }
        if !(1..=1000).contains(&period.count) {
            v.add("rate.billing_period.count", "must be between 1 and 1000");
        }
        let timing = match pb::BillingTiming::try_from(input.timing) {
            Ok(pb::BillingTiming::InArrears) => Timing::InArrears,
            Ok(_) => Timing::InAdvance,
            Err(_) => {
                v.add("rate.timing", "unknown timing");
                Timing::InAdvance
            }
        };
        let non_negative = |v: &mut Violations, field: &str, n: i32, max: i32| -> u32 {
            if !(0..=max).contains(&n) {
                v.add(field, format!("must be between 0 and {max}"));
            }
            n.clamp(0, max) as u32
        };
        let trial_days = non_negative(&mut v, "rate.trial_days", input.trial_days, 3650);
        let contract_term_periods =
            non_negative(&mut v, "rate.contract_term_periods", input.contract_term_periods, 1200);
        let notice_period_days = non_negative(&mut v, "rate.notice_period_days", input.notice_period_days, 3650);
        let setup_fee = check::amount(&mut v, "rate.setup_fee", &input.setup_fee, currency);

        // The offering must exist and be active; each of its products gets
        // exactly one price.
        let offering = if input.offering_id.is_empty() {
            v.add("rate.offering_id", "is required");
            None
        } else {
            match self.repo.get_offering(tenant, reference(&input.offering_id)).await? {
                None => {
                    v.add("rate.offering_id", format!("no offering {:?}", input.offering_id));
                    None
                }
                Some(o) if o.status == Status::Archived => {
                    return Err(AppError::failed_precondition(
                        "OFFERING_ARCHIVED",
                        format!("offering {} is archived", o.id),
                    )
                    .with_field("rate.offering_id", "archived offerings take no new rates"));
                }
                Some(o) => Some(o),
            }
        };
        let mut prices = Vec::with_capacity(input.prices.len());
        let mut priced = HashSet::new();
        for (i, p) in input.prices.iter().enumerate() {
            let prefix = format!("rate.prices[{i}]");
            if let Some(o) = &offering {
                if !o.product_ids.contains(&p.product_id) {
                    v.add(
                        format!("{prefix}.product_id"),
                        format!("{:?} is not a product of the offering", p.product_id),
                    );
                } else if !priced.insert(p.product_id.clone()) {
                    v.add(format!("{prefix}.product_id"), "product priced twice");
                }
            }
            let model = model_from_pb(p.model);
            if model.is_none() {
                v.add(format!("{prefix}.model"), "is required: FLAT, PER_UNIT, TIERED, VOLUME, STAIRSTEP or PACKAGE");
            }
            let tiers = p
                .tiers
                .iter()
                .enumerate()
                .map(|(t, tier)| Tier {
                    up_to: check::decimal(&mut v, &format!("{prefix}.tiers[{t}].up_to"), &tier.up_to, QUANTITY_PLACES),
                    unit_amount: check::decimal(
                        &mut v,
                        &format!("{prefix}.tiers[{t}].unit_amount"),
                        &tier.unit_amount,
                        UNIT_PRICE_PLACES,
                    )
                    .unwrap_or_default(),
                    flat_amount: check::amount(
                        &mut v,
                        &format!("{prefix}.tiers[{t}].flat_amount"),
                        &tier.flat_amount,
                        currency,
                    )
                    .unwrap_or_default(),
                })
                .collect();
            let price = Price {
                product_id: p.product_id.clone(),
                model: model.unwrap_or(PricingModel::Flat),
                unit_amount: check::decimal(
                    &mut v,
                    &format!("{prefix}.unit_amount"),
                    &p.unit_amount,
                    UNIT_PRICE_PLACES,
                ),
                flat_amount: check::amount(&mut v, &format!("{prefix}.flat_amount"), &p.flat_amount, currency),
                tiers,
                package_size: (p.package_size != 0).then_some(p.package_size),
            };
            if model.is_some() {
                check::price_shape(&mut v, &prefix, &price);
            }
            prices.push(price);
        }
        if let Some(o) = &offering {
            for pid in o.product_ids.iter().filter(|pid| !priced.contains(*pid)) {
                v.add("rate.prices", format!("missing a price for product {pid}"));
            }
        }
        v.finish()?;
        let (Some(offering), Some(currency), Some(unit)) = (offering, currency, unit) else {
            return Err(AppError::internal("validated rate lacks offering, currency or unit"));
        };
        let now = self.clock.now_micros();
        let rate = Rate {
            id: recur_id::new_id(recur_id::Kind::Rate),
            handle,
            offering_id: offering.id,
            name: input.name.trim().to_string(),
            description: input.description.clone(),
            currency,
            billing_period: BillingPeriod { unit, count: period.count as u32 },
            timing,
            trial_days,
            contract_term_periods,
            auto_renew: input.auto_renew,
            notice_period_days,
            setup_fee,
            prices,
            status: Status::Active,
            metadata: input.metadata.clone(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        self.repo.insert_rate(tenant, &rate).await.map_err(|e| unique_violation(e, "rate.handle", "active rate"))?;
        Ok(rate)
    }

    async fn update_rate(&self, tenant: &str, input: &pb::Rate, paths: &[String]) -> AppResult<Rate> {
        let mut current = self.rate(tenant, Lookup::Id(&input.id), &input.id).await?;
        let mut v = Violations::new();
        if paths.is_empty() {
            v.add("update_mask", "name the fields to update: name, description, metadata");
        }
        for p in paths {
            match p.as_str() {
                "name" => {
                    check::required(&mut v, "rate.name", &input.name);
                    current.name = input.name.trim().to_string();
                }
                "description" => current.description = input.description.clone(),
                "metadata" => {
                    check::metadata(&mut v, "rate.metadata", &input.metadata);
                    current.metadata = input.metadata.clone();
                }
                other => v.add(
                    "update_mask.paths",
                    format!("{other:?} cannot be updated: a rate's prices never change, create a new rate"),
                ),
            }
        }
        v.finish()?;
        current.updated_at = self.clock.now_micros();
        self.repo.update_rate(tenant, &current).await?;
        Ok(current)
    }

    async fn archive_rate(&self, tenant: &str, id: &str) -> AppResult<Rate> {
        let mut r = self.rate(tenant, Lookup::Id(id), id).await?;
        if r.status != Status::Archived {
            r.status = Status::Archived;
            r.updated_at = self.clock.now_micros();
            self.repo.update_rate(tenant, &r).await?;
        }
        Ok(r)
    }

    // ---------- tenant settings ----------

    async fn settings(&self, tenant: &str) -> AppResult<TenantSettings> {
        Ok(self.repo.get_settings(tenant).await?.unwrap_or_else(TenantSettings::defaults))
    }

    async fn update_settings(
        &self,
        tenant: &str,
        input: &pb::TenantSettings,
        paths: &[String],
    ) -> AppResult<TenantSettings> {
        let mut s = self.settings(tenant).await?;
        let mut v = Violations::new();
        let all = paths.is_empty();
        let wants = |p: &str| all || paths.iter().any(|x| x == p);
        for p in paths {
            if !matches!(
                p.as_str(),
                "default_currency"
                    | "time_zone"
                    | "bill_group_defaults"
                    | "proration_mode"
                    | "tax_rates"
                    | "prices_include_tax"
                    | "dunning"
            ) {
                v.add("update_mask.paths", format!("{p:?} cannot be updated"));
            }
        }
        if wants("default_currency") {
            match Currency::from_code(&input.default_currency) {
                Some(c) => s.default_currency = c,
                None => v.add("settings.default_currency", format!("unknown currency {:?}", input.default_currency)),
            }
        }
        if wants("time_zone") {
            if chrono_tz::Tz::from_str(&input.time_zone).is_ok() {
                s.time_zone = input.time_zone.clone();
            } else {
                v.add("settings.time_zone", format!("unknown IANA time zone {:?}", input.time_zone));
            }
        }
        if wants("bill_group_defaults") {
            let d = input.bill_group_defaults.unwrap_or_default();
            s.auto_email_invoice = d.auto_email_invoice;
            s.collect_invoice_balance_automatically = d.collect_invoice_balance_automatically;
        }
        if wants("proration_mode") {
            s.proration_mode = match pb::ProrationMode::try_from(input.proration_mode) {
                Ok(pb::ProrationMode::Second) => ProrationMode::Second,
                Ok(_) => ProrationMode::Day,
                Err(_) => {
                    v.add("settings.proration_mode", "unknown proration mode");
                    s.proration_mode
                }
            };
        }
        if wants("tax_rates") {
            let mut rates = Vec::new();
            let mut seen = HashSet::new();
            for (i, t) in input.tax_rates.iter().enumerate() {
                let prefix = format!("settings.tax_rates[{i}]");
                if t.country.len() != 2 || !t.country.bytes().all(|b| b.is_ascii_uppercase()) {
                    v.add(format!("{prefix}.country"), "must be an ISO 3166-1 alpha-2 code such as \"US\"");
                }
                if t.state.len() > 3 || !t.state.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    v.add(format!("{prefix}.state"), "must be a subdivision code of 1-3 letters or digits");
                }
                if !seen.insert((t.country.clone(), t.state.clone())) {
                    v.add(prefix.clone(), "jurisdiction listed twice");
                }
                let percent = check::decimal(&mut v, &format!("{prefix}.percent"), &t.percent, 4);
                if t.percent.is_empty() {
                    v.add(format!("{prefix}.percent"), "is required");
                }
                if percent.is_some_and(|p| p > Decimal::ONE_HUNDRED) {
                    v.add(format!("{prefix}.percent"), "must be at most 100");
                }
                rates.push(TaxRate {
                    country: t.country.clone(),
                    state: t.state.clone(),
                    percent: percent.unwrap_or_default(),
                    name: t.name.clone(),
                });
            }
            s.tax_rates = rates;
        }
        if wants("prices_include_tax") {
            s.prices_include_tax = input.prices_include_tax;
        }
        if wants("dunning") {
            let d = input.dunning.clone().unwrap_or_default();
            if d.retry_offset_days.len() > 10 {
                v.add("settings.dunning.retry_offset_days", "at most 10 retries");
            }
            let mut last = 0;
            for (i, day) in d.retry_offset_days.iter().enumerate() {
                if *day <= last || *day > 90 {
                    v.add(format!("settings.dunning.retry_offset_days[{i}]"), "offsets ascend, between 1 and 90 days");
                }
                last = *day;
            }
            s.dunning.retry_offset_days = d.retry_offset_days.iter().map(|d| (*d).max(0) as u32).collect();
            s.dunning.final_action = match pb::DunningFinalAction::try_from(d.final_action) {
                Ok(pb::DunningFinalAction::MarkUncollectible) => DunningFinalAction::MarkUncollectible,
                Ok(pb::DunningFinalAction::LeavePastDue) => DunningFinalAction::LeavePastDue,
                Ok(_) => DunningFinalAction::CancelSubscription,
                Err(_) => {
                    v.add("settings.dunning.final_action", "unknown action");
                    s.dunning.final_action
                }
            };
        }
        v.finish()?;
        s.updated_at = Some(self.clock.now_micros());
        self.repo.put_settings(tenant, &s).await?;
        Ok(s)
    }
}

type Res<T> = Result<Response<T>, tonic::Status>;

#[tonic::async_trait]
impl pb::catalog_service_server::CatalogService for CatalogApi {
    async fn create_product(&self, req: Request<pb::CreateProductRequest>) -> Res<pb::CreateProductResponse> {
        let ctx = caller(&req)?;
        let input = req.into_inner().product.unwrap_or_default();
        let p = self.create_product(&ctx.tenant_id, &input).await?;
        Ok(Response::new(pb::CreateProductResponse { product: Some(product_pb(&p)) }))
    }

    async fn get_product(&self, req: Request<pb::GetProductRequest>) -> Res<pb::GetProductResponse> {
        use pb::get_product_request::Lookup as L;
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let (id, handle) = match &r.lookup {
            Some(L::Id(id)) => (Some(id.as_str()), None),
            Some(L::Handle(h)) => (None, Some(h.as_str())),
            None => (None, None),
        };
        let key = lookup("lookup", id, handle)?;
        let p = self.product(&ctx.tenant_id, key, id.or(handle).unwrap_or_default()).await?;
        Ok(Response::new(pb::GetProductResponse { product: Some(product_pb(&p)) }))
    }

    async fn list_products(&self, req: Request<pb::ListProductsRequest>) -> Res<pb::ListProductsResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let page = page_query(&mut v, r.page_size, &r.page_token, &r.order_by, r.direction);
        let status = status_filter(&mut v, "status", r.status);
        let kind = match r.kind {
            0 => None,
            k => {
                let kind = kind_from_pb(k);
                v.check(kind.is_some(), "kind", "unknown product kind");
                kind
            }
        };
        v.finish()?;
        let rows = self
            .repo
            .list_products(&ctx.tenant_id, &ProductFilter { status, kind }, &page)
            .await
            .map_err(AppError::from)?;
        let (rows, next_page_token) = finish_page(rows, &page, |p| Cursor { time: p.created_at, id: p.id.clone() });
        Ok(Response::new(pb::ListProductsResponse { products: rows.iter().map(product_pb).collect(), next_page_token }))
    }

    async fn update_product(&self, req: Request<pb::UpdateProductRequest>) -> Res<pb::UpdateProductResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let input = r.product.unwrap_or_default();
        let p = self.update_product(&ctx.tenant_id, &input, &mask_paths(&r.update_mask)).await?;
        Ok(Response::new(pb::UpdateProductResponse { product: Some(product_pb(&p)) }))
    }

    async fn archive_product(&self, req: Request<pb::ArchiveProductRequest>) -> Res<pb::ArchiveProductResponse> {
        let ctx = caller(&req)?;
        let p = self.archive_product(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::ArchiveProductResponse { product: Some(product_pb(&p)) }))
    }

    async fn create_offering(&self, req: Request<pb::CreateOfferingRequest>) -> Res<pb::CreateOfferingResponse> {
        let ctx = caller(&req)?;
        let input = req.into_inner().offering.unwrap_or_default();
        let o = self.create_offering(&ctx.tenant_id, &input).await?;
        Ok(Response::new(pb::CreateOfferingResponse { offering: Some(offering_pb(&o)) }))
    }

    async fn get_offering(&self, req: Request<pb::GetOfferingRequest>) -> Res<pb::GetOfferingResponse> {
        use pb::get_offering_request::Lookup as L;
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let (id, handle) = match &r.lookup {
            Some(L::Id(id)) => (Some(id.as_str()), None),
            Some(L::Handle(h)) => (None, Some(h.as_str())),
            None => (None, None),
        };
        let key = lookup("lookup", id, handle)?;
        let o = self.offering(&ctx.tenant_id, key, id.or(handle).unwrap_or_default()).await?;
        Ok(Response::new(pb::GetOfferingResponse { offering: Some(offering_pb(&o)) }))
    }

    async fn list_offerings(&self, req: Request<pb::ListOfferingsRequest>) -> Res<pb::ListOfferingsResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let page = page_query(&mut v, r.page_size, &r.page_token, &r.order_by, r.direction);
        let status = status_filter(&mut v, "status", r.status);
        v.finish()?;
        let filter = OfferingFilter { status, product_id: (!r.product_id.is_empty()).then_some(r.product_id) };
        let rows = self.repo.list_offerings(&ctx.tenant_id, &filter, &page).await.map_err(AppError::from)?;
        let (rows, next_page_token) = finish_page(rows, &page, |o| Cursor { time: o.created_at, id: o.id.clone() });
        Ok(Response::new(pb::ListOfferingsResponse {
            offerings: rows.iter().map(offering_pb).collect(),
            next_page_token,
        }))
    }

    async fn update_offering(&self, req: Request<pb::UpdateOfferingRequest>) -> Res<pb::UpdateOfferingResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let input = r.offering.unwrap_or_default();
        let o = self.update_offering(&ctx.tenant_id, &input, &mask_paths(&r.update_mask)).await?;
        Ok(Response::new(pb::UpdateOfferingResponse { offering: Some(offering_pb(&o)) }))
    }

    async fn archive_offering(&self, req: Request<pb::ArchiveOfferingRequest>) -> Res<pb::ArchiveOfferingResponse> {
        let ctx = caller(&req)?;
        let o = self.archive_offering(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::ArchiveOfferingResponse { offering: Some(offering_pb(&o)) }))
    }

    async fn create_rate(&self, req: Request<pb::CreateRateRequest>) -> Res<pb::CreateRateResponse> {
        let ctx = caller(&req)?;
        let input = req.into_inner().rate.unwrap_or_default();
        let r = self.create_rate(&ctx.tenant_id, &input).await?;
        Ok(Response::new(pb::CreateRateResponse { rate: Some(rate_pb(&r)) }))
    }

    async fn get_rate(&self, req: Request<pb::GetRateRequest>) -> Res<pb::GetRateResponse> {
        use pb::get_rate_request::Lookup as L;
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let (id, handle) = match &r.lookup {
            Some(L::Id(id)) => (Some(id.as_str()), None),
            Some(L::Handle(h)) => (None, Some(h.as_str())),
            None => (None, None),
        };
        let key = lookup("lookup", id, handle)?;
        let rate = self.rate(&ctx.tenant_id, key, id.or(handle).unwrap_or_default()).await?;
        Ok(Response::new(pb::GetRateResponse { rate: Some(rate_pb(&rate)) }))
    }

    async fn list_rates(&self, req: Request<pb::ListRatesRequest>) -> Res<pb::ListRatesResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let mut v = Violations::new();
        let page = page_query(&mut v, r.page_size, &r.page_token, &r.order_by, r.direction);
        let status = status_filter(&mut v, "status", r.status);
        v.finish()?;
        let filter = RateFilter {
            status,
            offering_id: (!r.offering_id.is_empty()).then_some(r.offering_id),
            currency: (!r.currency_code.is_empty()).then_some(r.currency_code),
        };
        let rows = self.repo.list_rates(&ctx.tenant_id, &filter, &page).await.map_err(AppError::from)?;
        let (rows, next_page_token) = finish_page(rows, &page, |r| Cursor { time: r.created_at, id: r.id.clone() });
        Ok(Response::new(pb::ListRatesResponse { rates: rows.iter().map(rate_pb).collect(), next_page_token }))
    }

    async fn update_rate(&self, req: Request<pb::UpdateRateRequest>) -> Res<pb::UpdateRateResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let input = r.rate.unwrap_or_default();
        let rate = self.update_rate(&ctx.tenant_id, &input, &mask_paths(&r.update_mask)).await?;
        Ok(Response::new(pb::UpdateRateResponse { rate: Some(rate_pb(&rate)) }))
    }

    async fn archive_rate(&self, req: Request<pb::ArchiveRateRequest>) -> Res<pb::ArchiveRateResponse> {
        let ctx = caller(&req)?;
        let r = self.archive_rate(&ctx.tenant_id, &req.get_ref().id).await?;
        Ok(Response::new(pb::ArchiveRateResponse { rate: Some(rate_pb(&r)) }))
    }

    async fn get_tenant_settings(
        &self,
        req: Request<pb::GetTenantSettingsRequest>,
    ) -> Res<pb::GetTenantSettingsResponse> {
        let ctx = caller(&req)?;
        let s = self.settings(&ctx.tenant_id).await?;
        Ok(Response::new(pb::GetTenantSettingsResponse { settings: Some(settings_pb(&ctx.tenant_id, &s)) }))
    }

    async fn update_tenant_settings(
        &self,
        req: Request<pb::UpdateTenantSettingsRequest>,
    ) -> Res<pb::UpdateTenantSettingsResponse> {
        let ctx = caller(&req)?;
        let r = req.into_inner();
        let input = r.settings.unwrap_or_default();
        let s = self.update_settings(&ctx.tenant_id, &input, &mask_paths(&r.update_mask)).await?;
        Ok(Response::new(pb::UpdateTenantSettingsResponse { settings: Some(settings_pb(&ctx.tenant_id, &s)) }))
    }
}
