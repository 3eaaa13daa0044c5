//! Catalog as code: the declarative document (YAML or JSON) that
//! `ApplyCatalog` takes and `ExportCatalog` gives. Products, offerings (with
//! their rates) and coupons are keyed by handle (coupons by code); references
//! between them use handles (or ids of resources the document does not
//! manage). Amounts may be written as strings ("0.0012") or numbers.

use std::collections::BTreeMap;
use std::fmt;

use recur_error::{AppError, AppResult};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tonic::Code;

use super::input::{CouponInput, PriceInput, ProductInput, RateInput, TierInput};
use super::*;

pub mod scan;

/// A decimal as the document wrote it: a string, or a number read back as
/// its shortest decimal spelling (never through arithmetic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Num(pub String);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Num, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal number or a string holding one")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Num, E> {
                Ok(Num(s.trim().to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Num, E> {
                Ok(Num(n.to_string()))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Num, E> {
                Ok(Num(n.to_string()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Num, E> {
                if !n.is_finite() {
                    return Err(E::custom("not a finite number"));
                }
                // Rust prints the shortest spelling that reads back as the
                // same f64, which is what the author wrote ("0.0012").
                Ok(Num(format!("{n}")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogDoc {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<ProductDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offerings: Vec<OfferingDoc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coupons: Vec<CouponDoc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductDoc {
    pub handle: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// recurring, per_unit, on_off, metered or one_time.
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tax_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_quantity: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_quantity: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_quantity: Option<Num>,
    /// Metered products: sum (default), count, max, unique_count or latest.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub aggregation: String,
    /// unique_count: the property whose distinct values are counted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub aggregation_property: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Metadata,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferingDoc {
    pub handle: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Handles (or ids) of the products it includes.
    pub products: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rates: Vec<RateDoc>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodDoc {
    /// day, week, month or year.
    pub unit: String,
    #[serde(default = "one")]
    pub count: i64,
}

fn one() -> i64 {
    1
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateDoc {
    pub handle: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub currency: String,
    pub billing_period: PeriodDoc,
    /// in_advance (default) or in_arrears.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timing: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub trial_days: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub contract_term_periods: i64,
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto_renew: bool,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub notice_period_days: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_fee: Option<Num>,
    /// Product handle (or id) → its price.
    pub prices: BTreeMap<String, PriceDoc>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Metadata,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceDoc {
    /// flat, per_unit, tiered, volume, stairstep or package.
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_amount: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat_amount: Option<Num>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tiers: Vec<TierDoc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_size: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierDoc {
    /// Inclusive upper bound; absent on the last, open-ended tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_to: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_amount: Option<Num>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat_amount: Option<Num>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponDoc {
    pub code: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// For a percent coupon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_off: Option<Num>,
    /// For a fixed-amount coupon: currency → amount.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub amounts_off: BTreeMap<String, Num>,
    /// once, repeating or forever.
    pub duration: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub duration_periods: i64,
    /// Handles (or ids) of the offerings and products it applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offerings: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_redemptions: i64,
    /// RFC 3339 instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeem_by: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: Metadata,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl CatalogDoc {
    /// A document that holds no resource at all: applying it archives every
    /// handled resource of the tenant.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty() && self.offerings.is_empty() && self.coupons.is_empty()
    }
}

/// The largest document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// The deepest nesting accepted (flow `[`/`{` and block collections alike);
/// a catalog document needs about ten.
pub const MAX_DEPTH: usize = 32;
/// The most values (scalars, keys, collections) a YAML document may hold
/// once its aliases are expanded.
pub const MAX_EXPANDED_VALUES: usize = 1_000_000;

fn too_large(message: String, description: &str) -> AppError {
    AppError::new(Code::InvalidArgument, "DOCUMENT_TOO_LARGE", message).with_field("document", description)
}

/// Refuses a document too large or nested too deeply, before any parser
/// sees it: both cost the parser far more than their size.
pub fn check_limits(text: &str, format: Format) -> AppResult<()> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(too_large(
            format!("the document is {} bytes; at most 4 MiB ({MAX_DOCUMENT_BYTES} bytes) are accepted", text.len()),
            "at most 4 MiB",
        ));
    }
    let deep = match format {
        Format::Json => scan::json_depth(text, MAX_DEPTH).err(),
        Format::Yaml => scan::yaml_depth(text, MAX_DEPTH).err(),
    };
    match deep {
        Some(at) => Err(AppError::new(
            Code::InvalidArgument,
            "DOCUMENT_TOO_DEEP",
            format!("the document nests deeper than {MAX_DEPTH} levels (line {})", at.line),
        )
        .with_field("document", format!("nests deeper than {MAX_DEPTH} levels at line {}", at.line))),
        None => Ok(()),
    }
}

/// Reads a document; `format` `None` guesses (JSON starts with `{`). A
/// document over the limits, or one that does not read as a catalog, is
/// INVALID_ARGUMENT on the field `document`.
pub fn parse(text: &str, format: Option<Format>) -> AppResult<CatalogDoc> {
    let format = format.unwrap_or(if text.trim_start().starts_with('{') { Format::Json } else { Format::Yaml });
    check_limits(text, format)?;
    let invalid = |e: String| AppError::invalid("document", e);
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| invalid(e.to_string())),
        Format::Yaml if text.trim().is_empty() => Ok(CatalogDoc::default()),
        Format::Yaml => {
            // Aliases can make a small document huge ("billion laughs", or
            // one big mapping repeated in every product): count what they
            // expand to before building anything from it.
            if text.contains('*') && expands_beyond(text, MAX_EXPANDED_VALUES) {
                return Err(too_large(
                    format!("the document's aliases expand it to more than {MAX_EXPANDED_VALUES} values"),
                    "its aliases expand it past the limit",
                ));
            }
            serde_yaml_ng::from_str(text).map_err(|e| invalid(e.to_string()))
        }
    }
}

/// Whether the YAML `text`, aliases expanded, holds more than `limit`
/// values. Stops counting at the limit, so it costs at most that much.
fn expands_beyond(text: &str, limit: usize) -> bool {
    let budget = Budget { left: std::cell::Cell::new(limit), exceeded: std::cell::Cell::new(false) };
    let read = de::DeserializeSeed::deserialize(&budget, serde_yaml_ng::Deserializer::from_str(text));
    // serde_yaml_ng itself stops following aliases after 100 per event of
    // the document, which a small exponential bomb reaches first. A document
    // that fails to read for another reason is left to the real parse, which
    // says why.
    budget.exceeded.get() || read.is_err_and(|e| e.to_string().starts_with("repetition limit exceeded"))
}

struct Budget {
    left: std::cell::Cell<usize>,
    exceeded: std::cell::Cell<bool>,
}

impl Budget {
    fn spend<E: de::Error>(&self) -> Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("too many values"))
            }
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for &Budget {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &Budget {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.spend()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.spend()
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<(), E> {
        self.spend()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.spend()
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<(), E> {
        self.spend()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.spend()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.spend()
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<(), E> {
        self.spend()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.spend()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.spend()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend()?;
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.spend()?;
        d.deserialize_any(self)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.spend()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.spend()?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged value (`!tag value`): the tag, then the value.
        self.spend()?;
        let ((), variant) = data.variant_seed(self)?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

pub fn render(doc: &CatalogDoc, format: Format) -> Result<String, String> {
    match format {
        Format::Json => serde_json::to_string_pretty(doc).map_err(|e| e.to_string()),
        Format::Yaml => serde_yaml_ng::to_string(doc).map_err(|e| e.to_string()),
    }
}

fn num(n: &Option<Num>) -> String {
    n.as_ref().map(|n| n.0.clone()).unwrap_or_default()
}

fn opt_num(d: Option<rust_decimal::Decimal>) -> Option<Num> {
    d.map(|d| Num(d.normalize().to_string()))
}

/// The document's vocabulary for enum values (lower snake case).
pub fn product_kind(s: &str) -> Option<ProductKind> {
    s.parse().ok()
}

impl ProductDoc {
    pub fn input(&self) -> ProductInput {
        ProductInput {
            handle: self.handle.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            kind: product_kind(&self.kind),
            unit_name: self.unit_name.clone(),
            tax_code: self.tax_code.clone(),
            min_quantity: num(&self.min_quantity),
            max_quantity: num(&self.max_quantity),
            default_quantity: num(&self.default_quantity),
            aggregation: self.aggregation.parse().ok(),
            aggregation_property: self.aggregation_property.clone(),
            metadata: self.metadata.clone(),
        }
    }

    pub fn from_product(p: &Product) -> ProductDoc {
        ProductDoc {
            handle: p.handle.clone().unwrap_or_default(),
            name: p.name.clone(),
            description: p.description.clone(),
            kind: p.kind.as_str().to_string(),
            unit_name: p.unit_name.clone(),
            tax_code: p.tax_code.clone(),
            min_quantity: opt_num(p.min_quantity),
            max_quantity: opt_num(p.max_quantity),
            default_quantity: opt_num(p.default_quantity),
            aggregation: p.aggregation.map(|a| a.as_str().to_string()).unwrap_or_default(),
            aggregation_property: p.aggregation_property.clone(),
            metadata: p.metadata.clone(),
        }
    }
}

impl RateDoc {
    /// The rate's description; `prefix` is where it sits in the document.
    pub fn input(&self, prefix: &str) -> RateInput {
        RateInput {
            handle: self.handle.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            currency: self.currency.clone(),
            period_unit: self.billing_period.unit.parse().ok(),
            period_count: self.billing_period.count,
            timing: if self.timing.is_empty() { Some(Timing::InAdvance) } else { self.timing.parse().ok() },
            trial_days: self.trial_days,
            contract_term_periods: self.contract_term_periods,
            auto_renew: self.auto_renew,
            notice_period_days: self.notice_period_days,
            setup_fee: num(&self.setup_fee),
            prices: self
                .prices
                .iter()
                .map(|(product, p)| PriceInput {
                    path: format!("{prefix}.prices.{product}"),
                    product: product.clone(),
                    model: p.model.parse().ok(),
                    unit_amount: num(&p.unit_amount),
                    flat_amount: num(&p.flat_amount),
                    tiers: p
                        .tiers
                        .iter()
                        .map(|t| TierInput {
                            up_to: num(&t.up_to),
                            unit_amount: num(&t.unit_amount),
                            flat_amount: num(&t.flat_amount),
                        })
                        .collect(),
                    package_size: p.package_size.unwrap_or(0),
                })
                .collect(),
            metadata: self.metadata.clone(),
        }
    }

    /// `product_ref` names a product id the way the document refers to it.
    pub fn from_rate(r: &Rate, product_ref: &dyn Fn(&str) -> String) -> RateDoc {
        RateDoc {
            handle: r.handle.clone().unwrap_or_default(),
            name: r.name.clone(),
            description: r.description.clone(),
            currency: r.currency.code().to_string(),
            billing_period: PeriodDoc {
                unit: r.billing_period.unit.as_str().into(),
                count: i64::from(r.billing_period.count),
            },
            timing: if r.timing == Timing::InAdvance { String::new() } else { r.timing.as_str().into() },
            trial_days: i64::from(r.trial_days),
            contract_term_periods: i64::from(r.contract_term_periods),
            auto_renew: r.auto_renew,
            notice_period_days: i64::from(r.notice_period_days),
            setup_fee: opt_num(r.setup_fee),
            prices: r
                .prices
                .iter()
                .map(|p| {
                    (
                        product_ref(&p.product_id),
                        PriceDoc {
                            model: p.model.as_str().into(),
                            unit_amount: opt_num(p.unit_amount),
                            flat_amount: opt_num(p.flat_amount),
                            tiers: p
                                .tiers
                                .iter()
                                .map(|t| TierDoc {
                                    up_to: opt_num(t.up_to),
                                    unit_amount: (!t.unit_amount.is_zero())
                                        .then(|| Num(t.unit_amount.normalize().to_string())),
                                    flat_amount: (!t.flat_amount.is_zero())
                                        .then(|| Num(t.flat_amount.normalize().to_string())),
                                })
                                .collect(),
                            package_size: p.package_size,
                        },
                    )
                })
                .collect(),
            metadata: r.metadata.clone(),
        }
    }
}

impl CouponDoc {
    pub fn input(&self) -> Result<CouponInput, &'static str> {
        let redeem_by = match &self.redeem_by {
            None => None,
            Some(s) => Some(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|_| "must be an RFC 3339 instant such as 2027-01-01T00:00:00Z")?
                    .with_timezone(&chrono::Utc),
            ),
        };
        let discount_type = match (&self.percent_off, self.amounts_off.is_empty()) {
            (Some(_), _) => Some(DiscountType::Percent),
            (None, false) => Some(DiscountType::FixedAmount),
            (None, true) => None,
        };
        Ok(CouponInput {
            code: self.code.clone(),
            name: self.name.clone(),
            discount_type,
            percent_off: num(&self.percent_off),
            amounts_off: self.amounts_off.iter().map(|(c, a)| (c.clone(), a.0.clone())).collect(),
            duration: self.duration.parse().ok(),
            duration_periods: self.duration_periods,
            offerings: self.offerings.clone(),
            products: self.products.clone(),
            max_redemptions: self.max_redemptions,
            redeem_by,
            metadata: self.metadata.clone(),
        })
    }

    pub fn from_coupon(
        c: &Coupon,
        offering_ref: &dyn Fn(&str) -> String,
        product_ref: &dyn Fn(&str) -> String,
    ) -> CouponDoc {
        CouponDoc {
            code: c.code.clone(),
            name: if c.name == c.code { String::new() } else { c.name.clone() },
            percent_off: opt_num(c.percent_off),
            amounts_off: c.amounts_off.iter().map(|(k, v)| (k.clone(), Num(v.normalize().to_string()))).collect(),
            duration: c.duration.as_str().into(),
            duration_periods: i64::from(c.duration_periods),
            offerings: c.offering_ids.iter().map(|id| offering_ref(id)).collect(),
            products: c.product_ids.iter().map(|id| product_ref(id)).collect(),
            max_redemptions: i64::from(c.max_redemptions),
            redeem_by: c.redeem_by.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            metadata: c.metadata.clone(),
        }
    }
}

/// The document for the active, handled part of a catalog: what
/// `ExportCatalog` returns, and what applying gives back unchanged.
pub fn export(s: &Snapshot) -> CatalogDoc {
    let product_ref = |id: &str| {
        s.products.iter().find(|p| p.id == id).and_then(|p| p.handle.clone()).unwrap_or_else(|| id.to_string())
    };
    let offering_ref = |id: &str| {
        s.offerings.iter().find(|o| o.id == id).and_then(|o| o.handle.clone()).unwrap_or_else(|| id.to_string())
    };
    let active = |st: Status| st == Status::Active;
    let mut doc = CatalogDoc {
        products: s
            .products
            .iter()
            .filter(|p| active(p.status) && p.handle.is_some())
            .map(ProductDoc::from_product)
            .collect(),
        offerings: s
            .offerings
            .iter()
            .filter(|o| active(o.status) && o.handle.is_some())
            .map(|o| OfferingDoc {
                handle: o.handle.clone().unwrap_or_default(),
                name: o.name.clone(),
                description: o.description.clone(),
                products: o.product_ids.iter().map(|id| product_ref(id)).collect(),
                metadata: o.metadata.clone(),
                rates: s
                    .rates
                    .iter()
                    .filter(|r| r.offering_id == o.id && active(r.status) && r.handle.is_some())
                    .map(|r| RateDoc::from_rate(r, &product_ref))
                    .collect(),
            })
            .collect(),
        coupons: s
            .coupons
            .iter()
            .filter(|c| active(c.status))
            .map(|c| CouponDoc::from_coupon(c, &offering_ref, &product_ref))
            .collect(),
    };
    // A stable order, so exports diff cleanly.
    doc.products.sort_by(|a, b| a.handle.cmp(&b.handle));
    doc.offerings.sort_by(|a, b| a.handle.cmp(&b.handle));
    for o in &mut doc.offerings {
        o.rates.sort_by(|a, b| a.handle.cmp(&b.handle));
    }
    doc.coupons.sort_by(|a, b| a.code.cmp(&b.code));
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_spelling() {
        let doc: PriceDoc = serde_yaml_ng::from_str("model: per_unit\nunit_amount: 0.0012\n").expect("yaml");
        assert_eq!(doc.unit_amount, Some(Num("0.0012".into())));
        let doc: PriceDoc = serde_yaml_ng::from_str("model: flat\nflat_amount: 100\n").expect("yaml");
        assert_eq!(doc.flat_amount, Some(Num("100".into())));
        let doc: PriceDoc = serde_json::from_str(r#"{"model":"flat","flat_amount":"19.99"}"#).expect("json");
        assert_eq!(doc.flat_amount, Some(Num("19.99".into())));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = parse("products:\n  - handle: a\n    name: A\n    kind: recurring\n    colour: red\n", None)
            .expect_err("unknown field");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.violations()[0].field, "document");
        assert!(err.violations()[0].description.contains("colour"), "{err:?}");
    }

    #[test]
    fn formats_are_guessed() {
        assert_eq!(parse("{}", None), Ok(CatalogDoc::default()));
        assert_eq!(parse("", None), Ok(CatalogDoc::default()));
        assert_eq!(parse("products: []", None), Ok(CatalogDoc::default()));
    }

    fn refusal(text: &str, format: Option<Format>) -> AppError {
        // Refused, not expanded: a guard that let the document through would
        // exhaust memory here (speed is not asserted in unit tests).
        let err = parse(text, format).expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(err.violations()[0].field, "document", "{err:?}");
        err
    }

    #[test]
    fn deep_documents_are_refused_before_parsing() {
        let deep = format!("{}1{}", "{\"a\":".repeat(60_000), "}".repeat(60_000));
        for format in [None, Some(Format::Yaml), Some(Format::Json)] {
            let err = refusal(&deep, format);
            assert_eq!(err.reason(), "DOCUMENT_TOO_DEEP", "{format:?}");
            assert!(err.message().contains("32"), "{err:?}");
        }
        let deep_block: String = (0..40).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
        assert_eq!(refusal(&deep_block, None).reason(), "DOCUMENT_TOO_DEEP");
        // 32 levels are fine as far as depth goes (the schema refuses them).
        let ok = format!("{}1{}", "[".repeat(32), "]".repeat(32));
        assert_ne!(refusal(&ok, Some(Format::Yaml)).reason(), "DOCUMENT_TOO_DEEP");
    }

    #[test]
    fn large_documents_are_refused() {
        let big = format!("products: []\n{}", "#".repeat(MAX_DOCUMENT_BYTES));
        let err = refusal(&big, None);
        assert_eq!(err.reason(), "DOCUMENT_TOO_LARGE");
        assert!(err.message().contains("4 MiB"), "{err:?}");
        // Just under the limit, a deep one is refused as deep, fast.
        let nearly = "[".repeat(MAX_DOCUMENT_BYTES);
        assert_eq!(refusal(&nearly, Some(Format::Yaml)).reason(), "DOCUMENT_TOO_DEEP");
    }

    #[test]
    fn alias_bombs_are_refused() {
        // The classic, under a field the schema accepts.
        let mut laughs = String::from(
            "products:\n- handle: a\n  name: A\n  kind: recurring\n  metadata:\n    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
        );
        for i in 1..10 {
            let refs = vec![format!("*l{}", i - 1); 9].join(", ");
            laughs.push_str(&format!("    l{i}: &l{i} [{refs}]\n"));
        }
        assert_eq!(refusal(&laughs, None).reason(), "DOCUMENT_TOO_LARGE");
        // One wide mapping repeated in many products: each copy is valid.
        let wide: String = (0..2_000).map(|i| format!("k{i}: v, ")).collect();
        let mut doc = format!("products:\n- {{handle: p0, name: P, kind: recurring, metadata: &m {{{wide}}}}}\n");
        for i in 1..1_000 {
            doc.push_str(&format!("- {{handle: p{i}, name: P, kind: recurring, metadata: *m}}\n"));
        }
        assert_eq!(refusal(&doc, None).reason(), "DOCUMENT_TOO_LARGE");
        // A few aliases are fine.
        let few = "products:\n- {handle: a, name: A, kind: recurring, metadata: &m {k: v}}\n- {handle: b, name: B, kind: recurring, metadata: *m}\n";
        let doc = parse(few, None).expect("aliases within the limit");
        assert_eq!(doc.products[1].metadata, doc.products[0].metadata);
    }
}
