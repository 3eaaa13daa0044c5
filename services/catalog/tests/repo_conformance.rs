//! One conformance suite for the catalog repository, run against SQLite and
//! against Postgres (when `RECUR_TEST_DATABASE_URL` is set): both backends
//! must store, find, page, order and apply exactly alike.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use recur_catalog::domain::*;
use recur_catalog::repo::{self, CatalogRepo};
use recur_storage::page::Cursor;
use recur_storage::testing::{TestDatabase, postgres_url};
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("literal")
}

fn t(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + n, 123_456_000).expect("valid")
}

fn product(id: &str, handle: Option<&str>, name: &str, at: i64) -> Product {
    Product {
        id: id.into(),
        handle: handle.map(Into::into),
        name: name.into(),
        description: String::new(),
        kind: ProductKind::PerUnit,
        unit_name: "seat".into(),
        tax_code: "SW050000".into(),
        min_quantity: Some(d("1")),
        max_quantity: Some(d("500.25")),
        default_quantity: None,
        aggregation: None,
        aggregation_property: String::new(),
        status: Status::Active,
        metadata: BTreeMap::from([("tier".to_string(), "gold".to_string())]),
        created_at: t(at),
        updated_at: t(at),
    }
}

fn offering(id: &str, handle: &str, products: &[&str]) -> Offering {
    Offering {
        id: id.into(),
        handle: Some(handle.into()),
        name: handle.into(),
        description: String::new(),
        product_ids: products.iter().map(|p| p.to_string()).collect(),
        status: Status::Active,
        metadata: BTreeMap::new(),
        created_at: t(10),
        updated_at: t(10),
    }
}

fn rate(id: &str, handle: &str, offering: &str, product: &str, version: u32, status: Status) -> Rate {
    Rate {
        id: id.into(),
        handle: Some(handle.into()),
        offering_id: offering.into(),
        name: "Monthly".into(),
        description: String::new(),
        currency: recur_money::Currency::from_code("KWD").expect("kwd"),
        billing_period: BillingPeriod { unit: PeriodUnit::Month, count: 1 },
        timing: Timing::InAdvance,
        trial_days: 14,
        contract_term_periods: 12,
        auto_renew: true,
        notice_period_days: 30,
        setup_fee: Some(d("9.500")),
        prices: vec![Price {
            product_id: product.into(),
            model: PricingModel::Tiered,
            unit_amount: None,
            flat_amount: None,
            tiers: vec![
                Tier { up_to: Some(d("10")), unit_amount: d("0.0012"), flat_amount: d("1.250") },
                Tier { up_to: None, unit_amount: d("0.0008"), flat_amount: d("0") },
            ],
            package_size: None,
        }],
        status,
        metadata: BTreeMap::new(),
        version,
        created_at: t(20 + i64::from(version)),
        updated_at: t(20 + i64::from(version)),
    }
}

fn page(order: Order, limit: i64, after: Option<Cursor>, descending: bool) -> PageQuery {
    PageQuery { after, limit, order, descending }
}

