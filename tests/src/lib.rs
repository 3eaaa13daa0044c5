//! The harness of Recur's end-to-end tests: the all-in-one process on port
//! 0 (on SQLite + in-memory cache, or on Postgres + Redis when
//! `RECUR_TEST_DATABASE_URL` and `RECUR_TEST_REDIS_URL` are set), and gRPC
//! clients that know only the proto contracts and a bearer token.

use std::collections::HashMap;
use std::net::SocketAddr;

use recur_auth::TokenKey;
use recur_config::Config;
use recur_proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use recur_proto::payment::v1::payment_gateway_service_client::PaymentGatewayServiceClient;
use recur_proto::pricing::v1::pricing_service_client::PricingServiceClient;
use recur_proto::signup::v1::signup_service_client::SignupServiceClient;
use recur_proto::subscription::v1::{
    account_service_client::AccountServiceClient, clock_service_client::ClockServiceClient,
    event_service_client::EventServiceClient, invoice_service_client::InvoiceServiceClient,
    subscription_service_client::SubscriptionServiceClient,
};
use recur_storage::testing::{TestDatabase, postgres_url, redis_url};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub use recur_error::details;

pub mod browser;
pub mod clock;
pub mod pay;
pub mod raw;
pub mod scan;
pub mod stripe_fake;

/// An HTTP client for tests (hosted pages, WebDriver).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// Which backends the app under test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    SqliteMemory,
    PostgresRedis,
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer(Option<String>);

impl Bearer {
    pub fn new(token: &str) -> Bearer {
        Bearer(Some(token.to_string()))
    }

    /// Sends no token (health checks, reflection).
    pub fn none() -> Bearer {
        Bearer(None)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            let value = format!("Bearer {token}").parse().map_err(|_| tonic::Status::invalid_argument("bad token"))?;
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}

pub type Authed = InterceptedService<Channel, Bearer>;

/// Clients for every Recur service, as one tenant (or as nobody).
pub struct Clients {
    pub catalog: CatalogServiceClient<Authed>,
    pub pricing: PricingServiceClient<Authed>,
    pub payments: PaymentGatewayServiceClient<Authed>,
    pub accounts: AccountServiceClient<Authed>,
    pub subscriptions: SubscriptionServiceClient<Authed>,
    pub invoices: InvoiceServiceClient<Authed>,
    pub events: EventServiceClient<Authed>,
    pub clock: ClockServiceClient<Authed>,
    pub signup: SignupServiceClient<Authed>,
}

impl Clients {
    /// Every client over one channel.
    pub fn new(ch: Channel, b: Bearer) -> Clients {
        Clients {
            catalog: CatalogServiceClient::with_interceptor(ch.clone(), b.clone()),
            pricing: PricingServiceClient::with_interceptor(ch.clone(), b.clone()),
            payments: PaymentGatewayServiceClient::with_interceptor(ch.clone(), b.clone()),
            accounts: AccountServiceClient::with_interceptor(ch.clone(), b.clone()),
            subscriptions: SubscriptionServiceClient::with_interceptor(ch.clone(), b.clone()),
            invoices: InvoiceServiceClient::with_interceptor(ch.clone(), b.clone()),
            events: EventServiceClient::with_interceptor(ch.clone(), b.clone()),
            clock: ClockServiceClient::with_interceptor(ch.clone(), b.clone()),
            signup: SignupServiceClient::with_interceptor(ch, b),
        }
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub key: TokenKey,
    pub backend: Backend,
    app: Option<recur::App>,
    db: TestDatabase,
    channel: Channel,
    /// The clock every service reads, when the test set one.
    clock: Option<std::sync::Arc<recur_clock::ManualClock>>,
}

/// The shared HS256 key of test apps (any 32+ bytes will do).
const TEST_SECRET: &str = "recur-e2e-test-signing-key-0123456789";

impl TestApp {
    /// Starts the all-in-one process on `backend`, or `None` when that
    /// backend is not configured in the environment.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        TestApp::spawn_with(backend, &[]).await
    }

    /// Like [`TestApp::spawn`], with extra configuration variables.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
        TestApp::spawn_inner(backend, extra, None).await
    }

    /// Like [`TestApp::spawn`], with every service reading a clock that
    /// stands at `start` until [`TestApp::set_time`] moves it.
    pub async fn spawn_at(backend: Backend, start: chrono::DateTime<chrono::Utc>) -> Option<TestApp> {
        TestApp::spawn_inner(backend, &[], Some(recur_clock::ManualClock::new(start))).await
    }

