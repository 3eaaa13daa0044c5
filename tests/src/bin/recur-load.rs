//! `recur-load`: a bounded load driver for Recur, for this machine and any
//! other. It starts the all-in-one process in-process on a loopback port
//! (SQLite + in-memory cache, or Postgres + Redis from RECUR_TEST_DATABASE_URL
//! and RECUR_TEST_REDIS_URL), loads the demo catalog, and drives a fixed
//! number of gRPC calls per target at a fixed concurrency over real HTTP/2,
//! reporting throughput and latency percentiles next to a health check
//! measured in the same run.
//!
//! ```text
//! cargo run --release -p recur-e2e --bin recur-load -- [--backend sqlite|postgres]
//!     [--concurrency 64] [--requests 20000] [--targets health,get-rate,get-offering,quote]
//!     [--catalog-cache-ttl-ms 1000] [--rounds 3] [--db-connections 10] [--in-process-calls on|off]
//!     [--subscriptions 100000]
//!
//! Targets: health, get-rate, get-offering, quote, and charge (a payment
//! through the sandbox provider, each call with its own idempotency key,
//! spread over 32 customers; every payment is checked to have succeeded).
//!
//! `create-subscription` makes a subscription to starter-monthly per call
//! (its first invoice charged through the sandbox) for one of 16 accounts
//! paying by card, each call under its own idempotency key;
//! `change-subscription` asks PreviewChange of starter-monthly → yearly
//! (IMMEDIATE) of one of 16 subscriptions.
//!
//! `record-usage` sends RecordUsage batches of 1,000 new events (ids from a
//! counter) for one of 16 subscriptions; `record-usage-duplicates`, run
//! after it, sends the same ids again (every event a duplicate). The report
//! adds events per second, and the run checks that each distinct event was
//! stored exactly once.
//!
//! `list-subscriptions` (Postgres) first writes `--subscriptions` (100,000)
//! subscriptions of one tenant straight into the subscription schema (a
//! sixth each pending, canceled and past due, half on each of two
//! products), analyzes them, prints the plan Postgres picks for the
//! listing, then drives `ListSubscriptions` of ACTIVE subscriptions of one
//! product, 200 a page, newest first.
//!
//! Rate limits are off, as they are by default. The `rate-limit` target
//! (run alone) instead starts two catalog-service replicas (service mode)
//! sharing one Redis (RECUR_TEST_REDIS_URL) with a read limit, drives
//! ListProducts of one tenant at both far above the limit for a warm-up
//! second and then `--seconds`, and checks that the calls allowed in that
//! window come to the configured rate within ±10% (exit status 1 if not):
//!
//! cargo run --release -p recur-e2e --bin recur-load -- --targets rate-limit
//!     [--rate-limit-per-sec 200] [--seconds 5] [--concurrency 64]
//!
//! Each round runs every target once, in turn, so a slow moment of the
//! machine hits all targets alike; the report gives each target's median
//! round (by throughput).
//!
//! The client shares the machine's cores with the server. By default it
//! sends pre-encoded requests and does not decode responses (like h2load),
//! so the client's share of the cores is about the same for every call and
//! the figures compare the server's work; `--decode` uses typed clients
//! that encode and decode every message, as an application (or ghz) would.
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use recur_e2e::raw::RawCodec;
use recur_e2e::{Backend, Bearer, TestApp};
use recur_proto::catalog::v1 as cat;
use recur_proto::catalog::v1::catalog_service_client::CatalogServiceClient;
use recur_proto::pricing::v1 as pricing;
use recur_proto::pricing::v1::pricing_service_client::PricingServiceClient;
use tonic::transport::Channel;

/// Events per RecordUsage call of the usage targets (the most a call takes).
const USAGE_BATCH: u64 = 1000;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    backend: Backend,
    cache_ttl_ms: String,
    concurrency: usize,
    requests: u64,
    rounds: usize,
    decode: bool,
    db_connections: String,
    in_process_calls: String,
    targets: Vec<String>,
    rate_limit_per_sec: f64,
    seconds: u64,
    subscriptions: u64,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        backend: Backend::SqliteMemory,
        cache_ttl_ms: "1000".into(),
        concurrency: 64,
        requests: 20_000,
        rounds: 3,
        decode: false,
        db_connections: "10".into(),
        in_process_calls: "on".into(),
        targets: vec!["health".into(), "get-rate".into(), "get-offering".into()],
        rate_limit_per_sec: 200.0,
        seconds: 5,
        subscriptions: 100_000,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if flag == "--decode" {
            o.decode = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--backend" => {
                o.backend = match value.as_str() {
                    "sqlite" => Backend::SqliteMemory,
                    "postgres" => Backend::PostgresRedis,
                    other => return Err(format!("--backend is sqlite or postgres, not {other:?}")),
                }
            }
            "--catalog-cache-ttl-ms" => o.cache_ttl_ms = value.clone(),
            "--db-connections" => o.db_connections = value.clone(),
            "--in-process-calls" => o.in_process_calls = value.clone(),
            "--concurrency" => o.concurrency = value.parse().map_err(|_| "--concurrency takes a number")?,
            "--requests" => o.requests = value.parse().map_err(|_| "--requests takes a number")?,
            "--rounds" => o.rounds = value.parse().map_err(|_| "--rounds takes a number")?,
            "--targets" => o.targets = value.split(',').map(str::to_string).collect(),
            "--rate-limit-per-sec" => {
                o.rate_limit_per_sec = value.parse().map_err(|_| "--rate-limit-per-sec takes a number")?
            }
            "--seconds" => o.seconds = value.parse().map_err(|_| "--seconds takes a number")?,
            "--subscriptions" => o.subscriptions = value.parse().map_err(|_| "--subscriptions takes a number")?,
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if o.concurrency == 0
        || o.concurrency > 1024
        || o.requests == 0
        || o.requests > 1_000_000
        || !(1..=10).contains(&o.rounds)
    {
        return Err("concurrency is 1-1024, requests 1-1000000 and rounds 1-10 (the driver is bounded)".into());
    }
    if !(1.0..=10_000.0).contains(&o.rate_limit_per_sec) || !(1..=60).contains(&o.seconds) {
        return Err("--rate-limit-per-sec is 1-10000 and --seconds 1-60 (the driver is bounded)".into());
    }
    if !(1..=1_000_000).contains(&o.subscriptions) {
        return Err("--subscriptions is 1-1000000 (the driver is bounded)".into());
    }
    if o.targets.iter().any(|t| t == "list-subscriptions") && o.backend != Backend::PostgresRedis {
        return Err("the list-subscriptions target runs on --backend postgres".into());
    }
    if o.targets.iter().any(|t| t == "rate-limit") && o.targets.len() > 1 {
        return Err("the rate-limit target runs alone".into());
    }
    Ok(o)
}

