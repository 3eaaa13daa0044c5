//! Lists and lookups of the catalog: keyset pages that stay correct while
//! rows are inserted, filters, orderings that agree across backends, and
//! every resource by id and by handle (coupons by code).

use std::collections::HashSet;

use recur_e2e::{Clients, TestApp, details, on_both_backends};
use recur_proto::catalog::v1 as cat;
use recur_proto::common::v1::{Money, SortDirection};
use tonic::Code;

async fn product(c: &mut Clients, name: &str, handle: &str, kind: cat::ProductKind) -> cat::Product {
    c.catalog
        .create_product(cat::CreateProductRequest {
            product: Some(cat::Product {
                name: name.into(),
                handle: handle.into(),
                kind: kind as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("product")
        .into_inner()
        .product
        .expect("product")
}

async fn list(c: &mut Clients, req: cat::ListProductsRequest) -> cat::ListProductsResponse {
    c.catalog.list_products(req).await.expect("list").into_inner()
}

async fn lists_and_lookups(app: &TestApp) {
    let mut c = app.clients("lister");
    let mut ids = Vec::new();
    for name in ["cherry", "Banana", "apple", "date", "Elder"] {
        ids.push(product(&mut c, name, &format!("p-{}", name.to_lowercase()), cat::ProductKind::Recurring).await.id);
    }

    // Pages of two, with rows inserted between pages: every row created
    // before the walk appears exactly once, in creation order.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut inserted = 0;
    loop {
        let page =
            list(&mut c, cat::ListProductsRequest { page_size: 2, page_token: token.clone(), ..Default::default() })
                .await;
        assert!(page.products.len() <= 2);
        seen.extend(page.products.iter().map(|p| p.id.clone()));
        if inserted < 3 {
            product(&mut c, &format!("late {inserted}"), "", cat::ProductKind::Metered).await;
            inserted += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(&seen[..5], &ids[..], "the first five in creation order");
    assert_eq!(seen.len(), 8, "the late rows appear after, once each");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len(), "no row twice");

    // Filters.
    let metered = list(
        &mut c,
        cat::ListProductsRequest { kind: cat::ProductKind::Metered as i32, page_size: 50, ..Default::default() },
    )
    .await;
    assert_eq!(metered.products.len(), 3);
    c.catalog.archive_product(cat::ArchiveProductRequest { id: ids[0].clone() }).await.expect("archive");
    let archived =
        list(&mut c, cat::ListProductsRequest { status: cat::CatalogStatus::Archived as i32, ..Default::default() })
            .await;
    assert_eq!(archived.products.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), vec![ids[0].clone()]);

    // Ordering by name is byte order on both backends, both directions,
    // and its pages continue in that order.
    let by_name = |direction: SortDirection, token: String| cat::ListProductsRequest {
        order_by: "name".into(),
        direction: direction as i32,
        kind: cat::ProductKind::Recurring as i32,
        page_size: 3,
        page_token: token,
        ..Default::default()
    };
    let first = list(&mut c, by_name(SortDirection::Asc, String::new())).await;
    let second = list(&mut c, by_name(SortDirection::Asc, first.next_page_token.clone())).await;
    let names: Vec<String> = first.products.iter().chain(&second.products).map(|p| p.name.clone()).collect();
    assert_eq!(names, vec!["Banana", "Elder", "apple", "cherry", "date"]);
    let desc = list(&mut c, by_name(SortDirection::Desc, String::new())).await;
    assert_eq!(desc.products.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), vec!["date", "cherry", "apple"]);
    // A token of one ordering does not continue another.
    let err = c
        .catalog
        .list_products(cat::ListProductsRequest { page_token: first.next_page_token.clone(), ..Default::default() })
        .await
        .expect_err("mixed orderings");
    assert_eq!(details(&err).fields, vec!["page_token"]);
    for (req, field) in [
        (cat::ListProductsRequest { page_size: -1, ..Default::default() }, "page_size"),
        (cat::ListProductsRequest { page_token: "garbage".into(), ..Default::default() }, "page_token"),
        (cat::ListProductsRequest { order_by: "price".into(), ..Default::default() }, "order_by"),
    ] {
        let err = c.catalog.list_products(req).await.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(details(&err).fields, vec![field]);
    }

    // Offerings, rates and coupons by id and by handle or code; filters.
    let seats = product(&mut c, "Seats", "seats", cat::ProductKind::PerUnit).await;
    let offering = c
        .catalog
        .create_offering(cat::CreateOfferingRequest {
            offering: Some(cat::Offering {
                name: "Team".into(),
                handle: "team".into(),
                product_ids: vec![ids[1].clone(), "seats".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("offering by product handle")
        .into_inner()
        .offering
        .expect("offering");
    assert_eq!(offering.product_ids, vec![ids[1].clone(), seats.id.clone()]);
    let by_handle = c
        .catalog
        .get_offering(cat::GetOfferingRequest {
            lookup: Some(cat::get_offering_request::Lookup::Handle("team".into())),
        })
        .await
        .expect("by handle")
        .into_inner()
        .offering
        .expect("offering");
    assert_eq!(by_handle.id, offering.id);
    let with_seats = c
        .catalog
        .list_offerings(cat::ListOfferingsRequest { product_id: seats.id.clone(), ..Default::default() })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(with_seats.offerings.len(), 1);
    for currency in ["USD", "EUR"] {
        c.catalog
            .create_rate(cat::CreateRateRequest {
                rate: Some(cat::Rate {
                    offering_id: "team".into(),
                    handle: format!("team-{}", currency.to_lowercase()),
                    name: format!("Team {currency}"),
                    currency_code: currency.into(),
                    billing_period: Some(cat::BillingPeriod { unit: cat::PeriodUnit::Month as i32, count: 1 }),
                    prices: vec![
                        cat::Price {
                            product_id: "p-banana".into(),
                            model: cat::PricingModel::Flat as i32,
                            flat_amount: "10".into(),
                            ..Default::default()
                        },
                        cat::Price {
                            product_id: "seats".into(),
                            model: cat::PricingModel::PerUnit as i32,
                            unit_amount: "0.0012".into(),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }),
            })
            .await
            .expect("rate, prices naming products by handle");
    }
    let eur = c
        .catalog
        .list_rates(cat::ListRatesRequest {
            offering_id: offering.id.clone(),
            currency_code: "EUR".into(),
            ..Default::default()
        })
        .await
        .expect("rates")
        .into_inner();
    assert_eq!(eur.rates.len(), 1);
    assert_eq!(eur.rates[0].handle, "team-eur");
    assert_eq!(eur.rates[0].prices[1].unit_amount, "0.0012", "unit prices keep places the currency lacks");

    let coupon = c
        .catalog
        .create_coupon(cat::CreateCouponRequest {
            coupon: Some(cat::Coupon {
                code: "SAVE5".into(),
                discount_type: cat::DiscountType::FixedAmount as i32,
                amounts_off: vec![
                    Money { currency_code: "USD".into(), amount: "5".into() },
                    Money { currency_code: "JPY".into(), amount: "500".into() },
                ],
                duration: cat::CouponDuration::Repeating as i32,
                duration_periods: 3,
                offering_ids: vec!["team".into()],
                max_redemptions: 100,
                ..Default::default()
            }),
        })
        .await
        .expect("coupon")
        .into_inner()
        .coupon
        .expect("coupon");
    assert_eq!(coupon.offering_ids, vec![offering.id.clone()]);
    let by_code = c
        .catalog
        .get_coupon(cat::GetCouponRequest { lookup: Some(cat::get_coupon_request::Lookup::Code("SAVE5".into())) })
        .await
        .expect("by code")
        .into_inner()
        .coupon
        .expect("coupon");
    assert_eq!(by_code.id, coupon.id);
    assert_eq!(by_code.amounts_off.len(), 2);
    c.catalog.archive_coupon(cat::ArchiveCouponRequest { id: coupon.id.clone() }).await.expect("archive");
    let active = c
        .catalog
        .list_coupons(cat::ListCouponsRequest { status: cat::CatalogStatus::Active as i32, ..Default::default() })
        .await
        .expect("coupons")
        .into_inner();
    assert!(active.coupons.is_empty());
    let still = c
        .catalog
        .get_coupon(cat::GetCouponRequest { lookup: Some(cat::get_coupon_request::Lookup::Id(coupon.id.clone())) })
        .await
        .expect("archived coupons stay readable")
        .into_inner()
        .coupon
        .expect("coupon");
    assert_eq!(still.status, cat::CatalogStatus::Archived as i32);

    // Unknown ids and handles are NOT_FOUND.
    let err = c
        .catalog
        .get_product(cat::GetProductRequest { lookup: Some(cat::get_product_request::Lookup::Handle("nope".into())) })
        .await
        .expect_err("unknown handle");
    assert_eq!(err.code(), Code::NotFound);
}

on_both_backends!(catalog_lists_sqlite, catalog_lists_postgres, lists_and_lookups);