    /// Like [`TestApp::spawn_at`], with extra configuration variables.
    pub async fn spawn_at_with(
        backend: Backend,
        start: chrono::DateTime<chrono::Utc>,
        extra: &[(&str, &str)],
    ) -> Option<TestApp> {
        TestApp::spawn_inner(backend, extra, Some(recur_clock::ManualClock::new(start))).await
    }

    /// Sets the time of an app started with [`TestApp::spawn_at`].
    pub fn set_time(&self, to: chrono::DateTime<chrono::Utc>) {
        self.clock.as_ref().expect("an app started with spawn_at").set(to);
    }

    async fn spawn_inner(
        backend: Backend,
        extra: &[(&str, &str)],
        clock: Option<std::sync::Arc<recur_clock::ManualClock>>,
    ) -> Option<TestApp> {
        scan::capture_logs();
        let db = match backend {
            Backend::SqliteMemory => TestDatabase::sqlite(),
            Backend::PostgresRedis => {
                let pg = postgres_url()?;
                redis_url()?;
                TestDatabase::postgres(&pg).await.expect("create a Postgres test database")
            }
        };
        let mut vars: HashMap<String, String> = HashMap::new();
        vars.insert("RECUR_DATA_DIR".into(), db.data_dir().display().to_string());
        vars.insert("RECUR_JWT_SECRET".into(), TEST_SECRET.into());
        vars.insert("RECUR_DB_MAX_CONNECTIONS".into(), "5".into());
        // The billing clock runs only in the tests that ask for it: others
        // move time by hand and count invoices.
        vars.insert("RECUR_BILLING_CLOCK_INTERVAL_MS".into(), "0".into());
        if backend == Backend::PostgresRedis {
            vars.insert("RECUR_DATABASE_URL".into(), db.url().expect("postgres url").to_string());
            vars.insert("RECUR_REDIS_URL".into(), redis_url()?);
        }
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        let config = Config::from_map(&vars).expect("test configuration");
        let key = TokenKey::new(TEST_SECRET.as_bytes().to_vec());
        let listener = recur_server::bind("127.0.0.1:0").await.expect("bind port 0");
        let shared: recur_clock::SharedClock = match &clock {
            Some(c) => c.clone(),
            None => recur_clock::system(),
        };
        let app = recur::start(config, shared, key.clone(), listener, std::future::pending())
            .await
            .expect("start recur all-in-one");
        let addr = app.local_addr();
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint").connect_lazy();
        Some(TestApp { addr, key, backend, app: Some(app), db, channel, clock })
    }

    /// A valid token for `tenant`.
    pub fn token(&self, tenant: &str) -> String {
        self.key.mint(tenant, chrono::Utc::now(), chrono::Duration::hours(1))
    }

    /// Clients that send `token` (or nothing, for `None`).
    pub fn clients_with(&self, token: Option<String>) -> Clients {
        Clients::new(self.channel.clone(), Bearer(token))
    }

