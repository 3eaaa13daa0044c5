//! Golden amounts of the pricing engine: every expected figure is worked out
//! by hand in the comment beside it.

use std::str::FromStr;

use chrono::NaiveDate;
use recur_money::Currency;
use recur_pricing::domain::coupon::{CouponSpec, Discount, Duration};
use recur_pricing::domain::period::{Period, Unit};
use recur_pricing::domain::quote::{Billing, CartLine, CartOffering, Quote, QuoteInput, RateTerms, quote};
use recur_pricing::domain::rating::{Model, PriceSpec, Tier, rate};
use recur_pricing::domain::tax::TaxRule;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("literal")
}

fn cur(code: &str) -> Currency {
    Currency::from_code(code).expect("currency")
}

/// 1–10 at 5.00; 11–50 at 4.00 plus 10.00 flat; 51 and up at 3.00.
fn tiers() -> Vec<Tier> {
    vec![
        Tier { up_to: Some(d("10")), unit_amount: d("5"), flat_amount: d("0") },
        Tier { up_to: Some(d("50")), unit_amount: d("4"), flat_amount: d("10") },
        Tier { up_to: None, unit_amount: d("3"), flat_amount: d("0") },
    ]
}

fn spec(model: Model, unit: &str, flat: &str, tiers: Vec<Tier>, package: i64) -> PriceSpec {
    PriceSpec { model, unit_amount: d(unit), flat_amount: d(flat), tiers, package_size: package }
}

#[test]
fn graduated_and_volume_around_every_boundary() {
    let cases = [
        // (quantity, graduated, volume)
        // 9: graduated 9×5 = 45; volume 9×5 = 45
        ("9", "45", "45"),
        // 10 (on the boundary): 10×5 = 50 both ways
        ("10", "50", "50"),
        // 11: graduated 10×5 + 1×4 + 10 flat = 64; volume 11×4 + 10 = 54
        ("11", "64", "54"),
        // 10.5 (fractional usage): graduated 50 + 0.5×4 + 10 = 62; volume 10.5×4 + 10 = 52
        ("10.5", "62", "52"),
        // 49: graduated 50 + 39×4 + 10 = 216; volume 49×4 + 10 = 206
        ("49", "216", "206"),
        // 50: graduated 50 + 40×4 + 10 = 220; volume 50×4 + 10 = 210
        ("50", "220", "210"),
        // 51: graduated 220 + 1×3 = 223; volume 51×3 = 153
        ("51", "223", "153"),
        // 0: nothing used costs nothing
        ("0", "0", "0"),
    ];
    for (q, graduated, volume) in cases {
        let g = rate(&spec(Model::Tiered, "0", "0", tiers(), 1), d(q));
        let v = rate(&spec(Model::Volume, "0", "0", tiers(), 1), d(q));
        assert_eq!(g.amount, d(graduated), "graduated at {q}");
        assert_eq!(v.amount, d(volume), "volume at {q}");
        // The breakdown adds up to the amount.
        assert_eq!(g.tiers.iter().map(|t| t.amount).sum::<Decimal>(), g.amount, "graduated tiers at {q}");
    }
}

#[test]
fn stairstep_and_package_boundaries() {
    let steps = vec![
        Tier { up_to: Some(d("10")), unit_amount: d("0"), flat_amount: d("100") },
        Tier { up_to: Some(d("50")), unit_amount: d("0"), flat_amount: d("300") },
        Tier { up_to: None, unit_amount: d("0"), flat_amount: d("500") },
    ];
    for (q, want) in [
        // a quantity takes the flat amount of its step: 1..=10 → 100, 11..=50 → 300, 51+ → 500
        ("1", "100"),
        ("10", "100"),
        ("10.01", "300"),
        ("11", "300"),
        ("50", "300"),
        ("51", "500"),
        ("0", "0"),
    ] {
        assert_eq!(rate(&spec(Model::Stairstep, "0", "0", steps.clone(), 1), d(q)).amount, d(want), "stairstep at {q}");
    }
    for (q, want) in [
        // 9.99 per started package of 100: 1..=100 → 1 package, 101..=200 → 2, 201 → 3
        ("1", "9.99"),
        ("99", "9.99"),
        ("100", "9.99"),
        ("101", "19.98"),
        ("200", "19.98"),
        ("201", "29.97"),
        ("0", "0"),
    ] {
        assert_eq!(rate(&spec(Model::Package, "9.99", "0", vec![], 100), d(q)).amount, d(want), "package at {q}");
    }
}

