//! The billing clock of the real `recur` binary, killed and shared:
//!
//! - 150 subscriptions due (their periods moved into the past in the
//!   database, as a process down for a while finds them): the binary is
//!   killed (SIGKILL) while it renews them (in passes of 10, each pass's
//!   renewals written in one transaction), started again,
//!   killed again while it charges the renewals, and started once more;
//!   every subscription then has exactly one renewal invoice, paid, and the
//!   provider charged each once (SQLite, and Postgres when
//!   `RECUR_TEST_DATABASE_URL` is set).
//! - Two processes on one Postgres database run the same due batch at
//!   once: each subscription renewed once, charged once.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::{Bearer, Server, data_dir, start_in};
use recur_proto::catalog::v1 as cat;
use recur_proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use recur_proto::payment::v1 as pay;
use recur_proto::payment::v1::payment_gateway_service_client::PaymentGatewayServiceClient;
use recur_proto::subscription::v1 as sub;
use recur_proto::subscription::v1::{
    account_service_client::AccountServiceClient, subscription_service_client::SubscriptionServiceClient,
};
use sqlx::Connection;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const SECRET: &str = "recur-billing-crash-test-signing-key-0123";
const SUBSCRIPTIONS: usize = 150;

type Svc = InterceptedService<Channel, Bearer>;

async fn channel(addr: &str) -> (Channel, Bearer) {
    let key = recur_auth::TokenKey::new(SECRET.as_bytes().to_vec());
    let token = key.mint("acme", Utc::now(), chrono::Duration::hours(1));
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    (ch, Bearer(token))
}

