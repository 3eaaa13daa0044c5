//! Rules for catalog resources. Each check names the field it is about,
//! relative to a prefix the caller gives (`product`, `rate.prices[2]`, …), so
//! every violation points at the offending part of the request.

use recur_error::Violations;
use recur_money::Currency;
use rust_decimal::Decimal;

use super::{Price, PricingModel, Product, ProductKind, Tier};

/// Places a quantity (bound) may have.
pub const QUANTITY_PLACES: u32 = 6;
/// Places a unit price may have (0.0012 per API call needs 4).
pub const UNIT_PRICE_PLACES: u32 = 10;

/// Handles: 1–128 of `[A-Za-z0-9._-]`, starting with a letter or digit, and
/// never shaped like an id (so a lookup is never ambiguous).
pub fn handle(v: &mut Violations, field: &str, handle: &str) {
    let ok_chars = handle.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let starts_ok = handle.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if handle.len() > 128 || !ok_chars || !starts_ok {
        v.add(field, "must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit");
    } else if recur_id::looks_like_id(handle) {
        v.add(field, "must not look like a Recur id (prefix followed by '_')");
    }
}

pub fn required(v: &mut Violations, field: &str, value: &str) {
    if value.trim().is_empty() {
        v.add(field, "is required");
    }
}

pub fn max_len(v: &mut Violations, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        v.add(field, format!("must be at most {max} characters"));
    }
}

pub fn metadata(v: &mut Violations, field: &str, md: &super::Metadata) {
    if md.len() > 50 {
        v.add(field, "at most 50 entries");
    }
    for (k, val) in md {
        if k.is_empty() || k.len() > 40 {
            v.add(format!("{field}[{k}]"), "keys must be 1-40 characters");
        }
        if val.len() > 500 {
            v.add(format!("{field}[{k}]"), "values must be at most 500 characters");
        }
    }
}

/// Parses an optional non-negative decimal with at most `places` places.
pub fn decimal(v: &mut Violations, field: &str, raw: &str, places: u32) -> Option<Decimal> {
    if raw.is_empty() {
        return None;
    }
    match recur_money::parse_non_negative(raw) {
        Ok(d) if d.normalize().scale() > places => {
            v.add(field, format!("must have at most {places} decimal places"));
            None
        }
        Ok(d) => Some(d),
        Err(e) => {
            v.add(field, e.to_string());
            None
        }
    }
}

/// Parses an optional non-negative amount exact in `currency`.
pub fn amount(v: &mut Violations, field: &str, raw: &str, currency: Option<Currency>) -> Option<Decimal> {
    let places = currency.map(|c| c.minor_units()).unwrap_or(UNIT_PRICE_PLACES);
    decimal(v, field, raw, places)
}

/// Quantity bounds of a product: min ≤ default ≤ max; on/off products are 0 or 1.
pub fn product_bounds(v: &mut Violations, prefix: &str, p: &Product) {
    if let (Some(min), Some(max)) = (p.min_quantity, p.max_quantity)
        && min > max
    {
        v.add(format!("{prefix}.min_quantity"), format!("{min} is greater than max_quantity {max}"));
    }
    if let Some(d) = p.default_quantity
        && (p.min_quantity.is_some_and(|min| d < min) || p.max_quantity.is_some_and(|max| d > max))
    {
        v.add(format!("{prefix}.default_quantity"), "must lie within [min_quantity, max_quantity]");
    }
    if p.kind == ProductKind::OnOff {
        for (name, q) in [
            ("min_quantity", p.min_quantity),
            ("max_quantity", p.max_quantity),
            ("default_quantity", p.default_quantity),
        ] {
            if q.is_some_and(|q| q > Decimal::ONE || !q.fract().is_zero()) {
                v.add(format!("{prefix}.{name}"), "an on/off product's quantity is 0 or 1");
            }
        }
    }
}

