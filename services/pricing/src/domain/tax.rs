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

/// Applies `tax` to a line whose list amount is `base` (already rounded).
/// Exclusive: the tax is added. Inclusive: the tax is carved out of the list
/// amount, so the customer pays exactly the list amount.
pub fn taxed(base: Decimal, currency: Currency, tax: Option<&TaxRule>) -> Amounts {
    let hundred = Decimal::ONE_HUNDRED;
    match tax {
        None => {
            Amounts { without_tax: base, discount: Decimal::ZERO, tax: currency.round(Decimal::ZERO), amount: base }
        }
        Some(t) if t.inclusive => {
            let tax = currency.round(base * t.percent / (hundred + t.percent));
            Amounts { without_tax: base - tax, discount: Decimal::ZERO, tax, amount: base }
        }
        Some(t) => {
            let tax = currency.round(base * t.percent / hundred);
            Amounts { without_tax: base, discount: Decimal::ZERO, tax, amount: base + tax }
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
        assert_eq!(taxed(d("100.00"), usd, Some(&de)).amount, d("119.00"));
        let de_incl = TaxRule { inclusive: true, ..de };
        // 119.00 includes 19%: tax = 119 × 19/119 = 19.00, net 100.00
        let a = taxed(d("119.00"), usd, Some(&de_incl));
        assert_eq!((a.without_tax, a.tax, a.amount), (d("100.00"), d("19.00"), d("119.00")));
        // 10.00 includes 19%: tax = 1.5966… → 1.60, net 8.40
        let a = taxed(d("10.00"), usd, Some(&de_incl));
        assert_eq!((a.without_tax, a.tax, a.amount), (d("8.40"), d("1.60"), d("10.00")));
    }
}
