//! Tax: a rule picked by jurisdiction, applied per line and rounded once.

use recur_money::Currency;
use rust_decimal::Decimal;

use super::quote::Amounts;

/// The tax that applies to a customer's lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaxRule {
    /// Percentage, e.g. 8.25.
    pub percent: Decimal,
    /// "US-CA", "DE", …
    pub jurisdiction: String,
    /// Whether list prices already include the tax.
    pub inclusive: bool,
}

/// A configured rate for a jurisdiction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JurisdictionRate {
    pub country: String,
    pub state: String,
    pub percent: Decimal,
}

/// Picks the rate for an address: the state's rate wins over the country's.
/// `None` when the tenant configured neither (no tax is due there).
pub fn rule_for(rates: &[JurisdictionRate], country: &str, state: &str, inclusive: bool) -> Option<TaxRule> {
    let state_rate = (!state.is_empty())
        .then(|| rates.iter().find(|r| r.country.eq_ignore_ascii_case(country) && r.state.eq_ignore_ascii_case(state)))
        .flatten();
    let rate =
        state_rate.or_else(|| rates.iter().find(|r| r.country.eq_ignore_ascii_case(country) && r.state.is_empty()))?;
    let jurisdiction = if rate.state.is_empty() {
        rate.country.to_ascii_uppercase()
    } else {
        format!("{}-{}", rate.country.to_ascii_uppercase(), rate.state.to_ascii_uppercase())
    };
    Some(TaxRule { percent: rate.percent, jurisdiction, inclusive })
}

/// What the customer is taxed with, as far as the engine is concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaxQuery {
    pub country: String,
    pub state: String,
    pub exempt: bool,
    /// The tenant's rates and whether its prices include tax.
    pub rates: Vec<JurisdictionRate>,
    pub prices_include_tax: bool,
}

/// Where tax rules come from. The built-in engine reads the tenant's own
/// rates; an external engine (Avalara, TaxJar, …) would implement the same.
pub trait TaxEngine: Send + Sync {
    /// The rule for a customer; `None` when no tax is due.
    fn rule(&self, query: &TaxQuery) -> Option<TaxRule>;
}

/// The tenant's rates by jurisdiction: state, then country; exempt
/// customers pay none.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltInTax;

impl TaxEngine for BuiltInTax {
    fn rule(&self, q: &TaxQuery) -> Option<TaxRule> {
        if q.exempt {
            return None;
        }
        rule_for(&q.rates, &q.country, &q.state, q.prices_include_tax)
    }
}

/// A line's amounts from its list amount `base` and its `discount` (both
/// already rounded). Exclusive: tax is added to what is left after the
/// discount. Inclusive: the list amount already holds the tax, which is
/// carved out of what is left, so the customer pays exactly that. Either
/// way `amount = without_tax - discount + tax`.
pub fn taxed(base: Decimal, discount: Decimal, currency: Currency, tax: Option<&TaxRule>) -> Amounts {
    let hundred = Decimal::ONE_HUNDRED;
    let net = base - discount;
    match tax {
        None => Amounts { without_tax: base, discount, tax: currency.round(Decimal::ZERO), amount: net },
        Some(t) if t.inclusive => {
            let tax = currency.round(net * t.percent / (hundred + t.percent));
            Amounts { without_tax: base - tax, discount, tax, amount: net }
        }
        Some(t) => {
            let tax = currency.round(net * t.percent / hundred);
            Amounts { without_tax: base, discount, tax, amount: net + tax }
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

    fn rates() -> Vec<JurisdictionRate> {
        vec![
            JurisdictionRate { country: "US".into(), state: "CA".into(), percent: d("7.25") },
            JurisdictionRate { country: "US".into(), state: "".into(), percent: d("5") },
            JurisdictionRate { country: "DE".into(), state: "".into(), percent: d("19") },
        ]
    }

    #[test]
    fn state_wins_over_country() {
        assert_eq!(rule_for(&rates(), "US", "CA", false).map(|r| r.percent), Some(d("7.25")));
        assert_eq!(rule_for(&rates(), "US", "NY", false).map(|r| r.jurisdiction), Some("US".into()));
        assert_eq!(rule_for(&rates(), "FR", "", false), None);
    }

    #[test]
    fn exclusive_and_inclusive() {
        let usd = Currency::from_code("USD").expect("usd");
        let de = rule_for(&rates(), "DE", "", false).expect("rule");
        // 100.00 + 19% = 119.00
        assert_eq!(taxed(d("100.00"), d("0"), usd, Some(&de)).amount, d("119.00"));
        // 100.00 − 10.00 discount = 90.00, + 19% (17.10) = 107.10
        let a = taxed(d("100.00"), d("10.00"), usd, Some(&de));
        assert_eq!((a.without_tax, a.discount, a.tax, a.amount), (d("100.00"), d("10.00"), d("17.10"), d("107.10")));
        let de_incl = TaxRule { inclusive: true, ..de };
        // 119.00 includes 19%: tax = 119 × 19/119 = 19.00, net 100.00
        let a = taxed(d("119.00"), d("0"), usd, Some(&de_incl));
        assert_eq!((a.without_tax, a.tax, a.amount), (d("100.00"), d("19.00"), d("119.00")));
        // 10.00 includes 19%: tax = 1.5966… → 1.60, net 8.40
        let a = taxed(d("10.00"), d("0"), usd, Some(&de_incl));
        assert_eq!((a.without_tax, a.tax, a.amount), (d("8.40"), d("1.60"), d("10.00")));

        // Exempt customers pay none, whatever the jurisdiction.
        let q = TaxQuery { country: "DE".into(), exempt: true, rates: rates(), ..Default::default() };
        assert_eq!(BuiltInTax.rule(&q), None);
        assert_eq!(BuiltInTax.rule(&TaxQuery { exempt: false, ..q }).map(|r| r.percent), Some(d("19")));
    }
}
