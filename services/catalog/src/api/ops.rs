//! The catalog's operations, between the wire and the repository.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

use recur_clock::SharedClock;
use recur_error::{AppError, AppResult, Violations};
use recur_money::Currency;
use recur_proto::catalog::v1 as pb;
use rust_decimal::Decimal;

use super::wire::*;
use crate::domain::document::{self, Format};
use crate::domain::validate::{self as check, QUANTITY_PLACES};
use crate::domain::*;
use crate::domain::{input, plan};
use crate::repo::CatalogRepo;

pub struct CatalogApi {
    pub(super) repo: Arc<dyn CatalogRepo>,
    pub(super) clock: SharedClock,
}

/// INVALID_ARGUMENT with every violation. When a resource the request refers
/// to does not exist (`missing`: its kind and the reference given), the reason
/// is `<RESOURCE>_NOT_FOUND`, as for every reference from a request's body.
fn finish_with_references(v: Violations, missing: Option<(&str, &str)>) -> AppResult<()> {
    let Some((resource, key)) = missing else { return v.finish() };
    let all = v.into_error();
    let mut e = AppError::not_found(resource, key).into_invalid_reference();
    for f in all.violations() {
        e = e.with_field(f.field.clone(), f.description.clone());
    }
    Err(e)
}

impl CatalogApi {
    pub fn new(repo: Arc<dyn CatalogRepo>, clock: SharedClock) -> Self {
        CatalogApi { repo, clock }
    }

    pub(super) async fn product(&self, tenant: &str, key: Lookup<'_>, what: &str) -> AppResult<Product> {
        self.repo.get_product(tenant, key).await?.ok_or_else(|| AppError::not_found("product", what))
    }

    pub(super) async fn offering(&self, tenant: &str, key: Lookup<'_>, what: &str) -> AppResult<Offering> {
        self.repo.get_offering(tenant, key).await?.ok_or_else(|| AppError::not_found("offering", what))
    }

    pub(super) async fn rate(&self, tenant: &str, key: Lookup<'_>, what: &str) -> AppResult<Rate> {
        self.repo.get_rate(tenant, key).await?.ok_or_else(|| AppError::not_found("rate", what))
    }

    pub(super) async fn coupon(&self, tenant: &str, key: Lookup<'_>, what: &str) -> AppResult<Coupon> {
        self.repo.get_coupon(tenant, key).await?.ok_or_else(|| AppError::not_found("coupon", what))
    }

    /// One write, in its own transaction; a unique violation is the handle
    /// (or code) being taken.
    async fn write(&self, tenant: &str, op: CatalogOp, field: &str, what: &str) -> AppResult<()> {
        self.repo.apply(tenant, std::slice::from_ref(&op)).await.map_err(|e| unique_violation(e, field, what))
    }

    /// Archives a resource (a no-op for one already archived).
    async fn archive<T: Archivable>(&self, tenant: &str, mut resource: T, what: &str) -> AppResult<T> {
        if resource.archive(self.clock.now_micros()) {
            self.write(tenant, resource.clone().update_op(), "id", what).await?;
        }
        Ok(resource)
    }

    // ---------- products ----------

    pub(super) async fn create_product(&self, tenant: &str, p: &pb::Product) -> AppResult<Product> {
        let mut v = Violations::new();
        let product = input::product(
            &mut v,
            "product",
            &product_in(p),
            recur_id::new_id(recur_id::Kind::Product),
            self.clock.now_micros(),
        );
        v.finish()?;
        self.write(tenant, CatalogOp::InsertProduct(product.clone()), "product.handle", "product").await?;
        Ok(product)
    }

    pub(super) async fn update_product(
        &self,
        tenant: &str,
        input: &pb::Product,
        paths: &[String],
    ) -> AppResult<Product> {
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
            check::max_len(&mut v, "product.name", &input.name, check::NAME_CHARS);
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
        self.write(tenant, CatalogOp::UpdateProduct(current.clone()), "product.handle", "product").await?;
        Ok(current)
    }

    pub(super) async fn archive_product(&self, tenant: &str, id: &str) -> AppResult<Product> {
        let found = self.product(tenant, Lookup::Id(id), id).await?;
        self.archive(tenant, found, "product").await
    }

    // ---------- offerings ----------

