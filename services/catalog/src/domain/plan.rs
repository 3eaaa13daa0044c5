//! Planning an `ApplyCatalog`: the document is the desired state of every
//! handled resource; the plan is the diff against the current catalog and
//! the writes that make it so. Pure: the same document against the same
//! catalog always plans the same, and a catalog that already matches plans
//! no writes at all.
//!
//! - A resource in the document and not in the catalog is CREATED.
//! - One whose fields differ is CHANGED in place, except a rate whose terms
//!   (prices, currency, period, …) differ: that makes a new version of the
//!   rate under the same handle and archives the old one, since contracts
//!   keep using the rate they were sold on.
//! - An active handled resource missing from the document is ARCHIVED
//!   (archived resources stay readable; nothing is ever deleted).
//! - Resources without a handle are not managed by documents.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use recur_error::Violations;

use super::document::{self, CatalogDoc};
use super::input;
use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Created,
    Changed,
    Archived,
    Unchanged,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub resource: &'static str,
    pub handle: String,
    pub action: Action,
    /// Empty for a resource a dry run would create.
    pub id: String,
    pub changed_fields: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub ops: Vec<CatalogOp>,
}

impl Plan {
    fn note(&mut self, resource: &'static str, handle: &str, action: Action, id: &str, fields: Vec<String>) {
        self.changes.push(Change {
            resource,
            handle: handle.to_string(),
            action,
            id: id.to_string(),
            changed_fields: fields,
        });
    }
}

/// Fields of `a` and `b` that differ, by name.
macro_rules! diff_fields {
    ($a:expr, $b:expr, [$($field:ident),+ $(,)?]) => {{
        let mut changed: Vec<String> = Vec::new();
        $(if $a.$field != $b.$field { changed.push(stringify!($field).to_string()); })+
        changed
    }};
}

