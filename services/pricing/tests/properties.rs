//! Properties of the pricing engine, each checked on 10,000 random cases.

use std::str::FromStr;

use chrono::{DateTime, Duration as Span, NaiveDate, Utc};
use proptest::prelude::*;
use recur_money::Currency;
use recur_pricing::domain::coupon::{CouponSpec, Discount, Duration};
use recur_pricing::domain::period::{Period, Unit, local_midnight, nth_start};
use recur_pricing::domain::proration::{ChangeInput, LineKind, Mode, Side, Timing, preview, prorate};
use recur_pricing::domain::quote::{Amounts, Billing, CartLine, CartOffering, Quote, QuoteInput, RateTerms, quote};
use recur_pricing::domain::rating::{Model, PriceSpec, Tier, rate};
use recur_pricing::domain::tax::TaxRule;
use rust_decimal::Decimal;

const CASES: u32 = 10_000;

fn currency() -> impl Strategy<Value = Currency> {
    prop_oneof![Just("JPY"), Just("USD"), Just("EUR"), Just("KWD")].prop_map(|c| Currency::from_code(c).expect("known"))
}

/// A non-negative decimal with `places` places, below `max_units`.
fn decimal(max_units: i64, places: u32) -> impl Strategy<Value = Decimal> {
    (0..max_units * 10_i64.pow(places)).prop_map(move |m| Decimal::new(m, places))
}

fn tiers() -> impl Strategy<Value = Vec<Tier>> {
    prop::collection::vec((1i64..50, decimal(20, 4), decimal(20, 2)), 1..4).prop_map(|steps| {
        let mut up = Decimal::ZERO;
        let n = steps.len();
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (step, unit, flat))| {
                up += Decimal::from(step);
                Tier { up_to: (i + 1 < n).then_some(up), unit_amount: unit, flat_amount: flat }
            })
            .collect()
    })
}

fn price() -> impl Strategy<Value = PriceSpec> {
    (0..6u8, decimal(500, 4), decimal(500, 2), tiers(), 1i64..1000).prop_map(|(m, unit, flat, tiers, package)| {
        let model =
            [Model::Flat, Model::PerUnit, Model::Tiered, Model::Volume, Model::Stairstep, Model::Package][m as usize];
        PriceSpec { model, unit_amount: unit, flat_amount: flat, tiers, package_size: package }
    })
}

fn line() -> impl Strategy<Value = CartLine> {
    (price(), decimal(200, 3), 0..3u8, "[a-c]").prop_map(|(price, quantity, b, id)| CartLine {
        product_id: format!("prod_{id}"),
        name: id,
        billing: [Billing::InAdvance, Billing::InArrears, Billing::OneTime][b as usize],
        quantity,
        price,
    })
}

fn coupon() -> impl Strategy<Value = CouponSpec> {
    (any::<bool>(), decimal(100, 2), 0..3u8, 0..4u32, 0..3u32, prop::option::of("[a-c]")).prop_map(
        |(percent, amount, dur, periods, applied, product)| CouponSpec {
            code: format!("C{periods}{applied}"),
            discount: if percent {
                Discount::Percent(amount.min(Decimal::ONE_HUNDRED))
            } else {
                Discount::Fixed(amount)
            },
            duration: [Duration::Once, Duration::Repeating(periods.max(1)), Duration::Forever][dur as usize],
            periods_applied: applied,
            offering_ids: vec![],
            product_ids: product.map(|p| vec![format!("prod_{p}")]).unwrap_or_default(),
        },
    )
}

fn tax() -> impl Strategy<Value = Option<TaxRule>> {
    prop::option::of((decimal(30, 3), any::<bool>()).prop_map(|(percent, inclusive)| TaxRule {
        percent,
        jurisdiction: "XX".into(),
        inclusive,
    }))
}

fn cart() -> impl Strategy<Value = QuoteInput> {
    (
        currency(),
        prop::collection::vec((prop::collection::vec(line(), 1..5), 0..30u32, prop::option::of(decimal(200, 0))), 1..3),
        tax(),
        prop::collection::vec(coupon(), 0..3),
    )
        .prop_map(|(currency, offerings, tax, coupons)| QuoteInput {
            offerings: offerings
                .into_iter()
                .enumerate()
                .map(|(i, (lines, trial_days, setup_fee))| CartOffering {
                    offering_id: format!("offr_{i}"),
                    rate: RateTerms {
                        rate_id: format!("rate_{i}"),
                        currency,
                        period: Period { unit: Unit::Month, count: 1 },
                        trial_days,
                        setup_fee,
                    },
                    lines,
                })
                .collect(),
            start_date: NaiveDate::from_ymd_opt(2026, 1, 31).expect("date"),
            tz: chrono_tz::UTC,
            tax,
            coupons,
            billing_day: None,
            by_second: false,
        })
}

fn all_amounts(q: &Quote) -> Vec<Amounts> {
    let mut out = vec![q.now, q.recurring];
    for o in &q.offerings {
        out.push(o.now);
        out.push(o.recurring);
        for i in &o.items {
            out.push(i.now);
            out.push(i.recurring);
        }
    }
    out
}