/// One kind of call.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)] // a handful live for a whole run
enum Target {
    Health(tonic_health::pb::health_client::HealthClient<Channel>),
    GetRate(CatalogServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>, String),
    GetOffering(CatalogServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>, String),
    Quote(
        PricingServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>,
        pricing::QuoteRequest,
    ),
    /// A charge with a fresh idempotency key per call, encoded per call;
    /// the response is checked, not decoded.
    Charge(
        tonic::client::Grpc<tonic::service::interceptor::InterceptedService<Channel, Bearer>>,
        Arc<Vec<String>>,
        Arc<AtomicU64>,
    ),
    /// A CreateSubscription (starter-monthly, charged through the sandbox)
    /// for the next of the accounts (account, bill group), each call with
    /// its own idempotency key.
    Subscribe(
        tonic::client::Grpc<tonic::service::interceptor::InterceptedService<Channel, Bearer>>,
        Arc<Vec<(String, String)>>,
        Arc<AtomicU64>,
    ),
    /// RecordUsage of a batch of `USAGE_BATCH` events for the next of the
    /// subscriptions (subscription, product), event ids from the counter:
    /// two targets with counters that start alike send the same ids (the
    /// second one's events are all duplicates).
    Usage(
        tonic::client::Grpc<tonic::service::interceptor::InterceptedService<Channel, Bearer>>,
        Arc<Vec<(String, String)>>,
        Arc<AtomicU64>,
    ),
    /// A pre-encoded request to `path`; the response is checked, not decoded.
    Raw(
        tonic::client::Grpc<tonic::service::interceptor::InterceptedService<Channel, Bearer>>,
        tonic::codegen::http::uri::PathAndQuery,
        bytes::Bytes,
    ),
}

impl Target {
    async fn call(&mut self) -> Result<(), tonic::Status> {
        match self {
            Target::Health(c) => {
                c.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.map(|_| ())
            }
            Target::GetRate(c, id) => c
                .get_rate(cat::GetRateRequest { lookup: Some(cat::get_rate_request::Lookup::Id(id.clone())) })
                .await
                .map(|_| ()),
            Target::GetOffering(c, id) => c
                .get_offering(cat::GetOfferingRequest {
                    lookup: Some(cat::get_offering_request::Lookup::Id(id.clone())),
                })
                .await
                .map(|_| ()),
            Target::Quote(c, req) => c.quote(req.clone()).await.map(|_| ()),
            Target::Raw(grpc, path, body) => {
                grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                grpc.unary(tonic::Request::new(body.clone()), path.clone(), RawCodec).await.map(|_| ())
            }
            Target::Subscribe(grpc, accounts, counter) => {
                use prost::Message;
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let (account, bill_group) = &accounts[(n as usize) % accounts.len()];
                let req = recur_proto::subscription::v1::CreateSubscriptionRequest {
                    account_id: account.clone(),
                    bill_group_id: bill_group.clone(),
                    offering: "starter".into(),
                    rate: "starter-monthly".into(),
                    ..Default::default()
                };
                grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/recur.subscription.v1.SubscriptionService/CreateSubscription",
                );
                let mut call = tonic::Request::new(bytes::Bytes::from(req.encode_to_vec()));
                call.metadata_mut().insert(
                    "idempotency-key",
                    format!("load-sub-{n}").parse().map_err(|_| tonic::Status::internal("key"))?,
                );
                grpc.unary(call, path, RawCodec).await.map(|_| ())
            }
            Target::Usage(grpc, subs, counter) => {
                use prost::Message;
                use recur_proto::subscription::v1 as sub;
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let (subscription, product) = &subs[(n as usize) % subs.len()];
                let req = sub::RecordUsageRequest {
                    subscription_id: subscription.clone(),
                    records: (0..USAGE_BATCH)
                        .map(|i| sub::UsageRecord {
                            event_id: format!("ld-{n}-{i}"),
                            product_id: product.clone(),
                            quantity: "1".into(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                };
                grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/recur.subscription.v1.SubscriptionService/RecordUsage",
                );
                grpc.unary(tonic::Request::new(bytes::Bytes::from(req.encode_to_vec())), path, RawCodec)
                    .await
                    .map(|_| ())
            }
            Target::Charge(grpc, customers, counter) => {
                use prost::Message;
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let req = recur_proto::payment::v1::ChargeRequest {
                    customer_id: customers[(n as usize) % customers.len()].clone(),
                    amount: Some(recur_proto::common::v1::Money {
                        currency_code: "USD".into(),
                        amount: "49.00".into(),
                    }),
                    invoice_id: format!("inv_load_{n}"),
                    description: "Load test".into(),
                    idempotency_key: format!("load-{n}"),
                    ..Default::default()
                };
                grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                    "/recur.payment.v1.PaymentGatewayService/Charge",
                );
                grpc.unary(tonic::Request::new(bytes::Bytes::from(req.encode_to_vec())), path, RawCodec)
                    .await
                    .map(|_| ())
            }
        }
    }
}