#[derive(Clone)]
enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Db {
    async fn scalar(&self, service: &str, sql: &str) -> i64 {
        match self {
            Db::Sqlite(dir) => {
                let url = format!("sqlite://{}?mode=ro", dir.join(format!("{service}.db")).display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("count")
            }
            Db::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
                let schema = recur_storage::schema_name(service);
                sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.expect("schema");
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("count")
            }
        }
    }

    /// Moves every subscription's period into the past: it ended two
    /// hours ago (its renewal and the grace period after it are due).
    async fn make_due(&self) {
        let end = recur_clock::to_micros(Utc::now() - chrono::Duration::hours(2));
        let start = end - chrono::Duration::days(30);
        let sql = "UPDATE subscriptions SET current_period_start = $1, current_period_end = $2, next_billing_at = $2";
        match self {
            Db::Sqlite(dir) => {
                let url = format!("sqlite://{}", dir.join("subscription.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                sqlx::query(sql).bind(start).bind(end).execute(&mut conn).await.expect("due");
            }
            Db::Postgres(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
                sqlx::query("SET search_path TO subscription").execute(&mut conn).await.expect("schema");
                sqlx::query(sql).bind(start).bind(end).execute(&mut conn).await.expect("due");
            }
        }
    }

    async fn renewals(&self) -> i64 {
        self.scalar("subscription", "SELECT COUNT(*) FROM invoices WHERE billing_reason = 'subscription_cycle'").await
    }

    async fn paid_renewals(&self) -> i64 {
        self.scalar(
            "subscription",
            "SELECT COUNT(*) FROM invoices WHERE billing_reason = 'subscription_cycle' AND status = 'paid'",
        )
        .await
    }
}

/// A plan of 10.00 a month and `SUBSCRIPTIONS` subscriptions to it, each
/// charged its first invoice.
async fn subscribe_all(addr: &str) {
    let (ch, b) = channel(addr).await;
    let mut catalog: CatalogServiceClient<Svc> = CatalogServiceClient::with_interceptor(ch.clone(), b.clone());
    let mut payments: PaymentGatewayServiceClient<Svc> =
        PaymentGatewayServiceClient::with_interceptor(ch.clone(), b.clone());
    let mut accounts: AccountServiceClient<Svc> = AccountServiceClient::with_interceptor(ch.clone(), b.clone());
    let subscriptions: SubscriptionServiceClient<Svc> = SubscriptionServiceClient::with_interceptor(ch, b);
    let product = catalog
        .create_product(cat::CreateProductRequest {
            product: Some(cat::Product {
                name: "Seat".into(),
                kind: cat::ProductKind::Recurring as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("product")
        .into_inner()
        .product
        .expect("product");
    let offering = catalog
        .create_offering(cat::CreateOfferingRequest {
            offering: Some(cat::Offering {
                name: "Team".into(),
                handle: "team".into(),
                product_ids: vec![product.id.clone()],
                ..Default::default()
            }),
        })
        .await
        .expect("offering")
        .into_inner()
        .offering
        .expect("offering");
    let rate = catalog
        .create_rate(cat::CreateRateRequest {
            rate: Some(cat::Rate {
                offering_id: offering.id.clone(),
                name: "Team monthly".into(),
                currency_code: "USD".into(),
                billing_period: Some(cat::BillingPeriod { unit: cat::PeriodUnit::Month as i32, count: 1 }),
                timing: cat::BillingTiming::InAdvance as i32,
                prices: vec![cat::Price {
                    product_id: product.id.clone(),
                    model: cat::PricingModel::Flat as i32,
                    flat_amount: "10.00".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .await
        .expect("rate")
        .into_inner()
        .rate
        .expect("rate");
    let customer = payments
        .create_customer(pay::CreateCustomerRequest { email: "ops@example.com".into(), ..Default::default() })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer");
    let pm = payments
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: customer.id.clone(),
            payment_token: "tok_visa".into(),
            set_default: true,
            ..Default::default()
        })
        .await
        .expect("card")
        .into_inner()
        .payment_method
        .expect("card");
    let account = accounts
        .create_account(sub::CreateAccountRequest {
            account: Some(sub::Account { account_name: "Load".into(), ..Default::default() }),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account");
    let bg = accounts
        .create_bill_group(sub::CreateBillGroupRequest {
            bill_group: Some(sub::BillGroup {
                account_id: account.id.clone(),
                gateway_customer_id: customer.id,
                payment_method_id: pm.id,
                collection_method: sub::CollectionMethod::Automatic as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("bill group")
        .into_inner()
        .bill_group
        .expect("bill group");
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let mut s = subscriptions.clone();
        let (account, bg, offering, rate) = (account.id.clone(), bg.id.clone(), offering.id.clone(), rate.id.clone());
        tasks.push(tokio::spawn(async move {
            for _ in (worker..SUBSCRIPTIONS).step_by(4) {
                s.create_subscription(sub::CreateSubscriptionRequest {
                    account_id: account.clone(),
                    bill_group_id: bg.clone(),
                    offering: offering.clone(),
                    rate: rate.clone(),
                    ..Default::default()
                })
                .await
                .expect("subscribe");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
}

fn env(db_url: Option<&str>, clock_ms: &str) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("RECUR_JWT_SECRET", SECRET.to_string()),
        ("RECUR_BILLING_CLOCK_INTERVAL_MS", clock_ms.to_string()),
        ("RECUR_BILLING_CLOCK_LEASE_MS", "1500".to_string()),
        // Small passes, so that a kill finds some renewals written (each
        // pass's in one transaction) and others not yet.
        ("RECUR_BILLING_CLOCK_BATCH", "10".to_string()),
    ];
    if let Some(url) = db_url {
        vars.push(("RECUR_DATABASE_URL", url.to_string()));
    }
    vars
}

fn start(dir: std::path::PathBuf, vars: &[(&'static str, String)]) -> Server {
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    start_in(dir, &vars)
}

/// Waits until every subscription's renewal is paid (or the deadline).
async fn wait_all_paid(db: &Db) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.paid_renewals().await < SUBSCRIPTIONS as i64 {
        assert!(Instant::now() < deadline, "renewed {} of {SUBSCRIPTIONS}", db.paid_renewals().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each subscription renewed once, each renewal charged once at the
/// provider, on top of the first invoices' charges.
async fn exactly_once(db: &Db) {
    let n = SUBSCRIPTIONS as i64;
    assert_eq!(db.renewals().await, n, "one renewal invoice per subscription");
    assert_eq!(
        db.scalar(
            "subscription",
            "SELECT COUNT(DISTINCT subscription_id) FROM invoices WHERE billing_reason = 'subscription_cycle'"
        )
        .await,
        n
    );
    assert_eq!(db.scalar("payment", "SELECT COUNT(*) FROM sandbox_charges").await, 2 * n, "one charge per invoice");
    assert_eq!(db.scalar("payment", "SELECT COUNT(*) FROM payments").await, 2 * n);
    assert_eq!(
        db.scalar("payment", "SELECT COUNT(*) FROM payments WHERE status = 'succeeded'").await,
        2 * n,
        "every payment settled"
    );
}

async fn killed_mid_batch(dir: std::path::PathBuf, db: Db, url: Option<&str>) {
    let mut first = start(dir.clone(), &env(url, "0"));
    subscribe_all(&first.addr).await;
    first.child.kill().expect("stop");
    first.child.wait().expect("reaped");
    db.make_due().await;

    // The clock starts on the due batch; it is killed part-way, once 20
    // renewals are made.
    let mut second = start(dir.clone(), &env(url, "50"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.renewals().await < 20 {
        assert!(Instant::now() < deadline, "the clock never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    second.child.kill().expect("SIGKILL");
    second.child.wait().expect("reaped");
    let at_kill = db.renewals().await;
    let paid_at_kill = db.paid_renewals().await;
    eprintln!("killed with {at_kill} renewals made, {paid_at_kill} paid, of {SUBSCRIPTIONS}");
    assert!(paid_at_kill < SUBSCRIPTIONS as i64, "killed before the batch was done");

    // Started again and killed again while it charges the renewals.
    let mut third = start(dir.clone(), &env(url, "50"));
    while db.paid_renewals().await < 20 {
        assert!(Instant::now() < deadline, "the clock never charged");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    third.child.kill().expect("SIGKILL");
    third.child.wait().expect("reaped");
    let paid_at_kill = db.paid_renewals().await;
    eprintln!("killed again with {paid_at_kill} renewals paid of {SUBSCRIPTIONS}");
    assert!(paid_at_kill < SUBSCRIPTIONS as i64, "killed while charging");

    // Started once more: the leases of the dead processes expire, the rest
    // is done, nothing twice.
    let fourth = start(dir.clone(), &env(url, "50"));
    wait_all_paid(&db).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    exactly_once(&db).await;
    drop(fourth);
    drop(third);
    drop(second);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_run_killed_mid_batch_renews_each_once_on_sqlite() {
    let dir = data_dir();
    killed_mid_batch(dir.clone(), Db::Sqlite(dir), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_run_killed_mid_batch_renews_each_once_on_postgres() {
    let Some(admin) = recur_storage::testing::postgres_url() else {
        eprintln!("RECUR_TEST_DATABASE_URL unset: Postgres run skipped");
        return;
    };
    let database = recur_storage::testing::TestDatabase::postgres(&admin).await.expect("a test database");
    let url = database.url().expect("postgres url").to_string();
    killed_mid_batch(data_dir(), Db::Postgres(url.clone()), Some(&url)).await;
    match common::artifacts() {
        Some(_) => common::keep("postgres", &url),
        None => database.cleanup().await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_postgres_renew_each_once() {
    let Some(admin) = recur_storage::testing::postgres_url() else {
        eprintln!("RECUR_TEST_DATABASE_URL unset: Postgres run skipped");
        return;
    };
    let database = recur_storage::testing::TestDatabase::postgres(&admin).await.expect("a test database");
    let url = database.url().expect("postgres url").to_string();
    let db = Db::Postgres(url.clone());
    let mut setup = start(data_dir(), &env(Some(&url), "0"));
    subscribe_all(&setup.addr).await;
    setup.child.kill().expect("stop");
    setup.child.wait().expect("reaped");
    db.make_due().await;
    // Two replicas, each with its own data directory, one database.
    let a = start(data_dir(), &env(Some(&url), "20"));
    let b = start(data_dir(), &env(Some(&url), "20"));
    wait_all_paid(&db).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    exactly_once(&db).await;
    drop(a);
    drop(b);
    drop(setup);
    match common::artifacts() {
        Some(_) => common::keep("postgres", &url),
        None => database.cleanup().await,
    }
}