fn sum(items: impl Iterator<Item = Amounts>) -> Amounts {
    items.fold(Amounts::default(), |a, b| Amounts {
        without_tax: a.without_tax + b.without_tax,
        discount: a.discount + b.discount,
        tax: a.tax + b.tax,
        amount: a.amount + b.amount,
    })
}

fn same(a: Amounts, b: Amounts) -> bool {
    a.without_tax == b.without_tax && a.discount == b.discount && a.tax == b.tax && a.amount == b.amount
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn lines_add_up_to_totals_exactly(input in cart()) {
        let q = quote(&input).expect("quote");
        for o in &q.offerings {
            prop_assert!(same(o.now, sum(o.items.iter().map(|i| i.now))));
            prop_assert!(same(o.recurring, sum(o.items.iter().map(|i| i.recurring))));
            for i in &o.items {
                // Each line balances: amount = without tax − discount + tax.
                for a in [i.now, i.recurring] {
                    prop_assert_eq!(a.amount, a.without_tax - a.discount + a.tax);
                }
            }
        }
        prop_assert!(same(q.now, sum(q.offerings.iter().map(|o| o.now))));
        prop_assert!(same(q.recurring, sum(q.offerings.iter().map(|o| o.recurring))));
    }

    #[test]
    fn no_amount_is_finer_than_its_currency(input in cart()) {
        let q = quote(&input).expect("quote");
        for a in all_amounts(&q) {
            for x in [a.without_tax, a.discount, a.tax, a.amount] {
                prop_assert!(q.currency.is_exact(x), "{} is finer than {}", x, q.currency);
            }
        }
    }

    #[test]
    fn quotes_are_never_negative(input in cart()) {
        let q = quote(&input).expect("quote");
        for a in all_amounts(&q) {
            for x in [a.without_tax, a.discount, a.tax, a.amount] {
                prop_assert!(x >= Decimal::ZERO, "negative amount {} in a quote", x);
            }
            prop_assert!(a.discount <= a.without_tax + a.tax || a.discount.is_zero());
        }
    }

    #[test]
    fn volume_and_tiered_agree_on_one_tier(unit in decimal(500, 4), flat in decimal(500, 2), q in decimal(10_000, 3)) {
        let tiers = vec![Tier { up_to: None, unit_amount: unit, flat_amount: flat }];
        let volume = PriceSpec { model: Model::Volume, unit_amount: Decimal::ZERO, flat_amount: Decimal::ZERO, tiers: tiers.clone(), package_size: 1 };
        let tiered = PriceSpec { model: Model::Tiered, ..volume.clone() };
        prop_assert_eq!(rate(&volume, q).amount, rate(&tiered, q).amount);
    }

    #[test]
    fn credit_and_charge_of_an_unchanged_plan_make_its_price(price in decimal(100_000, 2), total in 1i64..400, part in 0i64..400, c in currency()) {
        let remaining = part % (total + 1);
        let p = c.round(price);
        let credit = prorate(p, remaining, total, c);
        let used = prorate(p, total - remaining, total, c);
        let unit = Decimal::new(1, c.minor_units());
        prop_assert!((credit + used - p).abs() <= unit, "{} + {} vs {}", credit, used, p);
    }

    #[test]
    fn changing_nothing_prorates_to_zero(lines in prop::collection::vec(line(), 1..5), day in 0i64..31, secs in 0i64..86_400, second_mode in any::<bool>(), c in currency()) {
        let tz: chrono_tz::Tz = "Europe/Berlin".parse().expect("zone");
        let anchor = NaiveDate::from_ymd_opt(2026, 1, 31).expect("date");
        let period = Period { unit: Unit::Month, count: 1 };
        let start = local_midnight(anchor, tz);
        let end = local_midnight(nth_start(anchor, period, 1).expect("date"), tz);
        let at: DateTime<Utc> = (start + Span::days(day) + Span::seconds(secs)).min(end - Span::seconds(1));
        let out = preview(&ChangeInput {
            currency: c,
            tz,
            mode: if second_mode { Mode::Second } else { Mode::Day },
            timing: Timing::Immediate,
            period_start: start,
            period_end: end,
            anchor: None,
            at,
            old: Side { rate_id: "rate_1".into(), period, lines: lines.clone() },
            new: Side { rate_id: "rate_1".into(), period, lines },
        }).expect("preview");
        prop_assert!(out.due_now.is_zero(), "unchanged plan prorated to {}", out.due_now);
        for l in &out.lines {
            prop_assert!(c.is_exact(l.amount));
            match l.kind {
                LineKind::Credit => prop_assert!(l.amount <= Decimal::ZERO),
                LineKind::Charge => prop_assert!(l.amount >= Decimal::ZERO, "a negative charge {}", l.amount),
            }
        }
    }
}

#[test]
fn the_strategies_cover_every_model() {
    // A sanity check of the generators themselves: a fixed case of each.
    let d = |s: &str| Decimal::from_str(s).expect("literal");
    let t = vec![Tier { up_to: None, unit_amount: d("2"), flat_amount: d("1") }];
    for model in [Model::Flat, Model::PerUnit, Model::Tiered, Model::Volume, Model::Stairstep, Model::Package] {
        let p = PriceSpec { model, unit_amount: d("2"), flat_amount: d("1"), tiers: t.clone(), package_size: 2 };
        assert!(rate(&p, d("3")).amount > Decimal::ZERO, "{model:?}");
    }
}