#[derive(Clone)]
struct Report {
    name: String,
    requests: u64,
    errors: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Report {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Drives `total` calls of `target` with `concurrency` callers spread over
/// `channels` connections.
async fn drive(name: &str, targets: Vec<Target>, concurrency: usize, total: u64) -> Report {
    let issued = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let mut target = targets[i % targets.len()].clone();
        let issued = issued.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while issued.fetch_add(1, Ordering::Relaxed) < total {
                let t = Instant::now();
                if let Err(status) = target.call().await
                    && errors.fetch_add(1, Ordering::Relaxed) == 0
                {
                    eprintln!("first error: {status:?}");
                }
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::with_capacity(total as usize);
    for t in tasks {
        all.extend(t.await.expect("caller task"));
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Report {
        name: name.to_string(),
        requests: all.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

/// The same call as `typed`, pre-encoded, on the next channel.
fn raw(typed: Target, channels: &[Channel], bearer: &Bearer) -> Target {
    use prost::Message;
    use tonic::service::interceptor::InterceptedService;
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let ch = channels[NEXT.fetch_add(1, Ordering::Relaxed) % channels.len()].clone();
    let (path, body, auth) = match &typed {
        Target::Health(_) => (
            "/grpc.health.v1.Health/Check",
            tonic_health::pb::HealthCheckRequest { service: String::new() }.encode_to_vec(),
            Bearer::none(),
        ),
        Target::GetRate(_, id) => (
            "/recur.catalog.v1.CatalogService/GetRate",
            cat::GetRateRequest { lookup: Some(cat::get_rate_request::Lookup::Id(id.clone())) }.encode_to_vec(),
            bearer.clone(),
        ),
        Target::GetOffering(_, id) => (
            "/recur.catalog.v1.CatalogService/GetOffering",
            cat::GetOfferingRequest { lookup: Some(cat::get_offering_request::Lookup::Id(id.clone())) }.encode_to_vec(),
            bearer.clone(),
        ),
        Target::Quote(_, req) => ("/recur.pricing.v1.PricingService/Quote", req.encode_to_vec(), bearer.clone()),
        Target::Raw(..) | Target::Charge(..) | Target::Subscribe(..) | Target::Usage(..) => return typed,
    };
    Target::Raw(
        tonic::client::Grpc::new(InterceptedService::new(ch, auth)),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        bytes::Bytes::from(body),
    )
}

#[tokio::main]
async fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("recur-load: {e}");
            std::process::exit(2);
        }
    };
    if o.targets == ["rate-limit"] {
        std::process::exit(rate_limit(&o).await);
    }
    if o.targets == ["renewals"] {
        std::process::exit(renewals(&o).await);
    }
    let vars = [
        ("RECUR_CATALOG_CACHE_TTL_MS", o.cache_ttl_ms.as_str()),
        ("RECUR_DB_MAX_CONNECTIONS", o.db_connections.as_str()),
        ("RECUR_IN_PROCESS_CALLS", o.in_process_calls.as_str()),
    ];
    let Some(app) = TestApp::spawn_with(o.backend, &vars).await else {
        eprintln!("recur-load: the postgres backend needs RECUR_TEST_DATABASE_URL and RECUR_TEST_REDIS_URL");
        std::process::exit(2);
    };
    let tenant = "load";
    let mut c = app.clients(tenant);
    let rate = demo_catalog(&mut c).await;
    let token = app.token(tenant);

    // A handful of HTTP/2 connections, as a client fleet would open.
    let channels: Vec<Channel> = (0..4)
        .map(|_| {
            tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
                .expect("endpoint")
                .tcp_nodelay(true)
                .connect_lazy()
        })
        .collect();
    let bearer = Bearer::new(&token);
    println!(
        "recur-load: {} calls per target and round, {} rounds (median shown), {} concurrent, {} responses, backend {:?}, catalog cache {} ms, calls between services {}, {} cores",
        o.requests,
        o.rounds,
        o.concurrency,
        if o.decode { "decoded" } else { "raw" },
        o.backend,
        o.cache_ttl_ms,
        if o.in_process_calls == "off" { "over loopback TCP" } else { "in memory" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let channels_for_raw = channels.clone();
    // Customers with a card, for the charge target.
    let mut customers = Vec::new();
    if o.targets.iter().any(|t| t == "charge") {
        use recur_proto::payment::v1 as pay;
        for i in 0..32 {
            let cus = c
                .payments
                .create_customer(pay::CreateCustomerRequest {
                    email: format!("load{i}@example.com"),
                    ..Default::default()
                })
                .await
                .expect("customer")
                .into_inner()
                .customer
                .expect("customer");
            c.payments
                .attach_payment_method(pay::AttachPaymentMethodRequest {
                    customer_id: cus.id.clone(),
                    payment_token: "tok_visa".into(),
                    ..Default::default()
                })
                .await
                .expect("attach");
            customers.push(cus.id);
        }
    }
    let customers = Arc::new(customers);
    // Accounts paying by card, for the create- and change-subscription
    // targets; change-subscription previews starter-monthly → yearly of
    // one subscription per account.
    let recording = o.targets.iter().any(|t| t.starts_with("record-usage"));
    let subscribing = recording || o.targets.iter().any(|t| t == "create-subscription" || t == "change-subscription");
    let accounts = Arc::new(if subscribing { card_accounts(&mut c, 16).await } else { Vec::new() });
    // One subscription per account, for the usage targets.
    let mut metered = Vec::new();
    if recording {
        for (account, bill_group) in accounts.iter() {
            let s = starter(&mut c, account, bill_group).await;
            let product = s.items.first().map(|i| i.product_id.clone()).expect("an item");
            metered.push((s.id, product));
        }
    }
    let metered = Arc::new(metered);
    let (fresh_counter, repeat_counter) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut previews = Vec::new();
    if o.targets.iter().any(|t| t == "change-subscription") {
        use prost::Message;
        use recur_proto::subscription::v1 as sub;
        for (account, bill_group) in accounts.iter() {
            let s = starter(&mut c, account, bill_group).await;
            previews.push(bytes::Bytes::from(
                sub::PreviewChangeRequest {
                    id: s.id,
                    change: Some(sub::SubscriptionChange {
                        rate: "starter-yearly".into(),
                        items: vec![],
                        timing: pricing::ChangeTiming::Immediate as i32,
                    }),
                }
                .encode_to_vec(),
            ));
        }
    }
    let subscribe_counter = Arc::new(AtomicU64::new(0));
    let preview_counter = std::sync::atomic::AtomicUsize::new(0);
    let listing = if o.targets.iter().any(|t| t == "list-subscriptions") {
        Some(seed_subscriptions(&app, &mut c, &rate, o.subscriptions).await)
    } else {
        None
    };
    let charge_counter = Arc::new(AtomicU64::new(0));
    let mut plans: Vec<(String, Vec<Target>)> = Vec::new();
    for name in &o.targets {
        let targets: Vec<Target> = channels
            .iter()
            .map(|ch| match name.as_str() {
                "health" => Target::Health(tonic_health::pb::health_client::HealthClient::new(ch.clone())),
                "get-rate" => {
                    Target::GetRate(CatalogServiceClient::with_interceptor(ch.clone(), bearer.clone()), rate.id.clone())
                }
                "get-offering" => Target::GetOffering(
                    CatalogServiceClient::with_interceptor(ch.clone(), bearer.clone()),
                    rate.offering_id.clone(),
                ),
                "quote" => Target::Quote(
                    PricingServiceClient::with_interceptor(ch.clone(), bearer.clone()),
                    pricing::QuoteRequest {
                        offerings: vec![pricing::CartOffering {
                            offering_id: rate.offering_id.clone(),
                            rate_id: rate.id.clone(),
                            items: vec![pricing::CartItem { product_id: "seats".into(), quantity: "12".into(), custom_price: None }],
                        }],
                        ..Default::default()
                    },
                ),
                "record-usage" | "record-usage-duplicates" => Target::Usage(
                    tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(
                        ch.clone(),
                        bearer.clone(),
                    )),
                    metered.clone(),
                    if name == "record-usage" { fresh_counter.clone() } else { repeat_counter.clone() },
                ),
                "charge" => Target::Charge(
                    tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(
                        ch.clone(),
                        bearer.clone(),
                    )),
                    customers.clone(),
                    charge_counter.clone(),
                ),
                "create-subscription" => Target::Subscribe(
                    tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(
                        ch.clone(),
                        bearer.clone(),
                    )),
                    accounts.clone(),
                    subscribe_counter.clone(),
                ),
                "change-subscription" => Target::Raw(
                    tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(
                        ch.clone(),
                        bearer.clone(),
                    )),
                    tonic::codegen::http::uri::PathAndQuery::from_static(
                        "/recur.subscription.v1.SubscriptionService/PreviewChange",
                    ),
                    previews[preview_counter.fetch_add(1, Ordering::Relaxed) % previews.len()].clone(),
                ),
                "list-subscriptions" => Target::Raw(
                    tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(
                        ch.clone(),
                        bearer.clone(),
                    )),
                    tonic::codegen::http::uri::PathAndQuery::from_static(
                        "/recur.subscription.v1.SubscriptionService/ListSubscriptions",
                    ),
                    listing.clone().unwrap_or_default(),
                ),
                other => {
                    eprintln!(
                        "recur-load: unknown target {other:?} (health, get-rate, get-offering, quote, charge, create-subscription, change-subscription, list-subscriptions, record-usage, record-usage-duplicates; alone: rate-limit, renewals)"
                    );
                    std::process::exit(2);
                }
            })
            .map(|typed| if o.decode { typed } else { raw(typed, &channels_for_raw, &bearer) })
            .collect();
        // Warm up connections, caches and the database.
        drive(name, targets.clone(), o.concurrency, (o.requests / 10).max(100)).await;
        plans.push((name.clone(), targets));
    }
    let mut rounds: Vec<Vec<Report>> = vec![Vec::new(); plans.len()];
    for _ in 0..o.rounds {
        for (i, (name, targets)) in plans.iter().enumerate() {
            rounds[i].push(drive(name, targets.clone(), o.concurrency, o.requests).await);
        }
    }
    let reports: Vec<Report> = rounds
        .into_iter()
        .map(|mut r| {
            r.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
            r.swap_remove(r.len() / 2)
        })
        .collect();
    let health = reports.iter().find(|r| r.name == "health").map(Report::rps);
    println!("| target | calls | errors | calls/s | p50 ms | p99 ms | vs health |");
    println!("|---|---|---|---|---|---|---|");
    for r in &reports {
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            r.name,
            r.requests,
            r.errors,
            r.rps(),
            r.p50.as_secs_f64() * 1000.0,
            r.p99.as_secs_f64() * 1000.0,
            health.map(|h| format!("{:.0}%", r.rps() / h * 100.0)).unwrap_or_else(|| "-".into()),
        );
    }
    for r in reports.iter().filter(|r| r.name.starts_with("record-usage")) {
        println!("{}: {:.0} events/s ({} events a call)", r.name, r.rps() * USAGE_BATCH as f64, USAGE_BATCH);
    }
    if recording {
        // Every fresh event stored once; every repeated one refused.
        let sent = fresh_counter.load(Ordering::Relaxed) * USAGE_BATCH;
        let stored = app.count_rows("subscription", "usage_events").await;
        println!("usage: {sent} distinct events sent, {stored} stored");
        if stored != sent as i64 {
            eprintln!("recur-load: the usage events were not each stored exactly once");
            std::process::exit(1);
        }
    }
    if o.targets.iter().any(|t| t == "charge") {
        let issued = charge_counter.load(Ordering::Relaxed);
        // Only the charge target's own payments (creates charge too).
        let succeeded = app
            .scalar(
                "payment",
                "SELECT COUNT(*) FROM payments WHERE status = 'succeeded' AND invoice_id LIKE 'inv_load_%'",
            )
            .await;
        let at_provider = app
            .scalar(
                "payment",
                "SELECT COUNT(*) FROM sandbox_charges WHERE provider_payment_id IN \
                 (SELECT provider_payment_id FROM payments WHERE invoice_id LIKE 'inv_load_%')",
            )
            .await;
        println!("charges: {issued} sent, {succeeded} payments succeeded, {at_provider} provider charges");
        if succeeded != issued as i64 || at_provider != issued as i64 {
            eprintln!("recur-load: not every charge succeeded exactly once");
            std::process::exit(1);
        }
    }
    app.stop().await;
}