/// Plans applying `doc` to the catalog `current`. `new_id` makes ids for
/// what is created (a dry run may pass a generator of placeholders).
pub fn plan(
    doc: &CatalogDoc,
    current: &Snapshot,
    now: DateTime<Utc>,
    new_id: &mut dyn FnMut(recur_id::Kind) -> String,
) -> Result<Plan, Violations> {
    let mut v = Violations::new();
    let mut out = Plan::default();

    // Handles are the document's keys: present, well-formed, unique.
    let unique = |v: &mut Violations, seen: &mut HashSet<String>, field: String, key: &str| {
        if key.is_empty() {
            v.add(field, "is required: documents key resources by it");
        } else if !seen.insert(key.to_string()) {
            v.add(field, format!("{:?} appears twice in the document", recur_error::excerpt(key)));
        }
    };
    let (mut ph, mut oh, mut rh, mut cc) = (HashSet::new(), HashSet::new(), HashSet::new(), HashSet::new());
    for (i, p) in doc.products.iter().enumerate() {
        unique(&mut v, &mut ph, format!("products[{i}].handle"), &p.handle);
    }
    for (i, o) in doc.offerings.iter().enumerate() {
        unique(&mut v, &mut oh, format!("offerings[{i}].handle"), &o.handle);
        for (j, r) in o.rates.iter().enumerate() {
            unique(&mut v, &mut rh, format!("offerings[{i}].rates[{j}].handle"), &r.handle);
        }
    }
    for (i, c) in doc.coupons.iter().enumerate() {
        unique(&mut v, &mut cc, format!("coupons[{i}].code"), &c.code);
    }

    // ---------- products ----------
    let mut product_ids: HashMap<String, String> = HashMap::new();
    for (i, d) in doc.products.iter().enumerate() {
        let prefix = format!("products[{i}]");
        if !d.kind.is_empty() && document::product_kind(&d.kind).is_none() {
            v.add(
                format!("{prefix}.kind"),
                format!(
                    "unknown kind {:?}: recurring, per_unit, on_off, metered or one_time",
                    recur_error::excerpt(&d.kind)
                ),
            );
        }
        if !d.aggregation.is_empty() && d.aggregation.parse::<super::Aggregation>().is_err() {
            v.add(
                format!("{prefix}.aggregation"),
                format!(
                    "unknown aggregation {:?}: sum, count, max, unique_count or latest",
                    recur_error::excerpt(&d.aggregation)
                ),
            );
        }
        let existing = current.products.iter().find(|p| p.handle.as_deref() == Some(d.handle.as_str()));
        let id = existing.map(|p| p.id.clone()).unwrap_or_else(|| new_id(recur_id::Kind::Product));
        let mut desired = input::product(&mut v, &prefix, &d.input(), id.clone(), now);
        product_ids.insert(d.handle.clone(), id.clone());
        match existing {
            None => {
                out.note("product", &d.handle, Action::Created, &id, Vec::new());
                out.ops.push(CatalogOp::InsertProduct(desired));
            }
            Some(cur) => {
                if cur.kind != desired.kind {
                    v.add(
                        format!("{prefix}.kind"),
                        "a product's kind never changes: give the new product another handle",
                    );
                }
                if (cur.aggregation, &cur.aggregation_property) != (desired.aggregation, &desired.aggregation_property)
                {
                    v.add(
                        format!("{prefix}.aggregation"),
                        "a product's aggregation never changes (it would rebill usage already recorded): give the new product another handle",
                    );
                }
                let changed = diff_fields!(
                    cur,
                    desired,
                    [
                        name,
                        description,
                        unit_name,
                        tax_code,
                        min_quantity,
                        max_quantity,
                        default_quantity,
                        status,
                        metadata,
                    ]
                );
                if changed.is_empty() {
                    out.note("product", &d.handle, Action::Unchanged, &id, Vec::new());
                } else {
                    desired.created_at = cur.created_at;
                    out.note("product", &d.handle, Action::Changed, &id, changed);
                    out.ops.push(CatalogOp::UpdateProduct(desired));
                }
            }
        }
    }
    // Resolves a product reference: a handle of the document, or the id of
    // an active product the document does not manage.
    let resolve_product = |r: &str| -> Option<String> {
        product_ids.get(r).cloned().or_else(|| {
            current
                .products
                .iter()
                .find(|p| p.id == r && p.handle.is_none() && p.status == Status::Active)
                .map(|p| p.id.clone())
        })
    };

    // ---------- offerings and their rates ----------
    let mut offering_ids: HashMap<String, String> = HashMap::new();
    let mut kept_rates: HashSet<String> = HashSet::new();
    for (i, d) in doc.offerings.iter().enumerate() {
        let prefix = format!("offerings[{i}]");
        check_text(&mut v, &prefix, &d.name, &d.metadata);
        let existing = current.offerings.iter().find(|o| o.handle.as_deref() == Some(d.handle.as_str()));
        let id = existing.map(|o| o.id.clone()).unwrap_or_else(|| new_id(recur_id::Kind::Offering));
        offering_ids.insert(d.handle.clone(), id.clone());
        if d.products.is_empty() {
            v.add(format!("{prefix}.products"), "an offering includes at least one product");
        }
        let mut products = Vec::new();
        for (j, r) in d.products.iter().enumerate() {
            match resolve_product(r) {
                None => v.add(
                    format!("{prefix}.products[{j}]"),
                    format!("no product {:?} in the document", recur_error::excerpt(r)),
                ),
                Some(pid) if products.contains(&pid) => {
                    v.add(format!("{prefix}.products[{j}]"), "product listed twice")
                }
                Some(pid) => products.push(pid),
            }
        }
        let mut desired = Offering {
            id: id.clone(),
            handle: Some(d.handle.clone()),
            name: d.name.trim().to_string(),
            description: d.description.clone(),
            product_ids: products,
            status: Status::Active,
            metadata: d.metadata.clone(),
            created_at: now,
            updated_at: now,
        };
        match existing {
            None => {
                out.note("offering", &d.handle, Action::Created, &id, Vec::new());
                out.ops.push(CatalogOp::InsertOffering(desired.clone()));
            }
            Some(cur) => {
                let mut changed = diff_fields!(cur, desired, [name, description, status, metadata]);
                if !same_set(&cur.product_ids, &desired.product_ids) {
                    changed.push("product_ids".into());
                }
                if changed.is_empty() {
                    out.note("offering", &d.handle, Action::Unchanged, &id, Vec::new());
                } else {
                    desired.created_at = cur.created_at;
                    out.note("offering", &d.handle, Action::Changed, &id, changed);
                    out.ops.push(CatalogOp::UpdateOffering(desired.clone()));
                }
            }
        }
        for (j, rd) in d.rates.iter().enumerate() {
            let rprefix = format!("{prefix}.rates[{j}]");
            for (field, value, ok) in [
                ("billing_period.unit", &rd.billing_period.unit, rd.billing_period.unit.parse::<PeriodUnit>().is_ok()),
                ("timing", &rd.timing, rd.timing.is_empty() || rd.timing.parse::<Timing>().is_ok()),
            ] {
                if !ok {
                    v.add(format!("{rprefix}.{field}"), format!("unknown value {:?}", recur_error::excerpt(value)));
                }
            }
            for (product, p) in &rd.prices {
                if p.model.parse::<PricingModel>().is_err() {
                    v.add(
                        format!("{rprefix}.prices.{product}.model"),
                        format!(
                            "unknown model {:?}: flat, per_unit, tiered, volume, stairstep or package",
                            recur_error::excerpt(&p.model)
                        ),
                    );
                }
            }
            let active = current
                .rates
                .iter()
                .filter(|r| r.handle.as_deref() == Some(rd.handle.as_str()) && r.status == Status::Active)
                .max_by_key(|r| r.version);
            let last_version = current
                .rates
                .iter()
                .filter(|r| r.handle.as_deref() == Some(rd.handle.as_str()))
                .map(|r| r.version)
                .max()
                .unwrap_or(0);
            let Some(mut rate) =
                input::rate(&mut v, &rprefix, &rd.input(&rprefix), &desired, &resolve_product, String::new(), 0, now)
            else {
                continue;
            };
            match active {
                Some(cur) if input::same_terms(cur, &rate) => {
                    kept_rates.insert(cur.id.clone());
                    let changed = diff_fields!(cur, rate, [name, description, metadata]);
                    if changed.is_empty() {
                        out.note("rate", &rd.handle, Action::Unchanged, &cur.id, Vec::new());
                    } else {
                        let mut updated = cur.clone();
                        updated.name = rate.name.clone();
                        updated.description = rate.description.clone();
                        updated.metadata = rate.metadata.clone();
                        updated.updated_at = now;
                        out.note("rate", &rd.handle, Action::Changed, &cur.id, changed);
                        out.ops.push(CatalogOp::UpdateRate(updated));
                    }
                }
                Some(cur) => {
                    // New terms: a new version; the old one is archived first
                    // (one active rate per handle).
                    let mut archived = cur.clone();
                    archived.status = Status::Archived;
                    archived.updated_at = now;
                    out.ops.push(CatalogOp::UpdateRate(archived));
                    rate.id = new_id(recur_id::Kind::Rate);
                    rate.version = last_version + 1;
                    let mut fields = term_changes(cur, &rate);
                    fields.push("version".into());
                    out.note("rate", &rd.handle, Action::Changed, &rate.id, fields);
                    out.ops.push(CatalogOp::InsertRate(rate));
                }
                None => {
                    rate.id = new_id(recur_id::Kind::Rate);
                    rate.version = last_version + 1;
                    out.note("rate", &rd.handle, Action::Created, &rate.id, Vec::new());
                    out.ops.push(CatalogOp::InsertRate(rate));
                }
            }
        }
    }
    let resolve_offering = |r: &str| -> Option<String> {
        offering_ids.get(r).cloned().or_else(|| {
            current
                .offerings
                .iter()
                .find(|o| o.id == r && o.handle.is_none() && o.status == Status::Active)
                .map(|o| o.id.clone())
        })
    };

    // ---------- coupons ----------
    for (i, d) in doc.coupons.iter().enumerate() {
        let prefix = format!("coupons[{i}]");
        if !d.duration.is_empty() && d.duration.parse::<CouponDuration>().is_err() {
            v.add(
                format!("{prefix}.duration"),
                format!("unknown duration {:?}: once, repeating or forever", recur_error::excerpt(&d.duration)),
            );
        }
        let input = match d.input() {
            Ok(input) => input,
            Err(problem) => {
                v.add(format!("{prefix}.redeem_by"), problem);
                continue;
            }
        };
        let existing = current.coupons.iter().find(|c| c.code == d.code);
        let id = existing.map(|c| c.id.clone()).unwrap_or_else(|| new_id(recur_id::Kind::Coupon));
        let mut desired = input::coupon(&mut v, &prefix, &input, &resolve_offering, &resolve_product, id.clone(), now);
        match existing {
            None => {
                out.note("coupon", &d.code, Action::Created, &id, Vec::new());
                out.ops.push(CatalogOp::InsertCoupon(desired));
            }
            Some(cur) => {
                if !input::same_coupon_terms(cur, &desired) {
                    v.add(
                        prefix.clone(),
                        "a coupon's discount never changes once issued: remove it (it is archived) and add one with a new code",
                    );
                    continue;
                }
                let changed = diff_fields!(cur, desired, [name, max_redemptions, redeem_by, status, metadata]);
                if changed.is_empty() {
                    out.note("coupon", &d.code, Action::Unchanged, &id, Vec::new());
                } else {
                    desired.created_at = cur.created_at;
                    out.note("coupon", &d.code, Action::Changed, &id, changed);
                    out.ops.push(CatalogOp::UpdateCoupon(desired));
                }
            }
        }
    }

    // ---------- what the document no longer holds is archived ----------
    let in_doc_rates: HashSet<&str> =
        doc.offerings.iter().flat_map(|o| o.rates.iter().map(|r| r.handle.as_str())).collect();
    let kept = |r: &Rate| r.handle.as_deref().is_some_and(|h| in_doc_rates.contains(h)) || kept_rates.contains(&r.id);
    archive_missing(&mut out, "rate", &current.rates, |r| r.handle.as_deref().filter(|_| !kept(r)), now);
    archive_missing(
        &mut out,
        "offering",
        &current.offerings,
        |o| o.handle.as_deref().filter(|h| !oh.contains(*h)),
        now,
    );
    archive_missing(&mut out, "product", &current.products, |p| p.handle.as_deref().filter(|h| !ph.contains(*h)), now);
    archive_missing(&mut out, "coupon", &current.coupons, |c| Some(c.code.as_str()).filter(|c| !cc.contains(*c)), now);
    if v.is_empty() { Ok(out) } else { Err(v) }
}

