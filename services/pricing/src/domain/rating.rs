//! What a quantity costs under each pricing model. Amounts here are exact
//! (unrounded); the caller rounds each line once, to its currency.

use rust_decimal::Decimal;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    Flat,
    PerUnit,
    Tiered,
    Volume,
    Stairstep,
    Package,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    /// Inclusive upper bound; `None` for the last, open-ended tier.
    pub up_to: Option<Decimal>,
    pub unit_amount: Decimal,
    pub flat_amount: Decimal,
}

/// A price as the engine sees it (catalog validation guarantees its shape:
/// tiers ascend and end open; package size ≥ 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceSpec {
    pub model: Model,
    pub unit_amount: Decimal,
    pub flat_amount: Decimal,
    pub tiers: Vec<Tier>,
    pub package_size: i64,
}

/// One tier's share of a rated quantity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierApplied {
    pub index: usize,
    pub quantity: Decimal,
    pub unit_amount: Decimal,
    pub flat_amount: Decimal,
    pub amount: Decimal,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rated {
    /// Exact amount, before rounding.
    pub amount: Decimal,
    pub tiers: Vec<TierApplied>,
}

/// The tier `quantity` falls into: the first whose `up_to` is at least it.
fn tier_index(tiers: &[Tier], quantity: Decimal) -> Option<usize> {
    tiers.iter().position(|t| t.up_to.is_none_or(|up| quantity <= up))
}

/// An upper bound of what `quantity` costs under `price` (its largest unit
/// amount times the quantity plus one, plus every flat amount), computed without
/// overflow: `None` when even the bound is beyond `Decimal`. Whenever the
/// bound exists, [`rate`] cannot overflow either; callers check it against
/// the amount ceiling before rating absurd quantities.
pub fn bound(price: &PriceSpec, quantity: Decimal) -> Option<Decimal> {
    let units = price.tiers.iter().map(|t| t.unit_amount.abs()).fold(price.unit_amount.abs(), Decimal::max);
    let flats = price.tiers.iter().try_fold(price.flat_amount.abs(), |acc, t| acc.checked_add(t.flat_amount.abs()))?;
    // A started package counts whole: at most one unit more than the quantity.
    units.checked_mul(quantity.abs().checked_add(Decimal::ONE)?)?.checked_add(flats)
}