    /// Clients acting for `tenant`.
    pub fn clients(&self, tenant: &str) -> Clients {
        self.clients_with(Some(self.token(tenant)))
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Base URL of the hosted pages.
    pub fn public_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Rows in a service's table, read straight from its database: how tests
    /// prove that nothing was saved.
    pub async fn count_rows(&self, service: &str, table: &str) -> i64 {
        self.scalar(service, &format!("SELECT COUNT(*) FROM {table}")).await
    }

    /// A number read straight from a service's database.
    /// Runs a statement that returns nothing in `service`'s schema
    /// (Postgres) or database (SQLite).
    pub async fn execute(&self, service: &str, sql: &str) {
        match self.db.url() {
            Some(url) => {
                let schema = recur_storage::schema_name(service);
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.expect("connect");
                sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.expect("schema");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("execute");
            }
            None => {
                let url = recur_storage::sqlite_file_url(&self.db.data_dir(), service);
                let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.expect("connect");
                sqlx::raw_sql(sql).execute(&mut conn).await.expect("execute");
            }
        }
    }

    /// The first text column of every row `sql` returns (Postgres), such as
    /// the lines of an EXPLAIN.
    pub async fn lines(&self, service: &str, sql: &str) -> Vec<String> {
        let Some(url) = self.db.url() else { return Vec::new() };
        let schema = recur_storage::schema_name(service);
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.expect("connect");
        sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.expect("schema");
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.expect("rows")
    }

    pub async fn scalar(&self, service: &str, sql: &str) -> i64 {
        match self.db.url() {
            Some(url) => {
                let schema = recur_storage::schema_name(service);
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url).await.expect("connect");
                sqlx::query(&format!("SET search_path TO {schema}")).execute(&mut conn).await.expect("schema");
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("count")
            }
            None => {
                let url = recur_storage::sqlite_file_url(&self.db.data_dir(), service);
                let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url).await.expect("connect");
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("count")
            }
        }
    }

    /// Scans this app's database for card numbers.
    pub async fn scan_database(&self) -> scan::Report {
        match self.db.url() {
            Some(url) => scan::scan_postgres(url).await.expect("scan postgres"),
            None => scan::scan_sqlite_dir(&self.db.data_dir()).await.expect("scan sqlite"),
        }
    }

    /// Stops the app gracefully and drops its database (or, when the run
    /// keeps artifacts, leaves it for the card-number scan).
    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
        if scan::artifacts_dir().is_some() {
            match self.db.url() {
                Some(url) => scan::keep_database("postgres", url),
                None => scan::keep_database("sqlite", &self.db.data_dir().display().to_string()),
            }
            return;
        }
        self.db.cleanup().await;
    }
}

/// Runs `test` on SQLite + in-memory cache, and again on Postgres + Redis
/// when those are configured (CI configures them).
#[macro_export]
macro_rules! on_both_backends {
    ($sqlite:ident, $postgres:ident, $body:path) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let app = $crate::TestApp::spawn($crate::Backend::SqliteMemory).await.expect("sqlite always works");
            $body(&app).await;
            app.stop().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(app) = $crate::TestApp::spawn($crate::Backend::PostgresRedis).await else {
                eprintln!("RECUR_TEST_DATABASE_URL / RECUR_TEST_REDIS_URL unset: Postgres + Redis run skipped");
                return;
            };
            $body(&app).await;
            app.stop().await;
        }
    };
}

/// Like [`on_both_backends!`], on apps whose clock starts at `$start`.
#[macro_export]
macro_rules! on_both_backends_at {
    ($sqlite:ident, $postgres:ident, $body:path, $start:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let app =
                $crate::TestApp::spawn_at($crate::Backend::SqliteMemory, $start).await.expect("sqlite always works");
            $body(&app).await;
            app.stop().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(app) = $crate::TestApp::spawn_at($crate::Backend::PostgresRedis, $start).await else {
                eprintln!("RECUR_TEST_DATABASE_URL / RECUR_TEST_REDIS_URL unset: Postgres + Redis run skipped");
                return;
            };
            $body(&app).await;
            app.stop().await;
        }
    };
}

/// Like [`on_both_backends!`], with extra configuration variables.
#[macro_export]
macro_rules! on_both_backends_with {
    ($sqlite:ident, $postgres:ident, $body:path, $vars:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let app =
                $crate::TestApp::spawn_with($crate::Backend::SqliteMemory, $vars).await.expect("sqlite always works");
            $body(&app).await;
            app.stop().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(app) = $crate::TestApp::spawn_with($crate::Backend::PostgresRedis, $vars).await else {
                eprintln!("RECUR_TEST_DATABASE_URL / RECUR_TEST_REDIS_URL unset: Postgres + Redis run skipped");
                return;
            };
            $body(&app).await;
            app.stop().await;
        }
    };
}

/// A catalog to sign up to: one flat monthly plan.
pub struct Plan {
    pub product_id: String,
    pub offering_id: String,
    pub rate_id: String,
}

/// Creates a product, an offering and a monthly flat-price rate of
/// `amount` USD, and (optionally) a tax rate for US-CA.
pub async fn create_monthly_plan(c: &mut Clients, amount: &str, ca_tax_percent: Option<&str>) -> Plan {
    create_plan_named(c, "starter", amount, ca_tax_percent).await
}