fn line(id: &str, billing: Billing, quantity: &str, price: PriceSpec) -> CartLine {
    CartLine { product_id: id.into(), name: id.into(), billing, quantity: d(quantity), price }
}

fn cart(
    currency: &str,
    setup_fee: Option<&str>,
    lines: Vec<CartLine>,
    tax: Option<TaxRule>,
    coupons: Vec<CouponSpec>,
) -> Quote {
    quote(&QuoteInput {
        offerings: vec![CartOffering {
            offering_id: "offr_team".into(),
            rate: RateTerms {
                rate_id: "rate_team".into(),
                currency: cur(currency),
                period: Period { unit: Unit::Month, count: 1 },
                trial_days: 0,
                setup_fee: setup_fee.map(d),
            },
            lines,
        }],
        start_date: NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"),
        tz: chrono_tz::UTC,
        tax,
        coupons,
        billing_day: None,
        by_second: false,
    })
    .expect("quote")
}

fn coupon(code: &str, discount: Discount, duration: Duration) -> CouponSpec {
    CouponSpec { code: code.into(), discount, duration, periods_applied: 0, offering_ids: vec![], product_ids: vec![] }
}

/// Platform 49.00 flat, 12 seats at 10.00, setup fee 99.00: 268.00 now, 169.00 a month.
fn team(coupons: Vec<CouponSpec>, tax: Option<TaxRule>) -> Quote {
    cart(
        "USD",
        Some("99"),
        vec![
            line("platform", Billing::InAdvance, "1", spec(Model::Flat, "0", "49", vec![], 1)),
            line("seats", Billing::InAdvance, "12", spec(Model::PerUnit, "10", "0", vec![], 1)),
        ],
        tax,
        coupons,
    )
}

fn amounts(q: &Quote) -> Vec<(String, String, String, String)> {
    q.offerings[0]
        .items
        .iter()
        .map(|i| {
            (i.now.without_tax.to_string(), i.now.discount.to_string(), i.now.tax.to_string(), i.now.amount.to_string())
        })
        .collect()
}

#[test]
fn percent_and_fixed_coupons_on_a_multi_item_cart() {
    // 10% off everything: 4.90 + 12.00 + 9.90 = 26.80; 268.00 − 26.80 = 241.20.
    let q = team(vec![coupon("TEN", Discount::Percent(d("10")), Duration::Once)], None);
    assert_eq!(q.now.discount, d("26.80"));
    assert_eq!(q.now.amount, d("241.20"));
    // ONCE: the next month is full price, 49.00 + 120.00 = 169.00.
    assert_eq!(q.recurring.amount, d("169.00"));

    // 25.00 off spread by share: 49/268×25 = 4.57, 120/268×25 = 11.19,
    // 99/268×25 = 9.24; 4.57 + 11.19 + 9.24 = 25.00 exactly.
    let q = team(vec![coupon("TWENTYFIVE", Discount::Fixed(d("25")), Duration::Forever)], None);
    let discounts: Vec<String> = q.offerings[0].items.iter().map(|i| i.now.discount.to_string()).collect();
    assert_eq!(discounts, vec!["4.57", "11.19", "9.24"]);
    assert_eq!(q.now.amount, d("243.00"));
    // FOREVER: next month 169.00 − 25.00 = 144.00 (49/169×25 = 7.25, 120/169×25 = 17.75).
    assert_eq!(q.recurring.amount, d("144.00"));

    // 20% off seats only, repeating for 3 months: 24.00 now and next month.
    let mut seats = coupon("SEATS20", Discount::Percent(d("20")), Duration::Repeating(3));
    seats.product_ids = vec!["seats".into()];
    let q = team(vec![seats.clone()], None);
    assert_eq!(amounts(&q)[1], ("120.00".into(), "24.00".into(), "0.00".into(), "96.00".into()));
    assert_eq!(q.now.discount, d("24.00"));
    assert_eq!(q.recurring.amount, d("145.00"), "169.00 − 24.00");
    // In its third and last month it still applies; after that it does not.
    seats.periods_applied = 2;
    assert_eq!(team(vec![seats.clone()], None).recurring.amount, d("169.00"));

    // A fixed coupon larger than the cart takes the cart, never more.
    let q = team(vec![coupon("HUGE", Discount::Fixed(d("1000")), Duration::Once)], None);
    assert_eq!((q.now.discount, q.now.amount), (d("268.00"), d("0.00")));

    // Stacked in order: 10% (26.80) leaves 241.20; then 5.00 fixed: 31.80 off, 236.20.
    let q = team(
        vec![
            coupon("TEN", Discount::Percent(d("10")), Duration::Once),
            coupon("FIVE", Discount::Fixed(d("5")), Duration::Once),
        ],
        None,
    );
    assert_eq!((q.now.discount, q.now.amount), (d("31.80"), d("236.20")));
}