    pub(super) async fn create_offering(&self, tenant: &str, input: &pb::Offering) -> AppResult<Offering> {
        let mut v = Violations::new();
        check::required(&mut v, "offering.name", &input.name);
        check::max_len(&mut v, "offering.name", &input.name, check::NAME_CHARS);
        check::metadata(&mut v, "offering.metadata", &input.metadata);
        let handle = handle_input(&mut v, "offering.handle", &input.handle);
        if input.product_ids.is_empty() {
            v.add("offering.product_ids", "an offering includes at least one product");
        }
        let mut seen = HashSet::new();
        let mut product_ids = Vec::new();
        let mut missing = None;
        for (i, pid) in input.product_ids.iter().enumerate() {
            let field = format!("offering.product_ids[{i}]");
            match self.repo.get_product(tenant, reference(pid)).await? {
                None => {
                    missing = missing.or(Some(("product", pid.as_str())));
                    v.add(field, format!("no product {pid:?}"))
                }
                Some(p) if p.status == Status::Archived => {
                    return Err(AppError::failed_precondition(
                        "PRODUCT_ARCHIVED",
                        format!("product {} is archived", p.id),
                    )
                    .with_field(field, "archived products cannot join new offerings"));
                }
                Some(p) if !seen.insert(p.id.clone()) => v.add(field, "product listed twice"),
                Some(p) => product_ids.push(p.id),
            }
        }
        finish_with_references(v, missing)?;
        let now = self.clock.now_micros();
        let offering = Offering {
            id: recur_id::new_id(recur_id::Kind::Offering),
            handle,
            name: input.name.trim().to_string(),
            description: input.description.clone(),
            product_ids,
            status: Status::Active,
            metadata: input.metadata.clone(),
            created_at: now,
            updated_at: now,
        };
        self.write(tenant, CatalogOp::InsertOffering(offering.clone()), "offering.handle", "offering").await?;
        Ok(offering)
    }

    pub(super) async fn update_offering(
        &self,
        tenant: &str,
        input: &pb::Offering,
        paths: &[String],
    ) -> AppResult<Offering> {
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
        self.write(tenant, CatalogOp::UpdateOffering(current.clone()), "offering.handle", "offering").await?;
        Ok(current)
    }

    pub(super) async fn archive_offering(&self, tenant: &str, id: &str) -> AppResult<Offering> {
        let found = self.offering(tenant, Lookup::Id(id), id).await?;
        self.archive(tenant, found, "offering").await
    }

    // ---------- rates ----------

