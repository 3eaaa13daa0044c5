//! The pure pricing engine: a 1-offering/3-item quote, a 10-offering/10-item
//! quote, and a proration preview.
//!
//! `cargo bench -p recur-pricing --bench engine`

use std::hint::black_box;
use std::str::FromStr;

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group, criterion_main};
use recur_money::Currency;
use recur_pricing::domain::coupon::{CouponSpec, Discount, Duration};
use recur_pricing::domain::period::{Period, Unit, local_midnight};
use recur_pricing::domain::proration::{ChangeInput, Mode, Side, Timing, preview};
use recur_pricing::domain::quote::{Billing, CartLine, CartOffering, QuoteInput, RateTerms, quote};
use recur_pricing::domain::rating::{Model, PriceSpec, Tier};
use recur_pricing::domain::tax::TaxRule;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("literal")
}

fn lines(n: usize) -> Vec<CartLine> {
    let models = [
        PriceSpec { model: Model::Flat, unit_amount: d("0"), flat_amount: d("49"), tiers: vec![], package_size: 1 },
        PriceSpec {
            model: Model::PerUnit,
            unit_amount: d("12.50"),
            flat_amount: d("0"),
            tiers: vec![],
            package_size: 1,
        },
        PriceSpec {
            model: Model::Tiered,
            unit_amount: d("0"),
            flat_amount: d("0"),
            tiers: vec![
                Tier { up_to: Some(d("10000")), unit_amount: d("0"), flat_amount: d("0") },
                Tier { up_to: Some(d("1000000")), unit_amount: d("0.0012"), flat_amount: d("0") },
                Tier { up_to: None, unit_amount: d("0.0008"), flat_amount: d("0") },
            ],
            package_size: 1,
        },
    ];
    (0..n)
        .map(|i| CartLine {
            product_id: format!("prod_{i}"),
            name: format!("Product {i}"),
            billing: Billing::InAdvance,
            quantity: Decimal::from(12 + i * 1000),
            price: models[i % models.len()].clone(),
        })
        .collect()
}

fn cart(offerings: usize, items: usize) -> QuoteInput {
    let usd = Currency::from_code("USD").expect("usd");
    QuoteInput {
        offerings: (0..offerings)
            .map(|i| CartOffering {
                offering_id: format!("offr_{i}"),
                rate: RateTerms {
                    rate_id: format!("rate_{i}"),
                    currency: usd,
                    period: Period { unit: Unit::Month, count: 1 },
                    trial_days: 0,
                    setup_fee: Some(d("99")),
                },
                lines: lines(items),
            })
            .collect(),
        start_date: NaiveDate::from_ymd_opt(2026, 1, 31).expect("date"),
        tz: chrono_tz::UTC,
        tax: Some(TaxRule { percent: d("7.25"), jurisdiction: "US-CA".into(), inclusive: false }),
        coupons: vec![CouponSpec {
            code: "TEN".into(),
            discount: Discount::Percent(d("10")),
            duration: Duration::Once,
            periods_applied: 0,
            offering_ids: vec![],
            product_ids: vec![],
        }],
        billing_day: None,
        by_second: false,
    }
}

fn engine(c: &mut Criterion) {
    let small = cart(1, 3);
    c.bench_function("quote 1 offering × 3 items", |b| b.iter(|| quote(black_box(&small)).expect("quote")));
    let large = cart(10, 10);
    c.bench_function("quote 10 offerings × 10 items", |b| b.iter(|| quote(black_box(&large)).expect("quote")));

    let tz = chrono_tz::UTC;
    let start = local_midnight(NaiveDate::from_ymd_opt(2026, 3, 1).expect("date"), tz);
    let change = ChangeInput {
        currency: Currency::from_code("USD").expect("usd"),
        tz,
        mode: Mode::Day,
        timing: Timing::Immediate,
        period_start: start,
        period_end: local_midnight(NaiveDate::from_ymd_opt(2026, 4, 1).expect("date"), tz),
        anchor: None,
        at: start + chrono::Duration::days(15),
        old: Side { rate_id: "rate_old".into(), period: Period { unit: Unit::Month, count: 1 }, lines: lines(3) },
        new: Side { rate_id: "rate_new".into(), period: Period { unit: Unit::Month, count: 1 }, lines: lines(3) },
    };
    c.bench_function("proration preview, 3 items", |b| b.iter(|| preview(black_box(&change)).expect("preview")));
}

criterion_group!(benches, engine);
criterion_main!(benches);