#[test]
fn tax_exclusive_and_inclusive_with_a_discount() {
    let ca = TaxRule { percent: d("7.25"), jurisdiction: "US-CA".into(), inclusive: false };
    // Exclusive, 10% off: lines 49.00−4.90 = 44.10 → tax 3.19725 → 3.20;
    // 120.00−12.00 = 108.00 → 7.83; 99.00−9.90 = 89.10 → 6.45975 → 6.46.
    // Tax 3.20 + 7.83 + 6.46 = 17.49; total 241.20 + 17.49 = 258.69.
    let q = team(vec![coupon("TEN", Discount::Percent(d("10")), Duration::Once)], Some(ca.clone()));
    assert_eq!(
        amounts(&q),
        vec![
            ("49.00".into(), "4.90".into(), "3.20".into(), "47.30".into()),
            ("120.00".into(), "12.00".into(), "7.83".into(), "115.83".into()),
            ("99.00".into(), "9.90".into(), "6.46".into(), "95.56".into()),
        ]
    );
    assert_eq!((q.now.tax, q.now.amount), (d("17.49"), d("258.69")));

    // Inclusive 19%: the customer pays the list amounts. 49.00 holds
    // 49×19/119 = 7.8235 → 7.82; 120.00 holds 19.16; 99.00 holds 15.81.
    let de = TaxRule { percent: d("19"), jurisdiction: "DE".into(), inclusive: true };
    let q = team(vec![], Some(de));
    assert_eq!(
        amounts(&q),
        vec![
            ("41.18".into(), "0.00".into(), "7.82".into(), "49.00".into()),
            ("100.84".into(), "0.00".into(), "19.16".into(), "120.00".into()),
            ("83.19".into(), "0.00".into(), "15.81".into(), "99.00".into()),
        ]
    );
    assert_eq!((q.now.tax, q.now.amount), (d("42.79"), d("268.00")));
}

#[test]
fn each_currency_rounds_to_its_own_minor_units() {
    // JPY (0 places): 333 × 3 = 999; 10% tax 99.9 → 100; total 1,099.
    let jp = TaxRule { percent: d("10"), jurisdiction: "JP".into(), inclusive: false };
    let q = cart(
        "JPY",
        None,
        vec![line("p", Billing::InAdvance, "3", spec(Model::PerUnit, "333", "0", vec![], 1))],
        Some(jp),
        vec![],
    );
    assert_eq!(
        (q.now.without_tax.to_string(), q.now.tax.to_string(), q.now.amount.to_string()),
        ("999".into(), "100".into(), "1099".into())
    );

    // USD (2 places): 33.333 × 3 = 99.999 → 100.00.
    let q = cart(
        "USD",
        None,
        vec![line("p", Billing::InAdvance, "3", spec(Model::PerUnit, "33.333", "0", vec![], 1))],
        None,
        vec![],
    );
    assert_eq!(q.now.amount.to_string(), "100.00");

    // KWD (3 places): 1.2345 × 3 = 3.7035 → 3.704 (half-up); 5% tax on
    // 3.704 = 0.1852 → 0.185; total 3.889.
    let kw = TaxRule { percent: d("5"), jurisdiction: "KW".into(), inclusive: false };
    let q = cart(
        "KWD",
        None,
        vec![line("p", Billing::InAdvance, "3", spec(Model::PerUnit, "1.2345", "0", vec![], 1))],
        Some(kw),
        vec![],
    );
    assert_eq!(
        (q.now.without_tax.to_string(), q.now.tax.to_string(), q.now.amount.to_string()),
        ("3.704".into(), "0.185".into(), "3.889".into())
    );

    // 0.0012 per API call × 1,234 calls = 1.4808 → 1.48 USD.
    let q = cart(
        "USD",
        None,
        vec![line("calls", Billing::InAdvance, "1234", spec(Model::PerUnit, "0.0012", "0", vec![], 1))],
        None,
        vec![],
    );
    assert_eq!(q.now.amount.to_string(), "1.48");
}

#[test]
fn setup_fees_are_charged_on_the_first_invoice_only() {
    // 49.00 + 120.00 + 99.00 setup = 268.00 now; 169.00 each month after.
    let q = team(vec![], None);
    assert_eq!(q.now.amount, d("268.00"));
    assert_eq!(q.recurring.amount, d("169.00"));
}