    pub(super) async fn create_rate(&self, tenant: &str, r: &pb::Rate) -> AppResult<Rate> {
        let mut v = Violations::new();
        if r.offering_id.is_empty() {
            v.add("rate.offering_id", "is required");
        }
        if pb::BillingTiming::try_from(r.timing).is_err() {
            v.add("rate.timing", "unknown timing");
        }
        let offering = if r.offering_id.is_empty() {
            None
        } else {
            match self.repo.get_offering(tenant, reference(&r.offering_id)).await? {
                None => {
                    v.add("rate.offering_id", format!("no offering {:?}", r.offering_id));
                    finish_with_references(v, Some(("offering", &r.offering_id)))?;
                    return Err(AppError::internal("a missing offering passed validation"));
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
        let Some(offering) = offering else {
            v.finish()?;
            return Err(AppError::internal("rate without offering passed validation"));
        };
        // Prices may name their product by id or by handle.
        let mut handles: HashMap<String, String> = HashMap::new();
        for p in &r.prices {
            if !offering.product_ids.contains(&p.product_id)
                && !recur_id::looks_like_id(&p.product_id)
                && let Some(found) = self.repo.get_product(tenant, Lookup::Handle(&p.product_id)).await?
            {
                handles.insert(p.product_id.clone(), found.id);
            }
        }
        let resolve = |r: &str| -> Option<String> {
            if offering.product_ids.iter().any(|id| id == r) || recur_id::looks_like_id(r) {
                Some(r.to_string())
            } else {
                handles.get(r).cloned()
            }
        };
        let described = rate_in(r);
        let rate = input::rate(
            &mut v,
            "rate",
            &described,
            &offering,
            &resolve,
            recur_id::new_id(recur_id::Kind::Rate),
            1,
            self.clock.now_micros(),
        );
        v.finish()?;
        let rate = rate.ok_or_else(|| AppError::internal("rate passed validation unbuilt"))?;
        let paths: Vec<String> = described.prices.iter().map(|p| p.path.clone()).collect();
        let too_large = check::rate_ceilings("rate", &paths, &rate, &self.settings(tenant).await?.ceilings());
        if !too_large.is_empty() {
            return Err(recur_money::AmountTooLarge::into_error(too_large));
        }
        self.write(tenant, CatalogOp::InsertRate(rate.clone()), "rate.handle", "active rate").await?;
        Ok(rate)
    }

    pub(super) async fn update_rate(&self, tenant: &str, input: &pb::Rate, paths: &[String]) -> AppResult<Rate> {
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
        self.write(tenant, CatalogOp::UpdateRate(current.clone()), "rate.handle", "rate").await?;
        Ok(current)
    }

    pub(super) async fn archive_rate(&self, tenant: &str, id: &str) -> AppResult<Rate> {
        let found = self.rate(tenant, Lookup::Id(id), id).await?;
        self.archive(tenant, found, "rate").await
    }

    // ---------- coupons ----------

    pub(super) async fn create_coupon(&self, tenant: &str, c: &pb::Coupon) -> AppResult<Coupon> {
        let mut v = Violations::new();
        let input = coupon_in(c).map_err(|()| AppError::invalid("coupon", "unknown discount type or duration"))?;
        // References may be ids or handles; only active resources qualify.
        let mut offerings = HashMap::new();
        for r in &input.offerings {
            if let Some(o) = self.repo.get_offering(tenant, reference(r)).await?.filter(|o| o.status == Status::Active)
            {
                offerings.insert(r.clone(), o.id);
            }
        }
        let mut products = HashMap::new();
        for r in &input.products {
            if let Some(p) = self.repo.get_product(tenant, reference(r)).await?.filter(|p| p.status == Status::Active) {
                products.insert(r.clone(), p.id);
            }
        }
        let coupon = input::coupon(
            &mut v,
            "coupon",
            &input,
            &|r: &str| offerings.get(r).cloned(),
            &|r: &str| products.get(r).cloned(),
            recur_id::new_id(recur_id::Kind::Coupon),
            self.clock.now_micros(),
        );
        let missing = (input.offerings.iter().find(|r| !offerings.contains_key(*r)).map(|r| ("offering", r.as_str())))
            .or_else(|| input.products.iter().find(|r| !products.contains_key(*r)).map(|r| ("product", r.as_str())));
        finish_with_references(v, missing)?;
        self.write(tenant, CatalogOp::InsertCoupon(coupon.clone()), "coupon.code", "coupon").await.map_err(|e| {
            if e.reason() == "HANDLE_TAKEN" {
                AppError::already_exists("CODE_TAKEN", "another coupon already has this code")
                    .with_field("coupon.code", "code already in use")
            } else {
                e
            }
        })?;
        Ok(coupon)
    }

    pub(super) async fn archive_coupon(&self, tenant: &str, id: &str) -> AppResult<Coupon> {
        let found = self.coupon(tenant, Lookup::Id(id), id).await?;
        self.archive(tenant, found, "coupon").await
    }

    // ---------- catalog as code ----------

    pub(super) async fn apply_catalog(
        &self,
        tenant: &str,
        r: &pb::ApplyCatalogRequest,
    ) -> AppResult<(Vec<plan::Change>, bool)> {
        let format = match pb::DocumentFormat::try_from(r.format) {
            Ok(pb::DocumentFormat::Yaml) => Some(Format::Yaml),
            Ok(pb::DocumentFormat::Json) => Some(Format::Json),
            Ok(pb::DocumentFormat::Unspecified) => None,
            Err(_) => return Err(AppError::invalid("format", "unknown document format")),
        };
        // Size and depth limits are checked before the parser runs. Even a
        // document within them takes a while to parse (4 MiB: some hundred
        // milliseconds): on the blocking pool, not on a thread that serves
        // other calls.
        let text = r.document.clone();
        let doc =
            tokio::task::spawn_blocking(move || document::parse(&text, format)).await.map_err(AppError::internal)??;
        // A document without a single resource archives the whole catalog:
        // only when the request says so (a dry run shows what it would do).
        if doc.is_empty() && !r.dry_run && !r.allow_archive_all {
            return Err(AppError::failed_precondition(
                "ARCHIVE_ALL_NOT_CONFIRMED",
                "the document holds no resource, so applying it would archive every product, offering, rate and \
                 coupon; set allow_archive_all to apply it (a dry run lists what would be archived)",
            )
            .with_field("allow_archive_all", "must be true to apply a document that holds no resource"));
        }
        let snapshot = self.repo.snapshot(tenant).await?;
        let plan =
            plan::plan(&doc, &snapshot, self.clock.now_micros(), &mut recur_id::new_id).map_err(|v| v.into_error())?;
        self.plan_within_ceilings(tenant, &doc, &plan).await?;
        if r.dry_run {
            let changes = plan
                .changes
                .into_iter()
                .map(|mut c| {
                    if c.action == plan::Action::Created {
                        c.id.clear();
                    }
                    c
                })
                .collect();
            return Ok((changes, false));
        }
        if !plan.ops.is_empty() {
            self.repo.apply(tenant, &plan.ops).await.map_err(|e| {
                if e.is_unique() {
                    AppError::aborted("CATALOG_CHANGED", "the catalog changed while applying; apply again")
                } else {
                    e.into()
                }
            })?;
        }
        Ok((plan.changes, true))
    }

    pub(super) async fn export_catalog(&self, tenant: &str, format: i32) -> AppResult<String> {
        let format = match pb::DocumentFormat::try_from(format) {
            Ok(pb::DocumentFormat::Json) => Format::Json,
            Ok(_) => Format::Yaml,
            Err(_) => return Err(AppError::invalid("format", "unknown document format")),
        };
        let snapshot = self.repo.snapshot(tenant).await?;
        document::render(&document::export(&snapshot), format).map_err(AppError::internal)
    }

    // ---------- tenant settings ----------

    /// Every rate a plan creates keeps its price amounts within the tenant's
    /// ceilings (rates it keeps were checked when they were made).
    async fn plan_within_ceilings(&self, tenant: &str, doc: &document::CatalogDoc, plan: &plan::Plan) -> AppResult<()> {
        let mut ceilings = None;
        let mut too_large = Vec::new();
        for op in &plan.ops {
            let CatalogOp::InsertRate(rate) = op else { continue };
            let found = doc.offerings.iter().enumerate().find_map(|(i, o)| {
                let j = o.rates.iter().position(|r| Some(r.handle.as_str()) == rate.handle.as_deref())?;
                Some((format!("offerings[{i}].rates[{j}]"), &o.rates[j]))
            });
            let Some((prefix, described)) = found else { continue };
            let paths: Vec<String> = described.input(&prefix).prices.into_iter().map(|p| p.path).collect();
            if ceilings.is_none() {
                ceilings = Some(self.settings(tenant).await?.ceilings());
            }
            let c = ceilings.as_ref().ok_or_else(|| AppError::internal("ceilings unread"))?;
            too_large.extend(check::rate_ceilings(&prefix, &paths, rate, c));
        }
        if too_large.is_empty() { Ok(()) } else { Err(recur_money::AmountTooLarge::into_error(too_large)) }
    }

    pub(super) async fn settings(&self, tenant: &str) -> AppResult<TenantSettings> {
        Ok(self.repo.get_settings(tenant).await?.unwrap_or_else(TenantSettings::defaults))
    }

    pub(super) async fn update_settings(
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
                    | "max_amounts"
                    | "subscription_defaults"
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
        if wants("max_amounts") {
            let mut amounts = std::collections::BTreeMap::new();
            for (code, raw) in &input.max_amounts {
                match recur_money::Ceilings::parse_one(code, raw) {
                    Ok(m) => {
                        amounts.insert(code.clone(), m.amount());
                    }
                    Err(e) => v.add(format!("settings.max_amounts[{code}]"), e.to_string()),
                }
            }
            s.max_amounts = amounts;
        }
        if wants("subscription_defaults") {
            let d = input.subscription_defaults.unwrap_or_default();
            if !(0..=365).contains(&d.invoice_due_days) {
                v.add("settings.subscription_defaults.invoice_due_days", "must be between 0 and 365 days");
            }
            let grace = d.invoice_grace_period.as_ref().map(|g| g.seconds);
            if let Some(g) = &d.invoice_grace_period
                && (g.seconds < 0 || g.seconds > crate::domain::MAX_GRACE_SECS || g.nanos != 0)
            {
                v.add(
                    "settings.subscription_defaults.invoice_grace_period",
                    "must be whole seconds between 0 and 7 days",
                );
            }
            s.subscription_defaults = crate::domain::SubscriptionDefaults {
                change_at_period_end: d.change_at_period_end,
                credit_unused_on_cancel: d.credit_unused_on_cancel,
                invoice_due_days: d.invoice_due_days.clamp(0, 365) as u32,
                invoice_grace_secs: grace.map(|g| g.clamp(0, crate::domain::MAX_GRACE_SECS) as u32),
            };
        }
        v.finish()?;
        s.updated_at = Some(self.clock.now_micros());
        self.repo.put_settings(tenant, &s).await?;
        Ok(s)
    }
}