/// The shape a pricing model requires of a price.
pub fn price_shape(v: &mut Violations, prefix: &str, p: &Price) {
    let has_tiers = !p.tiers.is_empty();
    let no = |v: &mut Violations, present: bool, field: &str, model: &str| {
        if present {
            v.add(format!("{prefix}.{field}"), format!("is not used by {model} pricing"));
        }
    };
    match p.model {
        PricingModel::Flat => {
            if p.flat_amount.is_none() {
                v.add(format!("{prefix}.flat_amount"), "is required for FLAT pricing");
            }
            no(v, p.unit_amount.is_some(), "unit_amount", "FLAT");
            no(v, has_tiers, "tiers", "FLAT");
            no(v, p.package_size.is_some(), "package_size", "FLAT");
        }
        PricingModel::PerUnit => {
            if p.unit_amount.is_none() {
                v.add(format!("{prefix}.unit_amount"), "is required for PER_UNIT pricing");
            }
            no(v, p.flat_amount.is_some(), "flat_amount", "PER_UNIT");
            no(v, has_tiers, "tiers", "PER_UNIT");
            no(v, p.package_size.is_some(), "package_size", "PER_UNIT");
        }
        PricingModel::Package => {
            if p.unit_amount.is_none() {
                v.add(format!("{prefix}.unit_amount"), "is required for PACKAGE pricing (the price of one package)");
            }
            match p.package_size {
                Some(n) if n >= 1 => {}
                _ => v.add(format!("{prefix}.package_size"), "must be at least 1 for PACKAGE pricing"),
            }
            no(v, p.flat_amount.is_some(), "flat_amount", "PACKAGE");
            no(v, has_tiers, "tiers", "PACKAGE");
        }
        PricingModel::Tiered | PricingModel::Volume | PricingModel::Stairstep => {
            let model = p.model.as_str().to_ascii_uppercase();
            if !has_tiers {
                v.add(format!("{prefix}.tiers"), format!("{model} pricing needs at least one tier"));
            }
            no(v, p.unit_amount.is_some(), "unit_amount", &model);
            no(v, p.flat_amount.is_some(), "flat_amount", &model);
            no(v, p.package_size.is_some(), "package_size", &model);
            tiers(v, prefix, &p.tiers);
            if p.model == PricingModel::Stairstep {
                for (i, t) in p.tiers.iter().enumerate() {
                    if !t.unit_amount.is_zero() {
                        v.add(format!("{prefix}.tiers[{i}].unit_amount"), "STAIRSTEP tiers have a flat amount only");
                    }
                }
            }
        }
    }
}

/// Tiers ascend strictly by `up_to`; every tier but the last is closed, the
/// last is open-ended.
pub fn tiers(v: &mut Violations, prefix: &str, tiers: &[Tier]) {
    let last = tiers.len().saturating_sub(1);
    let mut previous: Option<Decimal> = None;
    for (i, t) in tiers.iter().enumerate() {
        let field = format!("{prefix}.tiers[{i}].up_to");
        match (t.up_to, i == last) {
            (Some(_), true) => v.add(field, "the last tier must be open-ended (empty up_to)"),
            (None, false) => v.add(field, "only the last tier may be open-ended"),
            (Some(up_to), false) => {
                if up_to <= Decimal::ZERO {
                    v.add(field, "must be greater than 0");
                } else if previous.is_some_and(|p| up_to <= p) {
                    v.add(field, "tiers must ascend: up_to must exceed the previous tier's");
                }
                previous = Some(up_to);
            }
            (None, true) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("literal")
    }

    fn fields(v: Violations) -> Vec<String> {
        match v.finish() {
            Ok(()) => Vec::new(),
            Err(e) => e.violations().iter().map(|x| x.field.clone()).collect(),
        }
    }

    fn tier(up_to: Option<&str>) -> Tier {
        Tier { up_to: up_to.map(d), unit_amount: d("1"), flat_amount: Decimal::ZERO }
    }

    #[test]
    fn tiers_must_ascend_and_end_open() {
        let mut v = Violations::new();
        tiers(&mut v, "p", &[tier(Some("10")), tier(Some("100")), tier(None)]);
        assert!(fields(v).is_empty());

        let mut v = Violations::new();
        tiers(&mut v, "p", &[tier(Some("10")), tier(Some("10")), tier(None)]);
        assert_eq!(fields(v), vec!["p.tiers[1].up_to"]);

        let mut v = Violations::new();
        tiers(&mut v, "p", &[tier(Some("10")), tier(Some("20"))]);
        assert_eq!(fields(v), vec!["p.tiers[1].up_to"]);

        let mut v = Violations::new();
        tiers(&mut v, "p", &[tier(None), tier(None)]);
        assert_eq!(fields(v), vec!["p.tiers[0].up_to"]);
    }

    #[test]
    fn flat_prices_take_no_tiers() {
        let p = Price {
            product_id: "prod_x".into(),
            model: PricingModel::Flat,
            unit_amount: None,
            flat_amount: Some(d("10")),
            tiers: vec![tier(None)],
            package_size: None,
        };
        let mut v = Violations::new();
        price_shape(&mut v, "rate.prices[0]", &p);
        assert_eq!(fields(v), vec!["rate.prices[0].tiers"]);
    }

    #[test]
    fn handles() {
        let mut v = Violations::new();
        handle(&mut v, "h", "gold-plan.v2");
        assert!(fields(v).is_empty());
        for bad in ["", "-x", "a b", "offr_123"] {
            let mut v = Violations::new();
            handle(&mut v, "h", bad);
            assert_eq!(fields(v), vec!["h"], "{bad:?}");
        }
    }

    #[test]
    fn decimals_with_too_many_places() {
        let mut v = Violations::new();
        assert_eq!(decimal(&mut v, "q", "1.5", QUANTITY_PLACES), Some(d("1.5")));
        assert_eq!(decimal(&mut v, "q", "1.1234567", QUANTITY_PLACES), None);
        assert_eq!(decimal(&mut v, "r", "-1", QUANTITY_PLACES), None);
        assert_eq!(decimal(&mut v, "s", "abc", QUANTITY_PLACES), None);
        assert_eq!(fields(v), vec!["q", "r", "s"]);
    }
}