/// A subscription of `account` to starter-monthly.
async fn starter(
    c: &mut recur_e2e::Clients,
    account: &str,
    bill_group: &str,
) -> recur_proto::subscription::v1::Subscription {
    use recur_proto::subscription::v1 as sub;
    c.subscriptions
        .create_subscription(sub::CreateSubscriptionRequest {
            account_id: account.into(),
            bill_group_id: bill_group.into(),
            offering: "starter".into(),
            rate: "starter-monthly".into(),
            ..Default::default()
        })
        .await
        .expect("subscription")
        .into_inner()
        .subscription
        .expect("subscription")
}

/// Writes `n` subscriptions of tenant `load` into the subscription schema
/// (with the rows their filters use), analyzes them, prints the plan of the
/// listing the target makes, and returns that listing's encoded request.
async fn seed_subscriptions(app: &TestApp, c: &mut recur_e2e::Clients, rate: &cat::Rate, n: u64) -> bytes::Bytes {
    use prost::Message;
    use recur_proto::subscription::v1 as sub;
    let (account_id, bill_group_id) = recur_e2e::remittance_account(c, "Load Inc").await;
    let started = Instant::now();
    let written = app
        .scalar(
            "subscription",
            &format!(
                "WITH ins AS (INSERT INTO subscriptions (tenant_id, id, account_id, bill_group_id, offering_id, \
                 rate_id, state, items, coupon_codes, currency, recurring_amount, start_date, anchor_day, anchor_month, \
                 metadata, cancel_at_period_end, current_period_start, current_period_end, next_billing_at, \
                 activated_at, quote_id, request_hash, created_at, updated_at) \
                 SELECT 'load', 'sub_load' || lpad(g::text, 9, '0'), '{a}', '{bg}', '{o}', '{r}', \
                 (ARRAY['active', 'active', 'active', 'pending', 'canceled', 'past_due'])[1 + g % 6], \
                 '[{{\"product_id\":\"' || (CASE WHEN g % 2 = 0 THEN 'prod_seats' ELSE 'prod_fee' END) || '\",\"quantity\":\"1\"}}]', \
                 '[]', 'USD', 100, '2026-01-01', 1, 0, '{{}}', false, now() - interval '1 day', now() + interval '29 days', \
                 now() + interval '29 days', now(), '', '', now() - g * interval '1 second', now() \
                 FROM generate_series(1, {n}) g RETURNING id, items), \
                 p AS (INSERT INTO subscription_products (tenant_id, subscription_id, product_id) \
                 SELECT 'load', id, items::json->0->>'product_id' FROM ins RETURNING 1) \
                 SELECT COUNT(*) FROM p",
                a = account_id,
                bg = bill_group_id,
                o = rate.offering_id,
                r = rate.id,
            ),
        )
        .await;
    for table in ["subscriptions", "subscription_products"] {
        app.execute("subscription", &format!("ANALYZE {table}")).await;
    }
    println!("list-subscriptions: {written} subscriptions written in {:.1} s", started.elapsed().as_secs_f64());
    // The statement ListSubscriptions makes for the target's request, with
    // its values written in, as Postgres plans it.
    let plan = app
        .lines(
            "subscription",
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM subscriptions WHERE tenant_id = 'load' \
             AND state IN ('active') AND id IN (SELECT subscription_id FROM subscription_products \
             WHERE tenant_id = 'load' AND product_id = 'prod_seats') ORDER BY created_at DESC, id DESC LIMIT 201",
        )
        .await;
    println!("list-subscriptions: the plan of one page:");
    for line in plan {
        println!("    {line}");
    }
    sub::ListSubscriptionsRequest {
        page_size: 200,
        states: vec![sub::SubscriptionState::Active as i32],
        product_id: "prod_seats".into(),
        direction: recur_proto::common::v1::SortDirection::Desc as i32,
        ..Default::default()
    }
    .encode_to_vec()
    .into()
}