/// Archives each active resource that `missing` names (by its handle, or
/// code) as absent from the document.
fn archive_missing<T: Archivable + HasStatus>(
    out: &mut Plan,
    resource: &'static str,
    current: &[T],
    missing: impl Fn(&T) -> Option<&str>,
    now: DateTime<Utc>,
) {
    for r in current.iter().filter(|r| r.status() == Status::Active) {
        if let Some(key) = missing(r) {
            let mut archived = r.clone();
            archived.archive(now);
            out.note(resource, key, Action::Archived, r.id(), vec!["status".into()]);
            out.ops.push(archived.update_op());
        }
    }
}

/// The status and id every catalog resource has.
trait HasStatus {
    fn status(&self) -> Status;
    fn id(&self) -> &str;
}

macro_rules! has_status {
    ($($ty:ident),+) => {$(
        impl HasStatus for $ty {
            fn status(&self) -> Status {
                self.status
            }
            fn id(&self) -> &str {
                &self.id
            }
        }
    )+};
}

has_status!(Product, Offering, Rate, Coupon);

fn check_text(v: &mut Violations, prefix: &str, name: &str, metadata: &Metadata) {
    super::validate::required(v, &format!("{prefix}.name"), name);
    super::validate::max_len(v, &format!("{prefix}.name"), name, super::validate::NAME_CHARS);
    super::validate::metadata(v, &format!("{prefix}.metadata"), metadata);
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Which terms of a rate differ, by name.
fn term_changes(a: &Rate, b: &Rate) -> Vec<String> {
    let mut fields = diff_fields!(
        a,
        b,
        [
            offering_id,
            currency,
            billing_period,
            timing,
            trial_days,
            contract_term_periods,
            auto_renew,
            notice_period_days,
        ]
    );
    if a.setup_fee.map(|d| d.normalize()) != b.setup_fee.map(|d| d.normalize()) {
        fields.push("setup_fee".into());
    }
    let mut with_new_prices = a.clone();
    with_new_prices.prices = b.prices.clone();
    if !input::same_terms(a, &with_new_prices) {
        fields.push("prices".into());
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> impl FnMut(recur_id::Kind) -> String {
        let mut n = 0;
        move |k: recur_id::Kind| {
            n += 1;
            format!("{}_{n}", k.prefix())
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid")
    }

    /// Applies a plan's ops to a snapshot, as the repository would.
    fn apply(s: &mut Snapshot, plan: &Plan) {
        for op in &plan.ops {
            match op.clone() {
                CatalogOp::InsertProduct(p) => s.products.push(p),
                CatalogOp::UpdateProduct(p) => {
                    let slot = s.products.iter_mut().find(|x| x.id == p.id).expect("exists");
                    *slot = p;
                }
                CatalogOp::InsertOffering(o) => s.offerings.push(o),
                CatalogOp::UpdateOffering(o) => {
                    let slot = s.offerings.iter_mut().find(|x| x.id == o.id).expect("exists");
                    *slot = o;
                }
                CatalogOp::InsertRate(r) => s.rates.push(r),
                CatalogOp::UpdateRate(r) => {
                    let slot = s.rates.iter_mut().find(|x| x.id == r.id).expect("exists");
                    *slot = r;
                }
                CatalogOp::InsertCoupon(c) => s.coupons.push(c),
                CatalogOp::UpdateCoupon(c) => {
                    let slot = s.coupons.iter_mut().find(|x| x.id == c.id).expect("exists");
                    *slot = c;
                }
            }
        }
    }

    fn demo() -> CatalogDoc {
        document::parse(crate::DEMO_CATALOG, None).expect("demo catalog parses")
    }

    #[test]
    fn the_demo_catalog_applies_then_is_unchanged() {
        let mut s = Snapshot::default();
        let first = plan(&demo(), &s, now(), &mut ids()).expect("valid");
        assert!(first.changes.iter().all(|c| c.action == Action::Created));
        assert_eq!(first.changes.iter().filter(|c| c.resource == "rate").count(), 8);
        apply(&mut s, &first);
        let second = plan(&demo(), &s, now(), &mut ids()).expect("valid");
        assert!(second.ops.is_empty(), "re-applying writes nothing: {:?}", second.ops);
        assert!(second.changes.iter().all(|c| c.action == Action::Unchanged));
        // The export of what was applied plans no change either.
        let exported = document::export(&s);
        let third = plan(&exported, &s, now(), &mut ids()).expect("valid");
        assert!(third.ops.is_empty(), "{:?}", third.changes);
    }

    #[test]
    fn a_price_change_is_a_new_version_and_the_old_one_is_archived() {
        let mut s = Snapshot::default();
        let p = plan(&demo(), &s, now(), &mut ids()).expect("valid");
        apply(&mut s, &p);
        let text = crate::DEMO_CATALOG.replace(
            "platform-fee: {model: flat, flat_amount: \"29\"}",
            "platform-fee: {model: flat, flat_amount: \"39\"}",
        );
        let p = plan(&document::parse(&text, None).expect("parses"), &s, now(), &mut ids()).expect("valid");
        let change = p.changes.iter().find(|c| c.handle == "starter-monthly").expect("change");
        assert_eq!(change.action, Action::Changed);
        assert!(
            change.changed_fields.contains(&"prices".to_string())
                && change.changed_fields.contains(&"version".to_string())
        );
        apply(&mut s, &p);
        let versions: Vec<(u32, Status)> = s
            .rates
            .iter()
            .filter(|r| r.handle.as_deref() == Some("starter-monthly"))
            .map(|r| (r.version, r.status))
            .collect();
        assert_eq!(versions, vec![(1, Status::Archived), (2, Status::Active)]);
    }

    #[test]
    fn removed_resources_are_archived_and_dangling_references_refused() {
        let mut s = Snapshot::default();
        let p = plan(&demo(), &s, now(), &mut ids()).expect("valid");
        apply(&mut s, &p);
        let mut doc = demo();
        doc.offerings.retain(|o| o.handle != "gamefly-basic");
        doc.products.retain(|p| p.handle != "game-rentals");
        let p = plan(&doc, &s, now(), &mut ids()).expect("valid");
        let archived: Vec<&str> =
            p.changes.iter().filter(|c| c.action == Action::Archived).map(|c| c.handle.as_str()).collect();
        assert_eq!(archived, vec!["gamefly-basic-monthly", "gamefly-basic", "game-rentals"]);

        let mut dangling = demo();
        dangling.offerings[0].products.push("no-such-product".into());
        let err = plan(&dangling, &s, now(), &mut ids()).expect_err("dangling");
        let e = err.into_error();
        assert!(e.violations().iter().any(|v| v.field == "offerings[0].products[1]"), "{e:?}");
    }
}
