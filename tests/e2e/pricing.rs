//! The pricing service over gRPC, on the demo catalog: coupons and their
//! refusals, tax, PreviewChange, RateUsage, billing anchors, and the
//! catalog cache's bound.

use std::time::Duration;

use recur_e2e::{Backend, Clients, TestApp, details, mask, on_both_backends};
use recur_proto::catalog::v1 as cat;
use recur_proto::common::v1::Address;
use recur_proto::pricing::v1 as pb;
use tonic::Code;

async fn demo(app: &TestApp, tenant: &str) -> Clients {
    recur::load_demo_catalog(&app.addr.to_string(), &app.key, tenant).await.expect("demo catalog");
    app.clients(tenant)
}

fn cart(offering: &str, rate: &str, items: &[(&str, &str)]) -> pb::CartOffering {
    pb::CartOffering {
        offering_id: offering.into(),
        rate_id: rate.into(),
        items: items
            .iter()
            .map(|(p, q)| pb::CartItem { product_id: p.to_string(), quantity: q.to_string(), custom_price: None })
            .collect(),
    }
}

fn amount(m: &Option<recur_proto::common::v1::Money>) -> String {
    m.as_ref().map(|m| m.amount.clone()).unwrap_or_default()
}

async fn quote(c: &mut Clients, req: pb::QuoteRequest) -> Result<pb::Quote, tonic::Status> {
    c.pricing.quote(req).await.map(|r| r.into_inner().quote.expect("quote"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coupons_tax_and_their_refusals() {
    let app = TestApp::spawn(Backend::SqliteMemory).await.expect("app");
    let mut c = demo(&app, "shop").await;
    // Tax rates before the first quote (quotes read settings through a cache).
    c.catalog
        .update_tenant_settings(cat::UpdateTenantSettingsRequest {
            settings: Some(cat::TenantSettings {
                tax_rates: vec![cat::TaxRate {
                    country: "US".into(),
                    state: "CA".into(),
                    percent: "7.25".into(),
                    name: "CA".into(),
                }],
                ..Default::default()
            }),
            update_mask: Some(mask(&["tax_rates"])),
        })
        .await
        .expect("tax rates");

    // WELCOME10, once: 29.00 − 2.90 = 26.10 now; 29.00 a month after.
    let q = quote(
        &mut c,
        pb::QuoteRequest {
            offerings: vec![cart("starter", "starter-monthly", &[])],
            coupon_codes: vec!["WELCOME10".into()],
            ..Default::default()
        },
    )
    .await
    .expect("quote");
    assert_eq!(
        (amount(&q.amount_without_tax), amount(&q.discount), amount(&q.amount)),
        ("29.00".into(), "2.90".into(), "26.10".into())
    );
    assert_eq!(amount(&q.recurring_amount), "29.00");
    let item = &q.offerings[0].items[0];
    assert_eq!(item.breakdown.as_ref().map(|b| b.coupon_codes.clone()), Some(vec!["WELCOME10".to_string()]));

    // Team, 12 seats (volume: 10 < 12 ≤ 50 → 12 × 10.00 = 120.00), platform
    // 49.00, support off, 10,000 free API calls by default quantity 0,
    // onboarding (one-time) 250.00 and setup fee 99.00 — but a 14-day trial:
    // now = 250.00 + 99.00 = 349.00; then 49.00 + 120.00 = 169.00 a month.
    // FIVEOFF (5.00 forever) spreads over the invoice: 349.00 − 5.00 = 344.00,
    // and takes 5.00 off each month: 164.00. CA tax 7.25% on top.
    let q = quote(
        &mut c,
        pb::QuoteRequest {
            offerings: vec![cart("team", "team-monthly", &[("seats", "12")])],
            coupon_codes: vec!["FIVEOFF".into()],
            compute_tax: true,
            tax_address: Some(Address { country: "US".into(), state: "CA".into(), ..Default::default() }),
            ..Default::default()
        },
    )
    .await
    .expect("team quote");
    assert_eq!(amount(&q.amount_without_tax), "349.00");
    assert_eq!(amount(&q.discount), "5.00");
    // Tax is per line on what is left: onboarding 250.00 − 3.58 = 246.42 →
    // 17.87; setup 99.00 − 1.42 = 97.58 → 7.07. Total tax 24.94.
    assert_eq!(amount(&q.tax), "24.94");
    assert_eq!(amount(&q.amount), "368.94");
    // 164.00 + 7.25% per line: 49 − 1.45 = 47.55 → 3.45; 120 − 3.55 = 116.45 → 8.44.
    assert_eq!(amount(&q.recurring_amount), "175.89");
    assert!(q.tax_computed);
    assert!(q.trial_end.is_some());

    // Refusals, each naming the coupon.
    let refusals: [(&str, pb::QuoteRequest, Code, &str); 5] = [
        (
            "unknown code",
            pb::QuoteRequest {
                offerings: vec![cart("starter", "starter-monthly", &[])],
                coupon_codes: vec!["NOPE".into()],
                ..Default::default()
            },
            Code::InvalidArgument,
            "COUPON_NOT_FOUND",
        ),
        (
            "coupon for another offering",
            pb::QuoteRequest {
                offerings: vec![cart("starter", "starter-monthly", &[])],
                coupon_codes: vec!["TEAM20".into()],
                ..Default::default()
            },
            Code::FailedPrecondition,
            "COUPON_NOT_APPLICABLE",
        ),
        (
            "no amount in the cart's currency",
            pb::QuoteRequest {
                offerings: vec![cart("membership", "membership-monthly-jpy", &[])],
                coupon_codes: vec!["FIVEOFF".into()],
                ..Default::default()
            },
            Code::FailedPrecondition,
            "COUPON_CURRENCY",
        ),
        (
            "exhausted",
            pb::QuoteRequest {
                offerings: vec![cart("starter", "starter-monthly", &[])],
                coupon_codes: vec!["FIVEOFF".into()],
                coupon_usages: vec![pb::CouponUsage {
                    code: "FIVEOFF".into(),
                    times_redeemed: 1000,
                    periods_applied: 0,
                }],
                ..Default::default()
            },
            Code::FailedPrecondition,
            "COUPON_EXHAUSTED",
        ),
        (
            "tax without a country",
            pb::QuoteRequest {
                offerings: vec![cart("starter", "starter-monthly", &[])],
                compute_tax: true,
                ..Default::default()
            },
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
        ),
    ];
    for (name, req, code, reason) in refusals {
        let err = quote(&mut c, req).await.expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err:?}");
        let d = details(&err);
        assert_eq!(d.reason, reason, "{name}");
        let field = if reason == "INVALID_ARGUMENT" { "tax_address.country" } else { "coupon_codes[0]" };
        assert_eq!(d.fields, vec![field], "{name}");
    }
    // A customer who already holds an exhausted coupon keeps its discount.
    let held = quote(
        &mut c,
        pb::QuoteRequest {
            offerings: vec![cart("starter", "starter-monthly", &[])],
            coupon_codes: vec!["FIVEOFF".into()],
            coupon_usages: vec![pb::CouponUsage { code: "FIVEOFF".into(), times_redeemed: 1000, periods_applied: 4 }],
            ..Default::default()
        },
    )
    .await
    .expect("held coupon");
    assert_eq!(amount(&held.amount), "24.00");

    // An expired coupon.
    c.catalog
        .create_coupon(cat::CreateCouponRequest {
            coupon: Some(cat::Coupon {
                code: "FLASH".into(),
                discount_type: cat::DiscountType::Percent as i32,
                percent_off: "50".into(),
                duration: cat::CouponDuration::Once as i32,
                redeem_by: Some(recur_proto::convert::timestamp(
                    chrono::Utc::now() + chrono::Duration::milliseconds(700),
                )),
                ..Default::default()
            }),
        })
        .await
        .expect("flash coupon");
    tokio::time::sleep(Duration::from_millis(900)).await;
    let err = quote(
        &mut c,
        pb::QuoteRequest {
            offerings: vec![cart("starter", "starter-monthly", &[])],
            coupon_codes: vec!["FLASH".into()],
            ..Default::default()
        },
    )
    .await
    .expect_err("expired");
    assert_eq!(details(&err).reason, "COUPON_EXPIRED");

    // Exempt customers pay no tax.
    let exempt = quote(
        &mut c,
        pb::QuoteRequest {
            offerings: vec![cart("starter", "starter-monthly", &[])],
            compute_tax: true,
            tax_exempt: true,
            ..Default::default()
        },
    )
    .await
    .expect("exempt");
    assert_eq!((amount(&exempt.tax), amount(&exempt.amount)), ("0.00".into(), "29.00".into()));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_change_and_rate_usage() {
    let app = TestApp::spawn(Backend::SqliteMemory).await.expect("app");
    let mut c = demo(&app, "changer").await;
    let ts = |s: &str| {
        recur_proto::convert::timestamp(
            chrono::DateTime::parse_from_rfc3339(s).expect("instant").with_timezone(&chrono::Utc),
        )
    };
    let current = pb::ContractState {
        offering_id: "starter".into(),
        rate_id: "starter-monthly".into(),
        items: vec![],
        period_start: Some(ts("2026-03-01T00:00:00Z")),
        period_end: Some(ts("2026-04-01T00:00:00Z")),
        billing_anchor: None,
    };
    let preview = |change: pb::ContractChange, at: &str| pb::PreviewChangeRequest {
        current: Some(current.clone()),
        change: Some(change),
        change_time: Some(ts(at)),
        time_zone: "UTC".into(),
        proration_mode: 0,
    };

    // Monthly (29.00) → yearly (290.00) on March 16: 16 of 31 days unused,
    // 29×16/31 = 14.967… → −14.97; the year charged in full from March 16.
    let out = c
        .pricing
        .preview_change(preview(
            pb::ContractChange {
                rate_id: "starter-yearly".into(),
                items: vec![],
                timing: pb::ChangeTiming::Immediate as i32,
            },
            "2026-03-16T12:00:00Z",
        ))
        .await
        .expect("preview")
        .into_inner();
    let lines: Vec<(i32, String)> = out.lines.iter().map(|l| (l.kind, amount(&l.amount))).collect();
    assert_eq!(
        lines,
        vec![
            (pb::ProrationLineKind::Credit as i32, "-14.97".into()),
            (pb::ProrationLineKind::Charge as i32, "290.00".into())
        ]
    );
    assert_eq!(amount(&out.amount_due_now), "275.03");
    assert_eq!(amount(&out.next_recurring_amount), "290.00");
    assert_eq!(out.new_period_start, Some(ts("2026-03-16T00:00:00Z")));
    assert_eq!(out.new_period_end, Some(ts("2027-03-16T00:00:00Z")));

    // The same rate and quantities: nothing due.
    let same = c
        .pricing
        .preview_change(preview(
            pb::ContractChange { timing: pb::ChangeTiming::Immediate as i32, ..Default::default() },
            "2026-03-10T00:00:00Z",
        ))
        .await
        .expect("no change")
        .into_inner();
    assert_eq!(amount(&same.amount_due_now), "0.00");

    // End of term: nothing now, the new price from April 1.
    let later = c
        .pricing
        .preview_change(preview(
            pb::ContractChange {
                rate_id: "starter-yearly".into(),
                items: vec![],
                timing: pb::ChangeTiming::EndOfTerm as i32,
            },
            "2026-03-16T12:00:00Z",
        ))
        .await
        .expect("end of term")
        .into_inner();
    assert!(later.lines.is_empty());
    assert_eq!(later.effective_time, Some(ts("2026-04-01T00:00:00Z")));

    // Refusals: a change outside the period, an unknown rate, another currency.
    for (name, req, code, field) in [
        (
            "outside the period",
            preview(
                pb::ContractChange { timing: pb::ChangeTiming::Immediate as i32, ..Default::default() },
                "2026-05-01T00:00:00Z",
            ),
            Code::InvalidArgument,
            "change_time",
        ),
        (
            "unknown rate",
            preview(
                pb::ContractChange {
                    rate_id: "nope".into(),
                    items: vec![],
                    timing: pb::ChangeTiming::Immediate as i32,
                },
                "2026-03-16T00:00:00Z",
            ),
            Code::InvalidArgument,
            "change.rate_id",
        ),
        (
            "another currency",
            preview(
                pb::ContractChange {
                    rate_id: "membership-monthly-jpy".into(),
                    items: vec![],
                    timing: pb::ChangeTiming::Immediate as i32,
                },
                "2026-03-16T00:00:00Z",
            ),
            Code::InvalidArgument,
            "change.rate_id",
        ),
    ] {
        let err = c.pricing.preview_change(req).await.expect_err(name);
        assert_eq!(err.code(), code, "{name}: {err:?}");
        assert_eq!(details(&err).fields, vec![field], "{name}");
    }

    // 1,234,567 API calls on team-monthly: 10,000 free; 990,000 × 0.0012 =
    // 1,188.00; 234,567 × 0.0008 = 187.6536; 1,375.6536 → 1,375.65.
    let usage = c
        .pricing
        .rate_usage(pb::RateUsageRequest {
            rate_id: "team-monthly".into(),
            product_id: "api-calls".into(),
            quantity: "1234567".into(),
            ..Default::default()
        })
        .await
        .expect("rate usage")
        .into_inner();
    assert_eq!(amount(&usage.amount), "1375.65");
    let tiers: Vec<String> = usage.breakdown.expect("breakdown").tiers.iter().map(|t| t.quantity.clone()).collect();
    assert_eq!(tiers, vec!["10000", "990000", "234567"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_rate_is_refused_once_the_cache_bound_passes() {
    // Short caches so the bound is quick to wait out: 300 ms in pricing +
    // 200 ms in the catalog.
    let app = TestApp::spawn_with(
        Backend::SqliteMemory,
        &[("RECUR_PRICING_CACHE_TTL_MS", "300"), ("RECUR_CATALOG_CACHE_TTL_MS", "200")],
    )
    .await
    .expect("app");
    let mut c = demo(&app, "archiver").await;
    let req = || pb::QuoteRequest {
        offerings: vec![cart("gamefly-basic", "gamefly-basic-monthly", &[])],
        ..Default::default()
    };
    quote(&mut c, req()).await.expect("quotable");
    let rate = c
        .catalog
        .get_rate(cat::GetRateRequest {
            lookup: Some(cat::get_rate_request::Lookup::Handle("gamefly-basic-monthly".into())),
        })
        .await
        .expect("rate")
        .into_inner()
        .rate
        .expect("rate");
    c.catalog.archive_rate(cat::ArchiveRateRequest { id: rate.id.clone() }).await.expect("archive");
    // Right after, pricing may still answer from its cache: it did not ask
    // the catalog again.
    let cached = quote(&mut c, req()).await;
    assert!(cached.is_ok(), "within the bound the cached rate still prices: {cached:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let err = quote(&mut c, req()).await.expect_err("archived after the bound");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(details(&err).reason, "RATE_ARCHIVED");
    assert_eq!(details(&err).fields, vec!["offerings[0].rate_id"]);

    // Settings changes reach quotes within the bound too.
    c.catalog
        .update_tenant_settings(cat::UpdateTenantSettingsRequest {
            settings: Some(cat::TenantSettings {
                tax_rates: vec![cat::TaxRate {
                    country: "US".into(),
                    state: String::new(),
                    percent: "10".into(),
                    name: "US".into(),
                }],
                ..Default::default()
            }),
            update_mask: Some(mask(&["tax_rates"])),
        })
        .await
        .expect("tax rate");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let taxed = quote(
        &mut c,
        pb::QuoteRequest {
            offerings: vec![cart("starter", "starter-monthly", &[])],
            compute_tax: true,
            tax_address: Some(Address { country: "US".into(), ..Default::default() }),
            ..Default::default()
        },
    )
    .await
    .expect("taxed");
    assert_eq!(amount(&taxed.tax), "2.90");
    app.stop().await;
}

fn details_of(err: &tonic::Status) -> (Code, String, Vec<String>) {
    let d = details(err);
    (err.code(), d.reason, d.fields)
}

async fn apply_doc(c: &mut Clients, doc: &str, dry_run: bool) -> Result<(), tonic::Status> {
    c.catalog
        .apply_catalog(cat::ApplyCatalogRequest { document: doc.into(), dry_run, ..Default::default() })
        .await
        .map(|_| ())
}

const CEILING_DOC: &str = "products:
  - {handle: fee, name: Fee, kind: recurring}
  - {handle: seats, name: Seats, kind: per_unit}
offerings:
  - handle: plan
    name: Plan
    products: [fee, seats]
    rates:
      - handle: plan-monthly
        name: Plan monthly
        currency: USD
        billing_period: {unit: month}
        prices:
          fee: {model: flat, flat_amount: \"100\"}
          seats: {model: per_unit, unit_amount: \"10\"}
";

/// Amount ceilings in the catalog (the tenant setting `max_amounts`, prices
/// within it) and in pricing (no quote line, offering total or usage
/// amount above it, however large the quantity).
async fn amount_ceilings(app: &TestApp) {
    let mut c = app.clients("ceilings");
    let too_large = |fields: &[&str]| {
        (Code::InvalidArgument, "AMOUNT_TOO_LARGE".to_string(), fields.iter().map(|f| f.to_string()).collect())
    };
    // Without a setting, the default: 99,999,999 minor units (999,999.99 USD).
    let over_default = CEILING_DOC.replace("flat_amount: \"100\"", "flat_amount: \"1000000.00\"");
    for dry_run in [true, false] {
        let err = apply_doc(&mut c, &over_default, dry_run).await.expect_err("over the default ceiling");
        assert_eq!(details_of(&err), too_large(&["offerings[0].rates[0].prices.fee.flat_amount"]), "{err}");
        assert_eq!(err.message(), "offerings[0].rates[0].prices.fee.flat_amount: at most 999999.99 USD");
    }
    assert_eq!(app.count_rows("catalog", "rates").await, 0, "nothing written");

    // The setting, validated.
    let set = |amounts: &[(&str, &str)]| cat::UpdateTenantSettingsRequest {
        settings: Some(cat::TenantSettings {
            max_amounts: amounts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }),
        update_mask: Some(mask(&["max_amounts"])),
    };
    for (code, amount) in [("usd", "5000"), ("XYZ", "1"), ("USD", "1.001"), ("USD", "0"), ("USD", "-5"), ("USD", "NaN")]
    {
        let err = c.catalog.update_tenant_settings(set(&[(code, amount)])).await.expect_err(amount);
        assert_eq!(err.code(), Code::InvalidArgument, "{code} {amount}");
        assert_eq!(details(&err).fields, vec![format!("settings.max_amounts[{code}]")], "{code} {amount}");
    }
    let saved = c
        .catalog
        .update_tenant_settings(set(&[("USD", "5000"), ("JPY", "20000")]))
        .await
        .expect("valid ceilings")
        .into_inner()
        .settings
        .expect("settings");
    let want: std::collections::BTreeMap<String, String> =
        [("JPY".to_string(), "20000".to_string()), ("USD".to_string(), "5000.00".to_string())].into();
    assert_eq!(saved.max_amounts, want);
    let read = c.catalog.get_tenant_settings(cat::GetTenantSettingsRequest {}).await.expect("get").into_inner();
    assert_eq!(read.settings.expect("settings").max_amounts, want);

    // Prices above the tenant's ceiling are refused, each field named.
    apply_doc(&mut c, CEILING_DOC, false).await.expect("within the ceiling");
    let rates_before = app.count_rows("catalog", "rates").await;
    let plan = c
        .catalog
        .get_offering(cat::GetOfferingRequest {
            lookup: Some(cat::get_offering_request::Lookup::Handle("plan".into())),
        })
        .await
        .expect("plan")
        .into_inner()
        .offering
        .expect("offering");
    let (fee, seats) = (plan.product_ids[0].clone(), plan.product_ids[1].clone());
    let err = c
        .catalog
        .create_rate(cat::CreateRateRequest {
            rate: Some(cat::Rate {
                offering_id: plan.id.clone(),
                name: "Too dear".into(),
                currency_code: "USD".into(),
                billing_period: Some(cat::BillingPeriod { unit: cat::PeriodUnit::Month as i32, count: 1 }),
                setup_fee: "5000.01".into(),
                prices: vec![
                    cat::Price {
                        product_id: fee.clone(),
                        model: cat::PricingModel::Tiered as i32,
                        tiers: vec![cat::Tier {
                            up_to: String::new(),
                            unit_amount: "1".into(),
                            flat_amount: "9000".into(),
                        }],
                        ..Default::default()
                    },
                    cat::Price {
                        product_id: seats.clone(),
                        model: cat::PricingModel::PerUnit as i32,
                        unit_amount: "6000".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
        })
        .await
        .expect_err("above 5000.00 USD");
    assert_eq!(
        details_of(&err),
        too_large(&["rate.setup_fee", "rate.prices[0].tiers[0].flat_amount", "rate.prices[1].unit_amount"])
    );
    let lower = CEILING_DOC.replace("unit_amount: \"10\"", "unit_amount: \"5000.01\"");
    let err = apply_doc(&mut c, &lower, true).await.expect_err("a new version above the ceiling");
    assert_eq!(details_of(&err), too_large(&["offerings[0].rates[0].prices.seats.unit_amount"]));
    assert_eq!(app.count_rows("catalog", "rates").await, rates_before, "nothing written");

    // Quotes: a line above the ceiling names its quantity; an absurd one too
    // (10^20 seats, Decimal's largest number), without overflowing.
    let quote_of = |seats: &str| pb::QuoteRequest {
        offerings: vec![cart("plan", "plan-monthly", &[("seats", seats)])],
        ..Default::default()
    };
    let ok = quote(&mut c, quote_of("490")).await.expect("4900.00 + 100.00 is within 5000.00");
    assert_eq!(amount(&ok.amount), "5000.00");
    for seats in ["501", "100000000000000000000", "79228162514264337593543950335"] {
        let err = quote(&mut c, quote_of(seats)).await.expect_err(seats);
        assert_eq!(details_of(&err), too_large(&["offerings[0].items[0].quantity"]), "{seats}: {err}");
        assert_eq!(err.message(), "offerings[0].items[0].quantity: at most 5000.00 USD");
    }
    // Lines within it, the offering's total above it: the offering is named.
    let err = quote(&mut c, quote_of("491")).await.expect_err("4910.00 + 100.00");
    assert_eq!(details_of(&err), too_large(&["offerings[0]"]));

    let usage = |quantity: &str| pb::RateUsageRequest {
        rate_id: "plan-monthly".into(),
        product_id: "seats".into(),
        quantity: quantity.into(),
        ..Default::default()
    };
    c.pricing.rate_usage(usage("500")).await.expect("5000.00");
    let err = c.pricing.rate_usage(usage("100000000000000000000")).await.expect_err("10^20");
    assert_eq!(details_of(&err), too_large(&["quantity"]));

    let ts = |secs: i64| prost_types::Timestamp { seconds: secs, nanos: 0 };
    let err = c
        .pricing
        .preview_change(pb::PreviewChangeRequest {
            current: Some(pb::ContractState {
                offering_id: "plan".into(),
                rate_id: "plan-monthly".into(),
                items: vec![pb::CartItem { product_id: "seats".into(), quantity: "1".into(), custom_price: None }],
                period_start: Some(ts(1_772_323_200)),
                period_end: Some(ts(1_775_001_600)),
                billing_anchor: None,
            }),
            change: Some(pb::ContractChange {
                items: vec![pb::CartItem {
                    product_id: "seats".into(),
                    quantity: "100000000000000000000".into(),
                    custom_price: None,
                }],
                timing: pb::ChangeTiming::EndOfTerm as i32,
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect_err("10^20 seats from next term");
    assert_eq!(details_of(&err), too_large(&["change.items[0].quantity"]));
}

on_both_backends!(amount_ceilings_on_sqlite, amount_ceilings_on_postgres, amount_ceilings);

/// Billing anchors (issue 13): every quoted offering says the anchor its
/// contract keeps, and PreviewChange renews from the contract's anchor, not
/// from a short month's last day.
async fn billing_anchors(app: &TestApp) {
    recur::load_demo_catalog(&app.addr.to_string(), &app.key, "anchors").await.expect("demo catalog");
    let mut c = app.clients("anchors");
    let ts = |s: &str| {
        recur_proto::convert::timestamp(
            chrono::DateTime::parse_from_rfc3339(s).expect("instant").with_timezone(&chrono::Utc),
        )
    };
    let anchor = |day: i32, month: i32| Some(pb::BillingAnchor { day, month });

    // Quote: the start date's day (and month, for yearly periods); after a
    // trial, the trial's end (Jan 17 + 14 days = Jan 31).
    for (name, offering, start_date, want, period_end) in [
        ("monthly", cart("starter", "starter-monthly", &[]), "2023-01-31", anchor(31, 0), "2023-02-28T00:00:00Z"),
        ("yearly", cart("starter", "starter-yearly", &[]), "2024-02-29", anchor(29, 2), "2025-02-28T00:00:00Z"),
        (
            "trial",
            cart("team", "team-monthly", &[("seats", "12")]),
            "2023-01-17",
            anchor(31, 0),
            "2023-02-28T00:00:00Z",
        ),
    ] {
        let q = quote(
            &mut c,
            pb::QuoteRequest {
                offerings: vec![offering],
                start_date: start_date.into(),
                time_zone: "UTC".into(),
                ..Default::default()
            },
        )
        .await
        .expect(name);
        assert_eq!(q.offerings[0].billing_anchor, want, "{name}");
        assert_eq!(q.offerings[0].period_end, Some(ts(period_end)), "{name}");
    }

    // PreviewChange, END_OF_TERM at the same rate: the case.
    let renewal = |start: &str, end: &str, billing_anchor: Option<pb::BillingAnchor>| pb::PreviewChangeRequest {
        current: Some(pb::ContractState {
            offering_id: "starter".into(),
            rate_id: "starter-monthly".into(),
            items: vec![],
            period_start: Some(ts(start)),
            period_end: Some(ts(end)),
            billing_anchor,
        }),
        change: Some(pb::ContractChange { timing: pb::ChangeTiming::EndOfTerm as i32, ..Default::default() }),
        change_time: Some(ts(start)),
        time_zone: "UTC".into(),
        proration_mode: 0,
    };
    let feb = ("2023-01-31T00:00:00Z", "2023-02-28T00:00:00Z");
    let out = c.pricing.preview_change(renewal(feb.0, feb.1, anchor(31, 0))).await.expect("renewal").into_inner();
    assert!(out.lines.is_empty());
    assert_eq!(amount(&out.amount_due_now), "0.00");
    assert_eq!(out.effective_time, Some(ts("2023-02-28T00:00:00Z")));
    assert_eq!(
        (out.new_period_start, out.new_period_end),
        (Some(ts("2023-02-28T00:00:00Z")), Some(ts("2023-03-31T00:00:00Z")))
    );
    // And the period after: back on the 31st's month length, Apr 30.
    let out = c
        .pricing
        .preview_change(renewal("2023-02-28T00:00:00Z", "2023-03-31T00:00:00Z", anchor(31, 0)))
        .await
        .expect("next renewal")
        .into_inner();
    assert_eq!(out.new_period_end, Some(ts("2023-04-30T00:00:00Z")));
    // Unset, the anchor is period_start's day (the 31st here).
    let out = c.pricing.preview_change(renewal(feb.0, feb.1, None)).await.expect("unset").into_inner();
    assert_eq!(out.new_period_end, Some(ts("2023-03-31T00:00:00Z")));

    // Out-of-range anchors, each part named.
    for (day, month, fields) in [
        (0, 0, vec!["current.billing_anchor.day"]),
        (32, 1, vec!["current.billing_anchor.day"]),
        (31, 13, vec!["current.billing_anchor.month"]),
        (31, -1, vec!["current.billing_anchor.month"]),
        (-5, 99, vec!["current.billing_anchor.day", "current.billing_anchor.month"]),
    ] {
        let err = c.pricing.preview_change(renewal(feb.0, feb.1, anchor(day, month))).await.expect_err("bad anchor");
        assert_eq!(err.code(), Code::InvalidArgument, "{day}/{month}: {err:?}");
        assert_eq!(details(&err).fields, fields, "{day}/{month}");
    }
}

on_both_backends!(billing_anchors_on_sqlite, billing_anchors_on_postgres, billing_anchors);