/// Like [`create_monthly_plan`], the offering's handle `handle`.
pub async fn create_plan_named(c: &mut Clients, handle: &str, amount: &str, ca_tax_percent: Option<&str>) -> Plan {
    use recur_proto::catalog::v1 as cat;
    let product = c
        .catalog
        .create_product(cat::CreateProductRequest {
            product: Some(cat::Product {
                name: "Platform fee".into(),
                kind: cat::ProductKind::Recurring as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("create product")
        .into_inner()
        .product
        .expect("product");
    let price = flat_price(&product.id, amount);
    let (offering_id, rate_id) =
        monthly_offering(c, "Starter", handle, "Starter monthly", cat::BillingTiming::InAdvance, vec![price]).await;
    if let Some(percent) = ca_tax_percent {
        set_ca_tax(c, percent).await;
    }
    Plan { product_id: product.id, offering_id, rate_id }
}

/// Makes `percent` the tenant's one tax rate, for US-CA.
pub async fn set_ca_tax(c: &mut Clients, percent: &str) {
    use recur_proto::catalog::v1 as cat;
    c.catalog
        .update_tenant_settings(cat::UpdateTenantSettingsRequest {
            settings: Some(cat::TenantSettings {
                tax_rates: vec![cat::TaxRate {
                    country: "US".into(),
                    state: "CA".into(),
                    percent: percent.into(),
                    name: "CA sales tax".into(),
                }],
                ..Default::default()
            }),
            update_mask: Some(mask(&["tax_rates"])),
        })
        .await
        .expect("set tax rate");
}

/// A FLAT price of `amount` for `product`.
pub fn flat_price(product: &str, amount: &str) -> recur_proto::catalog::v1::Price {
    use recur_proto::catalog::v1 as cat;
    cat::Price {
        product_id: product.into(),
        model: cat::PricingModel::Flat as i32,
        flat_amount: amount.into(),
        ..Default::default()
    }
}

/// A PER_UNIT price of `unit` for `product`.
pub fn per_unit_price(product: &str, unit: &str) -> recur_proto::catalog::v1::Price {
    use recur_proto::catalog::v1 as cat;
    cat::Price {
        product_id: product.into(),
        model: cat::PricingModel::PerUnit as i32,
        unit_amount: unit.into(),
        ..Default::default()
    }
}

/// Creates offering `handle` (named `name`) of the products `prices`
/// price, and its monthly USD rate `rate_name` billed `timing`; answers
/// (offering id, rate id).
pub async fn monthly_offering(
    c: &mut Clients,
    name: &str,
    handle: &str,
    rate_name: &str,
    timing: recur_proto::catalog::v1::BillingTiming,
    prices: Vec<recur_proto::catalog::v1::Price>,
) -> (String, String) {
    use recur_proto::catalog::v1 as cat;
    let offering = c
        .catalog
        .create_offering(cat::CreateOfferingRequest {
            offering: Some(cat::Offering {
                name: name.into(),
                handle: handle.into(),
                product_ids: prices.iter().map(|p| p.product_id.clone()).collect(),
                ..Default::default()
            }),
        })
        .await
        .expect("create offering")
        .into_inner()
        .offering
        .expect("offering");
    let rate = c
        .catalog
        .create_rate(cat::CreateRateRequest {
            rate: Some(cat::Rate {
                offering_id: offering.id.clone(),
                name: rate_name.into(),
                currency_code: "USD".into(),
                billing_period: Some(cat::BillingPeriod { unit: cat::PeriodUnit::Month as i32, count: 1 }),
                timing: timing as i32,
                prices,
                ..Default::default()
            }),
        })
        .await
        .expect("create rate")
        .into_inner()
        .rate
        .expect("rate");
    (offering.id, rate.id)
}

/// A field mask of `paths`.
pub fn mask(paths: &[&str]) -> prost_types::FieldMask {
    prost_types::FieldMask { paths: paths.iter().map(|p| p.to_string()).collect() }
}

/// A new account named `name` with a bill group that pays by remittance
/// (nothing is charged): their ids.
pub async fn remittance_account(c: &mut Clients, name: &str) -> (String, String) {
    use recur_proto::subscription::v1 as sub;
    let account = c
        .accounts
        .create_account(sub::CreateAccountRequest {
            account: Some(sub::Account { account_name: name.into(), ..Default::default() }),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account");
    let bill_group = c
        .accounts
        .create_bill_group(sub::CreateBillGroupRequest {
            bill_group: Some(sub::BillGroup {
                account_id: account.id.clone(),
                collection_method: sub::CollectionMethod::Remittance as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("bill group")
        .into_inner()
        .bill_group
        .expect("bill group");
    (account.id, bill_group.id)
}

/// A new gateway customer with the sandbox's Visa as its default method:
/// their ids.
/// Attaches the sandbox card `token` to gateway customer `customer`
/// (not as its default); the payment method's id.
pub async fn attach_card(c: &mut Clients, customer: &str, token: &str) -> String {
    attach_card_as(c, customer, token, false).await
}

/// Like [`attach_card`], as the customer's default when `default`.
pub async fn attach_card_as(c: &mut Clients, customer: &str, token: &str, default: bool) -> String {
    use recur_proto::payment::v1 as pay;
    c.payments
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: customer.into(),
            payment_token: token.into(),
            set_default: default,
            ..Default::default()
        })
        .await
        .expect("attach")
        .into_inner()
        .payment_method
        .expect("method")
        .id
}

pub async fn customer_with_card(c: &mut Clients) -> (String, String) {
    use recur_proto::payment::v1 as pay;
    let customer = c
        .payments
        .create_customer(pay::CreateCustomerRequest { email: "pat@example.com".into(), ..Default::default() })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer");
    let pm = c
        .payments
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: customer.id.clone(),
            payment_token: "tok_visa".into(),
            set_default: true,
            ..Default::default()
        })
        .await
        .expect("attach")
        .into_inner()
        .payment_method
        .expect("method");
    (customer.id, pm.id)
}

/// A new account named `name` paying by the sandbox's Visa: a gateway
/// customer with the card, and a bill group charging it automatically.
/// Their ids (account, bill group).
pub async fn card_account(c: &mut Clients, name: &str) -> (String, String) {
    use recur_proto::subscription::v1 as sub;
    let (customer, pm) = customer_with_card(c).await;
    let account = c
        .accounts
        .create_account(sub::CreateAccountRequest {
            account: Some(sub::Account { account_name: name.into(), ..Default::default() }),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account")
        .id;
    let bill_group = c
        .accounts
        .create_bill_group(sub::CreateBillGroupRequest {
            bill_group: Some(sub::BillGroup {
                account_id: account.clone(),
                gateway_customer_id: customer,
                payment_method_id: pm,
                collection_method: sub::CollectionMethod::Automatic as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("bill group")
        .into_inner()
        .bill_group
        .expect("bill group")
        .id;
    (account, bill_group)
}

/// A new coupon `code` taking `percent` off, forever.
pub async fn percent_coupon(c: &mut Clients, code: &str, percent: &str) -> recur_proto::catalog::v1::Coupon {
    use recur_proto::catalog::v1 as cat;
    c.catalog
        .create_coupon(cat::CreateCouponRequest {
            coupon: Some(cat::Coupon {
                code: code.into(),
                discount_type: cat::DiscountType::Percent as i32,
                percent_off: percent.into(),
                duration: cat::CouponDuration::Forever as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("coupon")
        .into_inner()
        .coupon
        .expect("coupon")
}

/// Puts bill group `bg` on a new card `token` of its customer.
pub async fn switch_card(c: &mut Clients, bg: &str, token: &str) {
    use recur_proto::subscription::v1 as sub;
    let group = c
        .accounts
        .get_bill_group(sub::GetBillGroupRequest { id: bg.into() })
        .await
        .expect("bill group")
        .into_inner()
        .bill_group
        .expect("bill group");
    let pm = attach_card(c, &group.gateway_customer_id, token).await;
    c.accounts
        .update_bill_group(sub::UpdateBillGroupRequest {
            bill_group: Some(sub::BillGroup { id: bg.into(), payment_method_id: pm, ..Default::default() }),
            update_mask: Some(mask(&["payment_method_id"])),
        })
        .await
        .expect("new card");
}

/// Sets the tenant's dunning schedule: retries `days` after the first
/// failure, then `last`.
pub async fn set_dunning(c: &mut Clients, days: &[i32], last: recur_proto::catalog::v1::DunningFinalAction) {
    use recur_proto::catalog::v1 as cat;
    c.catalog
        .update_tenant_settings(cat::UpdateTenantSettingsRequest {
            settings: Some(cat::TenantSettings {
                dunning: Some(cat::DunningSchedule { retry_offset_days: days.to_vec(), final_action: last as i32 }),
                ..Default::default()
            }),
            update_mask: Some(mask(&["dunning"])),
        })
        .await
        .expect("dunning settings");
}