/// Calls counted by one replica's callers.
#[derive(Default)]
struct Tally {
    allowed: AtomicU64,
    refused: AtomicU64,
    other: AtomicU64,
}

/// The `rate-limit` target: two catalog replicas on one Redis, one read
/// limit, driven far above it. Returns the exit status.
async fn rate_limit(o: &Options) -> i32 {
    use recur_config::{Config, Peers};
    use recur_server::{ServerOptions, ServiceEnv};

    let Ok(redis) = std::env::var("RECUR_TEST_REDIS_URL") else {
        eprintln!("recur-load: the rate-limit target needs RECUR_TEST_REDIS_URL (the Redis both replicas share)");
        return 2;
    };
    let secret = "recur-load-rate-limit-key-0123456789abcdef";
    let dir = std::env::temp_dir().join(format!("recur-load-rate-limit-{}", std::process::id()));
    let rate = o.rate_limit_per_sec;
    let burst = ((rate / 10.0).ceil() as u64).max(1);
    let vars: std::collections::HashMap<String, String> = [
        ("RECUR_DATA_DIR", dir.display().to_string()),
        ("RECUR_JWT_SECRET", secret.to_string()),
        ("RECUR_REDIS_URL", redis),
        ("RECUR_RATE_LIMIT_READ_PER_SEC", rate.to_string()),
        ("RECUR_RATE_LIMIT_READ_BURST", burst.to_string()),
        ("RECUR_CATALOG_CACHE_TTL_MS", o.cache_ttl_ms.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let config = Config::from_map(&vars).expect("configuration");
    let key = recur_auth::TokenKey::new(secret.as_bytes().to_vec());
    let clock = recur_clock::system();

    // Two replicas of the catalog service, each on its own port, on one
    // SQLite file; the buckets are in Redis.
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let listener = recur_server::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let env = ServiceEnv::new(config.clone(), clock.clone(), key.clone(), Peers::all_at(&addr.to_string()), addr);
        let routes = recur_catalog::register(env.clone(), tonic::service::RoutesBuilder::default())
            .await
            .expect("catalog service");
        let options = ServerOptions {
            key: key.clone(),
            clock: clock.clone(),
            service_names: recur_catalog::SERVICE_NAMES.to_vec(),
            max_call_time: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            rate_limits: recur_server::rate_limiter(&config, clock.clone()).expect("rate limits"),
        };
        let server =
            recur_server::spawn(listener, routes.routes(), options, std::future::pending()).expect("serve replica");
        replicas.push(server);
    }

    let tenant = format!("load-rl-{:08x}", rand::random::<u32>());
    let bearer = Bearer::new(&key.mint(&tenant, chrono::Utc::now(), chrono::Duration::hours(1)));
    let body = {
        use prost::Message;
        bytes::Bytes::from(cat::ListProductsRequest { page_size: 1, ..Default::default() }.encode_to_vec())
    };
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/recur.catalog.v1.CatalogService/ListProducts");
    let tallies: Vec<Arc<Tally>> = (0..2).map(|_| Arc::new(Tally::default())).collect();
    let counting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A hard bound on calls, whatever the machine's speed.
    let budget = Arc::new(AtomicU64::new(2_000_000));
    let first_refusal: Arc<std::sync::Mutex<Option<tonic::Status>>> = Arc::default();
    let mut callers = Vec::new();
    for (i, server) in replicas.iter().enumerate() {
        for _ in 0..2 {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.local_addr()))
                .expect("endpoint")
                .tcp_nodelay(true)
                .connect_lazy();
            let grpc =
                tonic::client::Grpc::new(tonic::service::interceptor::InterceptedService::new(channel, bearer.clone()));
            for _ in 0..(o.concurrency / 4).max(1) {
                let (mut grpc, path, body) = (grpc.clone(), path.clone(), body.clone());
                let (tally, counting, stop, budget) =
                    (tallies[i].clone(), counting.clone(), stop.clone(), budget.clone());
                let first_refusal = first_refusal.clone();
                callers.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) && budget.fetch_sub(1, Ordering::Relaxed) > 0 {
                        if grpc.ready().await.is_err() {
                            tally.other.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let result = grpc.unary(tonic::Request::new(body.clone()), path.clone(), RawCodec).await;
                        if !counting.load(Ordering::Relaxed) {
                            continue;
                        }
                        match result {
                            Ok(_) => tally.allowed.fetch_add(1, Ordering::Relaxed),
                            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                                first_refusal.lock().expect("lock").get_or_insert(s);
                                tally.refused.fetch_add(1, Ordering::Relaxed)
                            }
                            Err(s) => {
                                eprintln!("unexpected: {s:?}");
                                tally.other.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                }));
            }
        }
    }
    // The warm-up second empties the bucket (and opens the connections);
    // from then on only the rate refills it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    counting.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(o.seconds)).await;
    counting.store(false, Ordering::Relaxed);
    let window = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        let _ = c.await;
    }
    for r in replicas {
        let _ = r.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "recur-load: rate-limit, 2 catalog replicas on one Redis, read limit {rate}/s (burst {burst}), {} concurrent, {:.1} s measured after a 1 s warm-up, {} cores",
        (o.concurrency / 4).max(1) * 4,
        window,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("| replica | calls | allowed | refused (RESOURCE_EXHAUSTED) | other errors | allowed/s |");
    println!("|---|---|---|---|---|---|");
    let load = |t: &AtomicU64| t.load(Ordering::Relaxed);
    let mut allowed = 0;
    let mut calls = 0;
    let mut other = 0;
    let mut each_served = true;
    for (i, t) in tallies.iter().enumerate() {
        let (a, r, x) = (load(&t.allowed), load(&t.refused), load(&t.other));
        println!("| {} | {} | {a} | {r} | {x} | {:.1} |", i + 1, a + r + x, a as f64 / window);
        allowed += a;
        calls += a + r + x;
        other += x;
        each_served &= a > 0;
    }
    let allowed_rate = allowed as f64 / window;
    let ratio = allowed_rate / rate;
    println!(
        "| both | {calls} | {allowed} | {} | {other} | {allowed_rate:.1} ({:.1}% of {rate}/s; {:.0} calls/s offered) |",
        calls - allowed - other,
        ratio * 100.0,
        calls as f64 / window
    );
    let reason = first_refusal.lock().expect("lock").as_ref().map(|s| recur_e2e::details(s).reason);
    let mut ok = true;
    if !(0.9..=1.1).contains(&ratio) {
        eprintln!("recur-load: allowed {allowed_rate:.1}/s, outside {rate}/s ± 10%");
        ok = false;
    }
    if other > 0 || !each_served || reason.as_deref() != Some("RATE_LIMITED") {
        eprintln!(
            "recur-load: {other} unexpected errors, both replicas served: {each_served}, refusal reason {reason:?}"
        );
        ok = false;
    }
    if calls as f64 / window < rate * 2.0 {
        eprintln!("recur-load: the load ({:.0}/s) was not well above the limit", calls as f64 / window);
        ok = false;
    }
    if ok { 0 } else { 1 }
}

