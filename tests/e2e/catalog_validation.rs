//! The catalog refuses everything that does not make sense: each case is a
//! gRPC call that must fail with the right code and the offending field in
//! its `BadRequest` details, and must write nothing. Runs on SQLite and on
//! Postgres.

use recur_e2e::{Clients, TestApp, details, mask, on_both_backends};
use recur_proto::catalog::v1 as cat;
use recur_proto::common::v1::Money;
use tonic::Code;

struct Base {
    flat: String,
    seats: String,
    archived_product: String,
    offering: String,
    archived_offering: String,
}

async fn product(c: &mut Clients, name: &str, kind: cat::ProductKind) -> String {
    c.catalog
        .create_product(cat::CreateProductRequest {
            product: Some(cat::Product { name: name.into(), kind: kind as i32, ..Default::default() }),
        })
        .await
        .expect("product")
        .into_inner()
        .product
        .expect("product")
        .id
}

async fn base(c: &mut Clients) -> Base {
    let flat = product(c, "Fee", cat::ProductKind::Recurring).await;
    let seats = product(c, "Seats", cat::ProductKind::PerUnit).await;
    let archived_product = product(c, "Old", cat::ProductKind::Recurring).await;
    c.catalog.archive_product(cat::ArchiveProductRequest { id: archived_product.clone() }).await.expect("archive");
    let offering = c
        .catalog
        .create_offering(cat::CreateOfferingRequest {
            offering: Some(cat::Offering {
                name: "Plan".into(),
                handle: "plan".into(),
                product_ids: vec![flat.clone(), seats.clone()],
                ..Default::default()
            }),
        })
        .await
        .expect("offering")
        .into_inner()
        .offering
        .expect("offering")
        .id;
    let archived_offering = c
        .catalog
        .create_offering(cat::CreateOfferingRequest {
            offering: Some(cat::Offering {
                name: "Retired".into(),
                product_ids: vec![flat.clone()],
                ..Default::default()
            }),
        })
        .await
        .expect("offering")
        .into_inner()
        .offering
        .expect("offering")
        .id;
    c.catalog.archive_offering(cat::ArchiveOfferingRequest { id: archived_offering.clone() }).await.expect("archive");
    c.catalog
        .create_coupon(cat::CreateCouponRequest {
            coupon: Some(cat::Coupon {
                code: "TAKEN".into(),
                discount_type: cat::DiscountType::Percent as i32,
                percent_off: "10".into(),
                duration: cat::CouponDuration::Once as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("coupon");
    Base { flat, seats, archived_product, offering, archived_offering }
}

fn flat_price(product: &str, amount: &str) -> cat::Price {
    cat::Price {
        product_id: product.into(),
        model: cat::PricingModel::Flat as i32,
        flat_amount: amount.into(),
        ..Default::default()
    }
}

fn per_unit(product: &str, amount: &str) -> cat::Price {
    cat::Price {
        product_id: product.into(),
        model: cat::PricingModel::PerUnit as i32,
        unit_amount: amount.into(),
        ..Default::default()
    }
}

fn tier(up_to: &str, unit: &str) -> cat::Tier {
    cat::Tier { up_to: up_to.into(), unit_amount: unit.into(), flat_amount: String::new() }
}

fn rate(b: &Base, prices: Vec<cat::Price>) -> cat::Rate {
    cat::Rate {
        offering_id: b.offering.clone(),
        name: "Monthly".into(),
        currency_code: "USD".into(),
        billing_period: Some(cat::BillingPeriod { unit: cat::PeriodUnit::Month as i32, count: 1 }),
        prices,
        ..Default::default()
    }
}

fn good_prices(b: &Base) -> Vec<cat::Price> {
    vec![flat_price(&b.flat, "10"), per_unit(&b.seats, "2.50")]
}

fn with_first_price(b: &Base, price: cat::Price) -> cat::Rate {
    rate(b, vec![price, per_unit(&b.seats, "2.50")])
}

fn prod(f: impl FnOnce(&mut cat::Product)) -> cat::Product {
    let mut p = cat::Product { name: "Widget".into(), kind: cat::ProductKind::PerUnit as i32, ..Default::default() };
    f(&mut p);
    p
}

fn coupon(f: impl FnOnce(&mut cat::Coupon)) -> cat::Coupon {
    let mut c = cat::Coupon {
        code: "NEWCODE".into(),
        discount_type: cat::DiscountType::Percent as i32,
        percent_off: "10".into(),
        duration: cat::CouponDuration::Once as i32,
        ..Default::default()
    };
    f(&mut c);
    c
}

enum Call {
    Product(cat::Product),
    Offering(cat::Offering),
    Rate(cat::Rate),
    UpdateRate(cat::Rate, Vec<&'static str>),
    Coupon(cat::Coupon),
    Apply(&'static str),
}

async fn call(c: &mut Clients, call: Call) -> Result<(), tonic::Status> {
    match call {
        Call::Product(p) => c.catalog.create_product(cat::CreateProductRequest { product: Some(p) }).await.map(|_| ()),
        Call::Offering(o) => {
            c.catalog.create_offering(cat::CreateOfferingRequest { offering: Some(o) }).await.map(|_| ())
        }
        Call::Rate(r) => c.catalog.create_rate(cat::CreateRateRequest { rate: Some(r) }).await.map(|_| ()),
        Call::UpdateRate(r, paths) => c
            .catalog
            .update_rate(cat::UpdateRateRequest { rate: Some(r), update_mask: Some(mask(&paths)) })
            .await
            .map(|_| ()),
        Call::Coupon(cp) => c.catalog.create_coupon(cat::CreateCouponRequest { coupon: Some(cp) }).await.map(|_| ()),
        Call::Apply(doc) => c
            .catalog
            .apply_catalog(cat::ApplyCatalogRequest {
                document: doc.into(),
                format: 0,
                dry_run: false,
                ..Default::default()
            })
            .await
            .map(|_| ()),
    }
}

async fn counts(app: &TestApp) -> [i64; 5] {
    [
        app.count_rows("catalog", "products").await,
        app.count_rows("catalog", "offerings").await,
        app.count_rows("catalog", "offering_products").await,
        app.count_rows("catalog", "rates").await,
        app.count_rows("catalog", "coupons").await,
    ]
}

async fn refuses_what_makes_no_sense(app: &TestApp) {
    let mut c = app.clients("validator");
    let b = base(&mut c).await;
    let existing_rate = c
        .catalog
        .create_rate(cat::CreateRateRequest { rate: Some(rate(&b, good_prices(&b))) })
        .await
        .expect("a good rate")
        .into_inner()
        .rate
        .expect("rate");
    let inv = Code::InvalidArgument;

    let cases: Vec<(&str, Call, Code, &str)> = vec![
        ("product without a name", Call::Product(prod(|p| p.name.clear())), inv, "product.name"),
        ("product without a kind", Call::Product(prod(|p| p.kind = 0)), inv, "product.kind"),
        ("negative min quantity", Call::Product(prod(|p| p.min_quantity = "-1".into())), inv, "product.min_quantity"),
        (
            "non-numeric min quantity",
            Call::Product(prod(|p| p.min_quantity = "abc".into())),
            inv,
            "product.min_quantity",
        ),
        (
            "more decimals than allowed in a quantity bound",
            Call::Product(prod(|p| p.max_quantity = "1.1234567".into())),
            inv,
            "product.max_quantity",
        ),
        (
            "min greater than max",
            Call::Product(prod(|p| {
                p.min_quantity = "10".into();
                p.max_quantity = "5".into();
            })),
            inv,
            "product.min_quantity",
        ),
        (
            "default outside [min, max]",
            Call::Product(prod(|p| {
                p.min_quantity = "1".into();
                p.max_quantity = "5".into();
                p.default_quantity = "9".into();
            })),
            inv,
            "product.default_quantity",
        ),
        (
            "on/off product allowing 2",
            Call::Product(prod(|p| {
                p.kind = cat::ProductKind::OnOff as i32;
                p.max_quantity = "2".into();
            })),
            inv,
            "product.max_quantity",
        ),
        ("malformed handle", Call::Product(prod(|p| p.handle = "bad handle!".into())), inv, "product.handle"),
        ("handle shaped like an id", Call::Product(prod(|p| p.handle = "prod_abc".into())), inv, "product.handle"),
        (
            "duplicate handle",
            Call::Offering(cat::Offering {
                name: "Again".into(),
                handle: "plan".into(),
                product_ids: vec![b.flat.clone()],
                ..Default::default()
            }),
            Code::AlreadyExists,
            "offering.handle",
        ),
        (
            "offering without products",
            Call::Offering(cat::Offering { name: "Empty".into(), ..Default::default() }),
            inv,
            "offering.product_ids",
        ),
        (
            "offering with an unknown product",
            Call::Offering(cat::Offering {
                name: "Ghost".into(),
                product_ids: vec!["prod_nosuchproduct".into()],
                ..Default::default()
            }),
            inv,
            "offering.product_ids[0]",
        ),
        (
            "offering with an archived product",
            Call::Offering(cat::Offering {
                name: "Stale".into(),
                product_ids: vec![b.archived_product.clone()],
                ..Default::default()
            }),
            Code::FailedPrecondition,
            "offering.product_ids[0]",
        ),
        (
            "unknown currency",
            Call::Rate(cat::Rate { currency_code: "XYZ".into(), ..rate(&b, good_prices(&b)) }),
            inv,
            "rate.currency_code",
        ),
        (
            "negative amount",
            Call::Rate(with_first_price(&b, flat_price(&b.flat, "-5"))),
            inv,
            "rate.prices[0].flat_amount",
        ),
        (
            "non-numeric amount",
            Call::Rate(with_first_price(&b, flat_price(&b.flat, "ten"))),
            inv,
            "rate.prices[0].flat_amount",
        ),
        (
            "flat amount finer than the currency",
            Call::Rate(with_first_price(&b, flat_price(&b.flat, "10.001"))),
            inv,
            "rate.prices[0].flat_amount",
        ),
        (
            "FLAT price with tiers",
            Call::Rate(with_first_price(&b, cat::Price { tiers: vec![tier("", "1")], ..flat_price(&b.flat, "10") })),
            inv,
            "rate.prices[0].tiers",
        ),
        (
            "tiers that overlap (same bound twice)",
            Call::Rate(with_first_price(
                &b,
                cat::Price {
                    product_id: b.flat.clone(),
                    model: cat::PricingModel::Tiered as i32,
                    tiers: vec![tier("10", "1"), tier("10", "0.5"), tier("", "0.1")],
                    ..Default::default()
                },
            )),
            inv,
            "rate.prices[0].tiers[1].up_to",
        ),
        (
            "tiers that are not ascending",
            Call::Rate(with_first_price(
                &b,
                cat::Price {
                    product_id: b.flat.clone(),
                    model: cat::PricingModel::Volume as i32,
                    tiers: vec![tier("100", "1"), tier("10", "0.5"), tier("", "0.1")],
                    ..Default::default()
                },
            )),
            inv,
            "rate.prices[0].tiers[1].up_to",
        ),
        (
            "last tier closed",
            Call::Rate(with_first_price(
                &b,
                cat::Price {
                    product_id: b.flat.clone(),
                    model: cat::PricingModel::Tiered as i32,
                    tiers: vec![tier("10", "1"), tier("20", "0.5")],
                    ..Default::default()
                },
            )),
            inv,
            "rate.prices[0].tiers[1].up_to",
        ),
        (
            "open tier before the last",
            Call::Rate(with_first_price(
                &b,
                cat::Price {
                    product_id: b.flat.clone(),
                    model: cat::PricingModel::Tiered as i32,
                    tiers: vec![tier("", "1"), tier("", "0.5")],
                    ..Default::default()
                },
            )),
            inv,
            "rate.prices[0].tiers[0].up_to",
        ),
        (
            "package size zero",
            Call::Rate(with_first_price(
                &b,
                cat::Price {
                    product_id: b.flat.clone(),
                    model: cat::PricingModel::Package as i32,
                    unit_amount: "5".into(),
                    package_size: 0,
                    ..Default::default()
                },
            )),
            inv,
            "rate.prices[0].package_size",
        ),
        (
            "PER_UNIT without a unit amount",
            Call::Rate(with_first_price(
                &b,
                cat::Price {
                    product_id: b.flat.clone(),
                    model: cat::PricingModel::PerUnit as i32,
                    ..Default::default()
                },
            )),
            inv,
            "rate.prices[0].unit_amount",
        ),
        (
            "price for a product not in the offering",
            Call::Rate(rate(&b, vec![flat_price(&b.flat, "10"), per_unit(&b.archived_product, "1")])),
            inv,
            "rate.prices[1].product_id",
        ),
        (
            "a product of the offering left unpriced",
            Call::Rate(rate(&b, vec![flat_price(&b.flat, "10")])),
            inv,
            "rate.prices",
        ),
        (
            "rate on an archived offering",
            Call::Rate(cat::Rate {
                offering_id: b.archived_offering.clone(),
                prices: vec![flat_price(&b.flat, "1")],
                ..rate(&b, vec![])
            }),
            Code::FailedPrecondition,
            "rate.offering_id",
        ),
        (
            "billing period of zero months",
            Call::Rate(cat::Rate {
                billing_period: Some(cat::BillingPeriod { unit: cat::PeriodUnit::Month as i32, count: 0 }),
                ..rate(&b, good_prices(&b))
            }),
            inv,
            "rate.billing_period.count",
        ),
        (
            "billing period without a unit",
            Call::Rate(cat::Rate {
                billing_period: Some(cat::BillingPeriod { unit: 0, count: 1 }),
                ..rate(&b, good_prices(&b))
            }),
            inv,
            "rate.billing_period.unit",
        ),
        (
            "negative trial",
            Call::Rate(cat::Rate { trial_days: -1, ..rate(&b, good_prices(&b)) }),
            inv,
            "rate.trial_days",
        ),
        (
            "auto-renewal without a term",
            Call::Rate(cat::Rate { auto_renew: true, ..rate(&b, good_prices(&b)) }),
            inv,
            "rate.auto_renew",
        ),
        (
            "changing a rate's prices in place",
            Call::UpdateRate(
                cat::Rate {
                    id: existing_rate.id.clone(),
                    prices: vec![flat_price(&b.flat, "99")],
                    ..Default::default()
                },
                vec!["prices"],
            ),
            inv,
            "update_mask.paths",
        ),
        ("percent coupon over 100", Call::Coupon(coupon(|c| c.percent_off = "150".into())), inv, "coupon.percent_off"),
        (
            "fixed coupon without an amount",
            Call::Coupon(coupon(|c| {
                c.discount_type = cat::DiscountType::FixedAmount as i32;
                c.percent_off.clear();
            })),
            inv,
            "coupon.amounts_off",
        ),
        (
            "fixed coupon in an unknown currency",
            Call::Coupon(coupon(|c| {
                c.discount_type = cat::DiscountType::FixedAmount as i32;
                c.percent_off.clear();
                c.amounts_off = vec![Money { currency_code: "ABC".into(), amount: "5".into() }];
            })),
            inv,
            "coupon.amounts_off[0].currency_code",
        ),
        (
            "repeating coupon without periods",
            Call::Coupon(coupon(|c| c.duration = cat::CouponDuration::Repeating as i32)),
            inv,
            "coupon.duration_periods",
        ),
        (
            "duplicate coupon code",
            Call::Coupon(coupon(|c| c.code = "TAKEN".into())),
            Code::AlreadyExists,
            "coupon.code",
        ),
        (
            "redeem-by in the past",
            Call::Coupon(coupon(|c| c.redeem_by = Some(prost_types::Timestamp { seconds: 1_000_000_000, nanos: 0 }))),
            inv,
            "coupon.redeem_by",
        ),
        (
            "coupon for an unknown offering",
            Call::Coupon(coupon(|c| c.offering_ids = vec!["no-such-plan".into()])),
            inv,
            "coupon.offering_ids[0]",
        ),
        (
            "catalog document with a dangling reference",
            Call::Apply(
                "products:\n  - {handle: p1, name: P1, kind: recurring}\nofferings:\n  - handle: o1\n    name: O1\n    products: [p1, ghost]\n",
            ),
            inv,
            "offerings[0].products[1]",
        ),
        ("catalog document that is not YAML", Call::Apply("products: [unclosed"), inv, "document"),
    ];
    assert!(cases.len() >= 25, "the issue asks for at least 25 cases");
    for (name, request, code, field) in cases {
        let before = counts(app).await;
        let err = call(&mut c, request).await.expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err:?}");
        let d = details(&err);
        assert!(d.fields.iter().any(|f| f == field), "{name}: expected a violation on {field}, got {:?}", d.fields);
        assert!(!d.reason.is_empty(), "{name}: no ErrorInfo reason");
        assert_eq!(counts(app).await, before, "{name}: something was written");
    }
}

on_both_backends!(catalog_validation_sqlite, catalog_validation_postgres, refuses_what_makes_no_sense);