/// Rates `quantity` units under `price`. A quantity of zero (a component
/// switched off, no usage) costs nothing under every model.
pub fn rate(price: &PriceSpec, quantity: Decimal) -> Rated {
    if quantity.is_zero() {
        return Rated { amount: Decimal::ZERO, tiers: Vec::new() };
    }
    match price.model {
        Model::Flat => Rated { amount: price.flat_amount, tiers: Vec::new() },
        Model::PerUnit => Rated { amount: price.unit_amount * quantity, tiers: Vec::new() },
        Model::Package => {
            let size = Decimal::from(price.package_size.max(1));
            let packages = (quantity / size).ceil();
            Rated { amount: price.unit_amount * packages, tiers: Vec::new() }
        }
        Model::Tiered => {
            // Graduated: each unit is priced in the tier it falls in, and the
            // flat amount of every tier reached is added.
            let mut applied = Vec::new();
            let mut lower = Decimal::ZERO;
            let mut total = Decimal::ZERO;
            for (index, t) in price.tiers.iter().enumerate() {
                if quantity <= lower {
                    break;
                }
                let upper = t.up_to.map_or(quantity, |u| u.min(quantity));
                let units = (upper - lower).max(Decimal::ZERO);
                let amount = units * t.unit_amount + t.flat_amount;
                total += amount;
                applied.push(TierApplied {
                    index,
                    quantity: units,
                    unit_amount: t.unit_amount,
                    flat_amount: t.flat_amount,
                    amount,
                });
                match t.up_to {
                    Some(u) if quantity > u => lower = u,
                    _ => break,
                }
            }
            Rated { amount: total, tiers: applied }
        }
        Model::Volume | Model::Stairstep => {
            let Some(index) = tier_index(&price.tiers, quantity) else {
                return Rated { amount: Decimal::ZERO, tiers: Vec::new() };
            };
            let t = &price.tiers[index];
            let unit_part = if price.model == Model::Volume { t.unit_amount * quantity } else { Decimal::ZERO };
            let amount = unit_part + t.flat_amount;
            Rated {
                amount,
                tiers: vec![TierApplied {
                    index,
                    quantity,
                    unit_amount: if price.model == Model::Volume { t.unit_amount } else { Decimal::ZERO },
                    flat_amount: t.flat_amount,
                    amount,
                }],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold_and_never_overflow() {
        let tiered = PriceSpec {
            model: Model::Tiered,
            unit_amount: Decimal::ZERO,
            flat_amount: Decimal::ZERO,
            tiers: vec![
                Tier { up_to: Some(Decimal::from(10)), unit_amount: Decimal::from(5), flat_amount: Decimal::from(7) },
                Tier { up_to: None, unit_amount: Decimal::from(3), flat_amount: Decimal::from(2) },
            ],
            package_size: 1,
        };
        for q in [1, 10, 11, 1000] {
            let q = Decimal::from(q);
            let b = bound(&tiered, q).expect("fits");
            assert!(rate(&tiered, q).amount <= b, "{q}");
        }
        let package = PriceSpec {
            model: Model::Package,
            unit_amount: Decimal::from(100),
            flat_amount: Decimal::ZERO,
            tiers: Vec::new(),
            package_size: 10,
        };
        let half = Decimal::new(5, 1);
        assert!(rate(&package, half).amount <= bound(&package, half).expect("fits"), "a started package");
        // 2·10^28 seats at 5 each is beyond Decimal: no bound, and no panic.
        let huge = Decimal::from_i128_with_scale(2 * 10_i128.pow(28), 0);
        assert_eq!(bound(&tiered, huge), None);
        assert_eq!(bound(&tiered, Decimal::MAX), None);
    }
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).expect("literal")
    }

    /// 1–10 at 5.00, 11–50 at 4.00 (+10 flat), 51+ at 3.00.
    fn tiers() -> Vec<Tier> {
        vec![
            Tier { up_to: Some(d("10")), unit_amount: d("5"), flat_amount: d("0") },
            Tier { up_to: Some(d("50")), unit_amount: d("4"), flat_amount: d("10") },
            Tier { up_to: None, unit_amount: d("3"), flat_amount: d("0") },
        ]
    }

    fn spec(model: Model) -> PriceSpec {
        PriceSpec { model, unit_amount: d("0"), flat_amount: d("0"), tiers: tiers(), package_size: 1 }
    }

    #[test]
    fn graduated_prices_each_unit_in_its_tier() {
        // 10 units: 10 × 5 = 50
        assert_eq!(rate(&spec(Model::Tiered), d("10")).amount, d("50"));
        // 11 units: 10 × 5 + 1 × 4 + 10 flat = 64
        assert_eq!(rate(&spec(Model::Tiered), d("11")).amount, d("64"));
        // 60 units: 50 + 40 × 4 + 10 + 10 × 3 = 250
        let r = rate(&spec(Model::Tiered), d("60"));
        assert_eq!(r.amount, d("250"));
        assert_eq!(r.tiers.iter().map(|t| t.quantity).collect::<Vec<_>>(), vec![d("10"), d("40"), d("10")]);
    }

    #[test]
    fn volume_prices_all_units_at_the_reached_tier() {
        assert_eq!(rate(&spec(Model::Volume), d("10")).amount, d("50")); // 10 × 5
        assert_eq!(rate(&spec(Model::Volume), d("11")).amount, d("54")); // 11 × 4 + 10
        assert_eq!(rate(&spec(Model::Volume), d("51")).amount, d("153")); // 51 × 3
    }

    #[test]
    fn stairstep_takes_the_flat_amount_of_the_step() {
        let mut p = spec(Model::Stairstep);
        for (t, flat) in p.tiers.iter_mut().zip(["100", "300", "500"]) {
            t.unit_amount = d("0");
            t.flat_amount = d(flat);
        }
        assert_eq!(rate(&p, d("1")).amount, d("100"));
        assert_eq!(rate(&p, d("10")).amount, d("100"));
        assert_eq!(rate(&p, d("10.5")).amount, d("300"));
        assert_eq!(rate(&p, d("1000")).amount, d("500"));
    }

    #[test]
    fn packages_round_up() {
        let p = PriceSpec {
            model: Model::Package,
            unit_amount: d("9.99"),
            flat_amount: d("0"),
            tiers: vec![],
            package_size: 100,
        };
        assert_eq!(rate(&p, d("0")).amount, d("0"));
        assert_eq!(rate(&p, d("1")).amount, d("9.99"));
        assert_eq!(rate(&p, d("100")).amount, d("9.99"));
        assert_eq!(rate(&p, d("101")).amount, d("19.98"));
    }

    #[test]
    fn zero_quantity_costs_nothing() {
        for model in [Model::Flat, Model::PerUnit, Model::Tiered, Model::Volume, Model::Stairstep, Model::Package] {
            let mut p = spec(model);
            p.flat_amount = d("100");
            p.unit_amount = d("1");
            assert_eq!(rate(&p, d("0")).amount, d("0"), "{model:?}");
        }
    }

    #[test]
    fn flat_and_per_unit() {
        let flat = PriceSpec {
            model: Model::Flat,
            unit_amount: d("0"),
            flat_amount: d("100"),
            tiers: vec![],
            package_size: 1,
        };
        assert_eq!(rate(&flat, d("3")).amount, d("100"));
        let per = PriceSpec {
            model: Model::PerUnit,
            unit_amount: d("0.0012"),
            flat_amount: d("0"),
            tiers: vec![],
            package_size: 1,
        };
        assert_eq!(rate(&per, d("1234")).amount, d("1.4808"));
    }
}