/// `n` accounts paying by the sandbox's Visa: (account, bill group).
async fn card_accounts(c: &mut recur_e2e::Clients, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(recur_e2e::card_account(c, &format!("Load {i}")).await);
    }
    out
}

/// The `renewals` target: `--subscriptions` monthly subscriptions of the
/// demo catalog's Team rate (a flat platform fee and volume-priced seats,
/// 1 to 20), on a card, written straight into the database as due two
/// hours ago; the billing clock of the all-in-one process renews, finalizes
/// and charges them. Prints the rate as it goes (it must not slow down as
/// the tables grow) and the process's resident memory. Postgres only.
async fn renewals(o: &Options) -> i32 {
    // A pass's batch as the process is told (RECUR_BILLING_CLOCK_BATCH), or
    // the default.
    let batch = std::env::var("RECUR_BILLING_CLOCK_BATCH").unwrap_or_else(|_| "200".into());
    let vars = [
        ("RECUR_DB_MAX_CONNECTIONS", o.db_connections.as_str()),
        ("RECUR_IN_PROCESS_CALLS", o.in_process_calls.as_str()),
        ("RECUR_BILLING_CLOCK_INTERVAL_MS", "50"),
        ("RECUR_BILLING_CLOCK_BATCH", batch.as_str()),
    ];
    let Some(app) = TestApp::spawn_with(Backend::PostgresRedis, &vars).await else {
        eprintln!("recur-load: renewals need RECUR_TEST_DATABASE_URL and RECUR_TEST_REDIS_URL");
        return 2;
    };
    let tenant = "load";
    let mut c = app.clients(tenant);
    let rate = demo_catalog(&mut c).await;
    let product = |handle: &str| {
        let mut c = c.catalog.clone();
        let handle = handle.to_string();
        async move {
            c.get_product(cat::GetProductRequest { lookup: Some(cat::get_product_request::Lookup::Handle(handle)) })
                .await
                .expect("product")
                .into_inner()
                .product
                .expect("product")
                .id
        }
    };
    let (fee, seats) = (product("platform-fee").await, product("seats").await);
    let (account, bg) = recur_e2e::card_account(&mut c, "Renewals Inc").await;
    let metered = metered_rate(&mut c, &fee, &seats).await;
    let n = o.subscriptions;
    let started = Instant::now();
    // Each subscription has its own account, bill group, gateway customer
    // and card (copies of the one made through the API), as in a real
    // billing run: no row that every renewal's writes share.
    let number = "lpad(g::text, 9, '0')";
    let (acct, group) = (format!("'acct_load' || {number}"), format!("'bg_load' || {number}"));
    let (customer, method) = (format!("'cus_load' || {number}"), format!("'pm_load' || {number}"));
    let column = |col: &str| {
        let sql = format!("SELECT {col} FROM bill_groups WHERE id = '{bg}'");
        let app = &app;
        async move { app.lines("subscription", &sql).await.into_iter().next().expect("template bill group") }
    };
    let template = (column("gateway_customer_id").await, column("payment_method_id").await);
    let keyed = |col: &str| format!("CASE WHEN {col} IS NULL THEN NULL ELSE {col} || '-' || g END");
    let copies = [
        (
            "subscription",
            "accounts",
            format!("id = '{account}'"),
            vec![
                ("id", acct.clone()),
                ("custom_id", keyed("custom_id")),
                ("idempotency_key", keyed("idempotency_key")),
            ],
        ),
        (
            "subscription",
            "bill_groups",
            format!("id = '{bg}'"),
            vec![
                ("id", group.clone()),
                ("account_id", acct.clone()),
                ("gateway_customer_id", customer.clone()),
                ("payment_method_id", method.clone()),
                ("idempotency_key", keyed("idempotency_key")),
            ],
        ),
        (
            "payment",
            "gateway_customers",
            format!("id = '{}'", template.0),
            vec![
                ("id", customer.clone()),
                ("account_id", acct.clone()),
                ("default_payment_method_id", method.clone()),
                ("idempotency_key", keyed("idempotency_key")),
            ],
        ),
        (
            "payment",
            "payment_methods",
            format!("id = '{}'", template.1),
            vec![("id", method.clone()), ("customer_id", customer.clone())],
        ),
    ];
    for (service, table, which, replaced) in copies {
        app.execute(service, &copy_rows(table, &which, &replaced, n)).await;
    }
    // Every third subscription is on the metered rate, with its API calls
    // (SUM) among its items and 1 to 5 usage events in the period that
    // closes.
    let calls = &metered.calls;
    // The usage first: the billing clock renews a subscription as soon as
    // it is written, and usage written after its period was finalized
    // would not be billed (as RecordUsage would refuse it).
    app.execute(
        "subscription",
        &format!(
            "INSERT INTO usage_events (tenant_id, event_id, subscription_id, product_id, quantity, event_time, \
             properties, created_at) \
             SELECT '{tenant}', 'ev_' || g || '_' || e, 'sub_renew' || lpad(g::text, 9, '0'), '{calls}', 100 * e, \
             now() - interval '10 days', '{{}}', now() - interval '10 days' \
             FROM generate_series(1, {n}) g, generate_series(1, 5) e WHERE g % 3 = 0 AND e <= 1 + g % 5"
        ),
    )
    .await;
    app.execute(
        "subscription",
        &format!(
            "INSERT INTO subscriptions (tenant_id, id, account_id, bill_group_id, offering_id, rate_id, state, items, \
             coupon_codes, currency, recurring_amount, start_date, anchor_day, anchor_month, metadata, \
             cancel_at_period_end, current_period_start, current_period_end, next_billing_at, activated_at, \
             quote_id, request_hash, created_at, updated_at) \
             SELECT '{tenant}', 'sub_renew' || lpad(g::text, 9, '0'), {acct}, {group}, \
             CASE WHEN g % 3 = 0 THEN '{mo}' ELSE '{o}' END, CASE WHEN g % 3 = 0 THEN '{mr}' ELSE '{r}' END, 'active', \
             '[{{\"product_id\":\"{fee}\",\"quantity\":\"1\"}},{{\"product_id\":\"{seats}\",\"quantity\":\"' || (1 + g % 20) || '\"}}' \
             || CASE WHEN g % 3 = 0 THEN ',{{\"product_id\":\"{calls}\",\"quantity\":\"0\"}}]' ELSE ']' END, \
             '[]', 'USD', 100, (now() - interval '32 days')::date::text, \
             EXTRACT(DAY FROM now() - interval '2 hours')::int, 0, '{{}}', false, \
             now() - interval '32 days', now() - interval '2 hours', now() - interval '2 hours', \
             now() - interval '32 days', '', '', now() - interval '32 days', now() - interval '32 days' \
             FROM generate_series(1, {n}) g",
            o = rate.offering_id,
            r = rate.id,
            mo = metered.offering_id,
            mr = metered.rate_id,
        ),
    )
    .await;
    app.execute("subscription", "ANALYZE subscriptions").await;
    app.execute("subscription", "ANALYZE usage_events").await;
    println!("renewals: {n} due subscriptions written in {:.1} s", started.elapsed().as_secs_f64());
    let paid = "SELECT COUNT(*) FROM invoices WHERE billing_reason = 'subscription_cycle' AND status = 'paid'";
    let started = Instant::now();
    let mut last = (0i64, Instant::now());
    let mut peak_rss = 0u64;
    let deadline = Instant::now() + Duration::from_secs(o.seconds.max(60) * 20);
    let mut rate = 0f64;
    loop {
        // Looked at every two seconds (the count reads the invoices), and
        // four times a second when the end is near, so the run's time is
        // known to a quarter of a second; shown every two.
        let near = rate > 0.0 && (n as f64 - last.0 as f64) / rate < 3.0;
        tokio::time::sleep(Duration::from_millis(if near { 250 } else { 2000 })).await;
        let done = app.scalar("subscription", paid).await;
        let rss = resident_kib();
        peak_rss = peak_rss.max(rss);
        let finished = done >= n as i64;
        if last.1.elapsed() >= Duration::from_secs(2) || finished {
            let window = (done - last.0) as f64 / last.1.elapsed().as_secs_f64();
            rate = window;
            println!(
                "renewals: {done} of {n} renewed, finalized and charged after {:.1} s ({window:.0}/s over the last interval), RSS {} MiB",
                started.elapsed().as_secs_f64(),
                rss / 1024
            );
            last = (done, Instant::now());
        }
        if finished {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("recur-load: renewals did not finish in time");
            app.stop().await;
            return 1;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!("renewals: {n} in {secs:.1} s: {:.0} renewals/s; peak RSS {} MiB", n as f64 / secs, peak_rss / 1024);
    let once = app
        .scalar(
            "subscription",
            "SELECT COUNT(*) FROM (SELECT subscription_id FROM invoices WHERE billing_reason = 'subscription_cycle' \
             GROUP BY subscription_id HAVING COUNT(*) > 1) d",
        )
        .await;
    let charges = app.scalar("payment", "SELECT COUNT(*) FROM payments WHERE status = 'succeeded'").await;
    println!("renewals: subscriptions renewed twice: {once}; payments succeeded: {charges}");
    // Each metered subscription's usage billed once, at 0.002 a call,
    // rounded once per line (amounts in cents, to compare as integers).
    let usage_lines = app.scalar("subscription", "SELECT COUNT(*) FROM invoice_lines WHERE kind = 'usage'").await;
    let billed = app
        .scalar("subscription", "SELECT COALESCE(SUM(amount * 100), 0)::bigint FROM invoice_lines WHERE kind = 'usage'")
        .await;
    let expected = app
        .scalar(
            "subscription",
            "SELECT COALESCE(SUM(ROUND(q * 0.002, 2) * 100), 0)::bigint FROM \
             (SELECT subscription_id, SUM(quantity) AS q FROM usage_events GROUP BY subscription_id) u",
        )
        .await;
    println!(
        "renewals: {usage_lines} usage lines (of {} metered subscriptions), {billed} cents billed for usage, {expected} expected",
        n / 3
    );
    app.stop().await;
    if once != 0 || charges != n as i64 || usage_lines != (n / 3) as i64 || billed != expected { 1 } else { 0 }
}

/// A statement copying the row of `table` that `which` finds `n` times,
/// each copy's columns `replaced` by expressions of `g` (1 to `n`), the
/// others as they are; the column list is read from the table itself.
fn copy_rows(table: &str, which: &str, replaced: &[(&str, String)], n: u64) -> String {
    let cases: String = replaced.iter().map(|(col, expr)| format!("WHEN '{col}' THEN $expr${expr}$expr$ ")).collect();
    format!(
        "DO $copy$ DECLARE cols text; vals text; BEGIN \
         SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position), \
         string_agg(CASE column_name {cases}ELSE quote_ident(column_name) END, ', ' ORDER BY ordinal_position) \
         INTO cols, vals FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = '{table}'; \
         EXECUTE format('INSERT INTO {table} (%s) SELECT %s FROM {table}, generate_series(1, {n}) g WHERE %s', \
         cols, vals, $which${which}$which$); END $copy$"
    )
}

/// The renewals target's metered rate: the platform fee and seats of the
/// demo catalog plus metered API calls (SUM, 0.002 each), monthly.
struct MeteredRate {
    offering_id: String,
    rate_id: String,
    calls: String,
}

async fn metered_rate(c: &mut recur_e2e::Clients, fee: &str, seats: &str) -> MeteredRate {
    let calls = c
        .catalog
        .create_product(cat::CreateProductRequest {
            product: Some(cat::Product {
                name: "API calls".into(),
                handle: "load-api-calls".into(),
                kind: cat::ProductKind::Metered as i32,
                aggregation: cat::UsageAggregation::Sum as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("metered product")
        .into_inner()
        .product
        .expect("product")
        .id;
    let price = |product: &str, model: cat::PricingModel, unit: &str, flat: &str| cat::Price {
        product_id: product.to_string(),
        model: model as i32,
        unit_amount: unit.into(),
        flat_amount: flat.into(),
        ..Default::default()
    };
    let prices = vec![
        price(fee, cat::PricingModel::Flat, "", "49.00"),
        price(seats, cat::PricingModel::PerUnit, "10.00", ""),
        price(&calls, cat::PricingModel::PerUnit, "0.002", ""),
    ];
    let (offering, rate_id) = recur_e2e::monthly_offering(
        c,
        "Team metered",
        "load-team-metered",
        "Team metered monthly",
        cat::BillingTiming::InAdvance,
        prices,
    )
    .await;
    MeteredRate { offering_id: offering, rate_id, calls }
}

/// This process's resident memory in KiB (Linux).
fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Applies the demo catalog for the clients' tenant; its Team monthly rate.
async fn demo_catalog(c: &mut recur_e2e::Clients) -> cat::Rate {
    c.catalog
        .apply_catalog(cat::ApplyCatalogRequest {
            document: recur_catalog::DEMO_CATALOG.into(),
            format: 0,
            dry_run: false,
            ..Default::default()
        })
        .await
        .expect("demo catalog");
    c.catalog
        .get_rate(cat::GetRateRequest { lookup: Some(cat::get_rate_request::Lookup::Handle("team-monthly".into())) })
        .await
        .expect("rate")
        .into_inner()
        .rate
        .expect("rate")
}
