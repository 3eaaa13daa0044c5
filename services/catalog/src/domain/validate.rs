//! Rules for catalog resources. Each check names the field it is about,
//! relative to a prefix the caller gives (`product`, `rate.prices[2]`, …), so
//! every violation points at the offending part of the request.

use recur_error::Violations;
use recur_money::{AmountTooLarge, Ceilings, Currency};
use rust_decimal::Decimal;

use super::{Price, PricingModel, Product, ProductKind, Rate, Tier};

/// The lengths of Recur's limits table (`recur_proto::limits`), which the
/// request codec enforces on every request; a catalog document, which does
/// not pass through it field by field, is held to the same.
pub const NAME_CHARS: usize = recur_proto::limits::Kind::Name.max_chars();
pub const TEXT_CHARS: usize = recur_proto::limits::Kind::Text.max_chars();
pub const CODE_CHARS: usize = recur_proto::limits::Kind::Code.max_chars();

/// Places a quantity (bound) may have.
pub const QUANTITY_PLACES: u32 = 6;
/// Places a unit price may have (0.0012 per API call needs 4).
pub const UNIT_PRICE_PLACES: u32 = 10;

/// Handles: 1–100 of `[A-Za-z0-9._-]`, starting with a letter or digit, and
/// never shaped like an id (so a lookup is never ambiguous).
pub fn handle(v: &mut Violations, field: &str, handle: &str) {
    let ok_chars = handle.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let starts_ok = handle.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if handle.len() > 100 || !ok_chars || !starts_ok {
        v.add(field, "must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit");
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

/// The price amounts of `rate` above the tenant's ceiling for its currency:
/// the setup fee, each price's unit and flat amount, and every tier's.
/// `prefix` names the rate in the request, `price_paths[i]` its `prices[i]`.
pub fn rate_ceilings(prefix: &str, price_paths: &[String], rate: &Rate, ceilings: &Ceilings) -> Vec<AmountTooLarge> {
    let mut out = Vec::new();
    let mut check = |field: String, amount: Option<Decimal>| {
        if let Some(a) = amount
            && let Err(e) = ceilings.check(&field, a, rate.currency)
        {
            out.push(e);
        }
    };
    check(format!("{prefix}.setup_fee"), rate.setup_fee);
    for (i, p) in rate.prices.iter().enumerate() {
        let path = price_paths.get(i).cloned().unwrap_or_else(|| format!("{prefix}.prices[{i}]"));
        check(format!("{path}.unit_amount"), p.unit_amount);
        check(format!("{path}.flat_amount"), p.flat_amount);
        for (t, tier) in p.tiers.iter().enumerate() {
            check(format!("{path}.tiers[{t}].unit_amount"), Some(tier.unit_amount));
            check(format!("{path}.tiers[{t}].flat_amount"), Some(tier.flat_amount));
        }
    }
    out
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
    fn price_amounts_within_the_ceiling() {
        let usd = Currency::from_code("USD").expect("USD");
        let mut rate = Rate {
            id: "rate_x".into(),
            handle: None,
            offering_id: "offr_x".into(),
            name: "r".into(),
            description: String::new(),
            currency: usd,
            billing_period: super::super::BillingPeriod { unit: super::super::PeriodUnit::Month, count: 1 },
            timing: super::super::Timing::InAdvance,
            trial_days: 0,
            contract_term_periods: 0,
            auto_renew: false,
            notice_period_days: 0,
            setup_fee: Some(d("999999.99")),
            prices: vec![Price {
                product_id: "prod_x".into(),
                model: PricingModel::Tiered,
                unit_amount: None,
                flat_amount: None,
                tiers: vec![Tier { up_to: None, unit_amount: d("0.5"), flat_amount: d("1000000") }],
                package_size: None,
            }],
            status: super::super::Status::Active,
            metadata: Default::default(),
            version: 1,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let paths = vec!["rate.prices[0]".to_string()];
        let fields = |r: &Rate, c: &Ceilings| -> Vec<String> {
            rate_ceilings("rate", &paths, r, c).into_iter().map(|e| e.field).collect()
        };
        assert_eq!(fields(&rate, &Ceilings::new()), ["rate.prices[0].tiers[0].flat_amount"]);
        let low = Ceilings::parse([("USD", "0.40")]).expect("valid");
        assert_eq!(
            fields(&rate, &low),
            ["rate.setup_fee", "rate.prices[0].tiers[0].unit_amount", "rate.prices[0].tiers[0].flat_amount"]
        );
        rate.prices[0].tiers[0].flat_amount = d("10");
        assert!(fields(&rate, &Ceilings::new()).is_empty());
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