async fn conformance(repo: Arc<dyn CatalogRepo>) {
    let a = "tenant-a";
    // Products, exactly as written (decimals keep their scale, times their microseconds).
    let names = ["cherry", "Banana", "apple"];
    let mut ops = Vec::new();
    for (i, name) in names.iter().enumerate() {
        ops.push(CatalogOp::InsertProduct(product(&format!("prod_{i}"), Some(&format!("h-{name}")), name, i as i64)));
    }
    repo.apply(a, &ops).await.expect("insert products");
    let got = repo.get_product(a, Lookup::Handle("h-Banana")).await.expect("get").expect("found");
    assert_eq!(got, product("prod_1", Some("h-Banana"), "Banana", 1));
    assert_eq!(got.max_quantity.map(|q| q.to_string()), Some("500.25".into()));
    assert!(repo.get_product("tenant-b", Lookup::Id("prod_1")).await.expect("get").is_none(), "tenants are isolated");
    // A metered product keeps its aggregation and the property it counts.
    let metered = Product {
        kind: ProductKind::Metered,
        aggregation: Some(recur_catalog::domain::Aggregation::UniqueCount),
        aggregation_property: "user_id".into(),
        ..product("prod_m", Some("h-meter"), "Active users", 9)
    };
    repo.apply("tenant-m", &[CatalogOp::InsertProduct(metered.clone())]).await.expect("insert metered");
    let got = repo.get_product("tenant-m", Lookup::Id("prod_m")).await.expect("get").expect("found");
    assert_eq!(got, metered, "a metered product's aggregation is stored");

    // Pages by creation time and by name (byte order: upper case first).
    let all = repo
        .list_products(a, &ProductFilter::default(), &page(Order::CreateTime, 10, None, false))
        .await
        .expect("list");
    assert_eq!(all.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec!["prod_0", "prod_1", "prod_2"]);
    let first =
        repo.list_products(a, &ProductFilter::default(), &page(Order::CreateTime, 2, None, false)).await.expect("page");
    let after = Cursor::time(first[1].created_at, first[1].id.clone());
    let rest = repo
        .list_products(a, &ProductFilter::default(), &page(Order::CreateTime, 2, Some(after), false))
        .await
        .expect("page");
    assert_eq!(rest.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), vec!["prod_2"]);
    let by_name =
        repo.list_products(a, &ProductFilter::default(), &page(Order::Name, 10, None, false)).await.expect("by name");
    assert_eq!(by_name.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), vec!["Banana", "apple", "cherry"]);
    let after = Cursor::text("Banana", "prod_1");
    let next = repo
        .list_products(a, &ProductFilter::default(), &page(Order::Name, 1, Some(after), false))
        .await
        .expect("page");
    assert_eq!(next[0].name, "apple");
    let desc = repo.list_products(a, &ProductFilter::default(), &page(Order::Name, 1, None, true)).await.expect("desc");
    assert_eq!(desc[0].name, "cherry");

    // Offerings with their products, rates with versions.
    repo.apply(
        a,
        &[
            CatalogOp::InsertOffering(offering("offr_1", "plan", &["prod_2", "prod_0"])),
            CatalogOp::InsertRate(rate("rate_1", "plan-monthly", "offr_1", "prod_0", 1, Status::Archived)),
            CatalogOp::InsertRate(rate("rate_2", "plan-monthly", "offr_1", "prod_0", 2, Status::Active)),
        ],
    )
    .await
    .expect("offering and rates");
    let o = repo.get_offering(a, Lookup::Handle("plan")).await.expect("get").expect("found");
    assert_eq!(o.product_ids, vec!["prod_2", "prod_0"], "products keep their order");
    let with = repo
        .list_offerings(
            a,
            &OfferingFilter { product_id: Some("prod_0".into()), ..Default::default() },
            &page(Order::CreateTime, 10, None, false),
        )
        .await
        .expect("list");
    assert_eq!(with.len(), 1);
    let r = repo.get_rate(a, Lookup::Handle("plan-monthly")).await.expect("get").expect("found");
    assert_eq!((r.id.as_str(), r.version), ("rate_2", 2), "a handle names the active version");
    assert_eq!(r, rate("rate_2", "plan-monthly", "offr_1", "prod_0", 2, Status::Active));
    assert_eq!(r.prices[0].tiers[0].unit_amount.to_string(), "0.0012");
    assert_eq!(r.setup_fee.map(|f| f.to_string()), Some("9.500".into()));
    let old = repo.get_rate(a, Lookup::Id("rate_1")).await.expect("get").expect("archived stays readable");
    assert_eq!(old.status, Status::Archived);

    // One transaction: a failing write undoes the ones before it.
    let before = repo.snapshot(a).await.expect("snapshot");
    let failing = repo
        .apply(
            a,
            &[
                CatalogOp::InsertProduct(product("prod_9", Some("h-new"), "New", 9)),
                CatalogOp::InsertProduct(product("prod_10", Some("h-apple"), "Clash", 10)),
            ],
        )
        .await
        .expect_err("duplicate handle");
    assert!(failing.is_unique(), "{failing}");
    let after = repo.snapshot(a).await.expect("snapshot");
    assert_eq!(after.products.len(), before.products.len(), "the first insert was rolled back");
    assert!(repo.get_product(a, Lookup::Id("prod_9")).await.expect("get").is_none());

    // Updates replace an offering's products; rates change only their labels and status.
    let mut o2 = o.clone();
    o2.product_ids = vec!["prod_1".into()];
    o2.name = "Plan 2".into();
    let mut r2 = r.clone();
    r2.name = "Renamed".into();
    r2.status = Status::Archived;
    r2.prices = Vec::new();
    repo.apply(a, &[CatalogOp::UpdateOffering(o2), CatalogOp::UpdateRate(r2)]).await.expect("updates");
    let o3 = repo.get_offering(a, Lookup::Id("offr_1")).await.expect("get").expect("found");
    assert_eq!((o3.name.as_str(), o3.product_ids.clone()), ("Plan 2", vec!["prod_1".to_string()]));
    let r3 = repo.get_rate(a, Lookup::Id("rate_2")).await.expect("get").expect("found");
    assert_eq!((r3.name.as_str(), r3.status, r3.prices.len()), ("Renamed", Status::Archived, 1), "prices never change");

    // Coupons, by code, with amounts per currency.
    let coupon = Coupon {
        id: "coup_1".into(),
        code: "SAVE".into(),
        name: "Save".into(),
        discount_type: DiscountType::FixedAmount,
        percent_off: None,
        amounts_off: BTreeMap::from([("JPY".to_string(), d("500")), ("USD".to_string(), d("5.00"))]),
        duration: CouponDuration::Repeating,
        duration_periods: 3,
        offering_ids: vec!["offr_1".into()],
        product_ids: vec![],
        max_redemptions: 10,
        redeem_by: Some(t(1000)),
        status: Status::Active,
        metadata: BTreeMap::new(),
        created_at: t(30),
        updated_at: t(30),
    };
    repo.apply(a, &[CatalogOp::InsertCoupon(coupon.clone())]).await.expect("coupon");
    assert_eq!(repo.get_coupon(a, Lookup::Handle("SAVE")).await.expect("get"), Some(coupon.clone()));
    let dup = repo
        .apply(a, &[CatalogOp::InsertCoupon(Coupon { id: "coup_2".into(), ..coupon.clone() })])
        .await
        .expect_err("codes are unique");
    assert!(dup.is_unique());
    let listed = repo
        .list_coupons(a, &CouponFilter { status: Some(Status::Active) }, &page(Order::Name, 10, None, false))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);

    // Settings round trip.
    assert!(repo.get_settings(a).await.expect("get").is_none());
    let mut s = TenantSettings::defaults();
    s.time_zone = "Europe/Berlin".into();
    s.tax_rates = vec![TaxRate { country: "DE".into(), state: String::new(), percent: d("19"), name: "USt".into() }];
    s.max_amounts = BTreeMap::from([("USD".to_string(), d("5000.00")), ("JPY".to_string(), d("20000"))]);
    s.updated_at = Some(t(40));
    repo.put_settings(a, &s).await.expect("put");
    assert_eq!(repo.get_settings(a).await.expect("get"), Some(s.clone()));
    let stored = repo.get_settings(a).await.expect("get").expect("settings");
    assert_eq!(stored.max_amounts["USD"].to_string(), "5000.00", "places kept");
    s.prices_include_tax = true;
    repo.put_settings(a, &s).await.expect("put again");
    assert!(repo.get_settings(a).await.expect("get").expect("settings").prices_include_tax);

    let snap = repo.snapshot(a).await.expect("snapshot");
    assert_eq!((snap.products.len(), snap.offerings.len(), snap.rates.len(), snap.coupons.len()), (3, 1, 2, 1));
}

#[tokio::test]
async fn sqlite_conforms() {
    let db = TestDatabase::sqlite();
    let repo = repo::open(&recur_storage::sqlite_file_url(&db.data_dir(), "catalog"), 4).await.expect("open");
    conformance(repo).await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_conforms() {
    let Some(admin) = postgres_url() else {
        eprintln!("RECUR_TEST_DATABASE_URL unset: Postgres conformance run skipped");
        return;
    };
    let db = TestDatabase::postgres(&admin).await.expect("test database");
    let repo = repo::open(db.url().expect("url"), 4).await.expect("open");
    conformance(repo).await;
    db.cleanup().await;
}
