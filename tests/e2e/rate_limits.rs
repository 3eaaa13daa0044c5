//! Per-tenant rate limits over gRPC, on SQLite + in-memory buckets and on
//! Postgres + Redis buckets: a tenant over its limit gets RESOURCE_EXHAUSTED
//! with `RetryInfo` and nothing of the call runs, another tenant is
//! unaffected, a sign-up's calls between the services are not counted
//! again, and two processes on one Redis share one bucket.
//!
//! Refill is slow (0.2 tokens a second), so the counts hardly depend on how
//! fast the machine is; each bound still allows for the time a loop took.

use std::time::{Duration, Instant};

use recur_e2e::{Backend, Clients, TestApp, create_monthly_plan, details, on_both_backends_with};
use recur_proto::catalog::v1 as cat;
use recur_proto::pricing::v1 as pricing;
use recur_proto::signup::v1 as su;
use tonic::Code;

const RATE: f64 = 0.2;
const READ_BURST: usize = 10;
const WRITE_BURST: usize = 6;

const LIMITS: &[(&str, &str)] = &[
    ("RECUR_RATE_LIMIT_READ_PER_SEC", "0.2"),
    ("RECUR_RATE_LIMIT_READ_BURST", "10"),
    ("RECUR_RATE_LIMIT_WRITE_PER_SEC", "0.2"),
    ("RECUR_RATE_LIMIT_WRITE_BURST", "6"),
    ("RECUR_RATE_LIMIT_MONEY_PER_SEC", "0.2"),
    ("RECUR_RATE_LIMIT_MONEY_BURST", "3"),
];

/// A tenant of its own: Redis buckets outlive a test run.
fn tenant(name: &str) -> String {
    format!("rl-{name}-{:08x}", rand::random::<u32>())
}

/// The most calls a bucket of `burst` may allow from `started` until now
/// (plus one for a token refilled at the edge).
fn at_most(burst: usize, started: Instant) -> usize {
    burst + (started.elapsed().as_secs_f64() * RATE).floor() as usize + 1
}

/// `google.rpc.Status` and `google.rpc.RetryInfo`, as far as read here.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<prost_types::Duration>,
}

fn retry_delay(status: &tonic::Status) -> Option<Duration> {
    use prost::Message;
    let decoded = RpcStatus::decode(status.details()).ok()?;
    let any = decoded.details.iter().find(|d| d.type_url.ends_with("google.rpc.RetryInfo"))?;
    let delay = RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay?;
    Some(Duration::new(u64::try_from(delay.seconds).ok()?, u32::try_from(delay.nanos).ok()?))
}

fn list_products(proof: Option<&str>) -> tonic::Request<cat::ListProductsRequest> {
    let mut req = tonic::Request::new(cat::ListProductsRequest { page_size: 1, ..Default::default() });
    if let Some(p) = proof {
        req.metadata_mut().insert(recur_auth::PEER_PROOF_METADATA, p.parse().expect("ascii"));
    }
    req
}

/// `calls` quick ListProducts: how many were allowed, and the refusals.
async fn reads(c: &mut Clients, calls: usize, proof: Option<&str>) -> (usize, Vec<tonic::Status>) {
    let mut allowed = 0;
    let mut refused = Vec::new();
    for _ in 0..calls {
        match c.catalog.list_products(list_products(proof)).await {
            Ok(_) => allowed += 1,
            Err(s) if s.code() == Code::ResourceExhausted => refused.push(s),
            Err(s) => panic!("unexpected {s:?}"),
        }
    }
    (allowed, refused)
}

fn assert_rate_limited(status: &tonic::Status, class: &str, limit: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let d = details(status);
    assert_eq!(d.reason, "RATE_LIMITED", "{status:?}");
    assert_eq!(d.metadata.get("class").map(String::as_str), Some(class), "{status:?}");
    assert_eq!(d.metadata.get("limit").map(String::as_str), Some(limit), "{status:?}");
    let delay = retry_delay(status).expect("a RetryInfo detail");
    assert!(delay > Duration::ZERO && delay <= Duration::from_secs(5), "one token takes 5 s at most: {delay:?}");
}

async fn a_tenant_over_its_limit_is_refused_alone(app: &TestApp) {
    // Reads: the burst, then RESOURCE_EXHAUSTED with RetryInfo.
    let mut a = app.clients(&tenant("a"));
    let started = Instant::now();
    let (allowed, refused) = reads(&mut a, 30, None).await;
    assert!(allowed >= READ_BURST && allowed <= at_most(READ_BURST, started), "{allowed} of 30 reads allowed");
    assert_eq!(allowed + refused.len(), 30);
    assert_rate_limited(&refused[0], "read", "0.2/s");

    // Another tenant has its own buckets.
    let mut b = app.clients(&tenant("b"));
    assert_eq!(reads(&mut b, READ_BURST, None).await.0, READ_BURST, "another tenant is unaffected");

    // A refused write writes nothing.
    let mut w = app.clients(&tenant("w"));
    let started = Instant::now();
    let mut created = 0;
    for i in 0..20 {
        let product = cat::Product {
            name: format!("Product {i}"),
            kind: cat::ProductKind::Recurring as i32,
            ..Default::default()
        };
        match w.catalog.create_product(cat::CreateProductRequest { product: Some(product) }).await {
            Ok(_) => created += 1,
            Err(s) => assert_rate_limited(&s, "write", "0.2/s"),
        }
    }
    assert!(created >= WRITE_BURST && created <= at_most(WRITE_BURST, started), "{created} of 20 creates allowed");
    assert_eq!(app.count_rows("catalog", "products").await, created as i64, "refused creates saved nothing");

    // A forged peer proof, or another token's, is no proof: limited alike.
    let peer_key = app.key.derive(recur_auth::PEER_CALL_PURPOSE);
    let mut f = app.clients(&tenant("f"));
    let started = Instant::now();
    let (allowed, _) = reads(&mut f, 15, Some("forged")).await;
    let (more, _) = reads(&mut f, 15, Some(&peer_key.peer_proof(&app.token("someone-else")))).await;
    assert!(allowed + more <= at_most(READ_BURST, started), "{} of 30 allowed", allowed + more);
    // The proof of the caller's own token (which only Recur's key makes):
    // a peer call, not counted.
    let token = app.token(&tenant("p"));
    let mut p = app.clients_with(Some(token.clone()));
    assert_eq!(reads(&mut p, 30, Some(&peer_key.peer_proof(&token))).await.0, 30, "peer calls are not limited");
}

on_both_backends_with!(
    over_the_limit_on_sqlite,
    over_the_limit_on_postgres,
    a_tenant_over_its_limit_is_refused_alone,
    LIMITS
);

fn quote(plan: &recur_e2e::Plan) -> su::QuoteInput {
    su::QuoteInput {
        offerings: vec![pricing::CartOffering {
            offering_id: plan.offering_id.clone(),
            rate_id: plan.rate_id.clone(),
            items: vec![pricing::CartItem {
                product_id: plan.product_id.clone(),
                quantity: "1".into(),
                custom_price: None,
            }],
        }],
        ..Default::default()
    }
}

/// A whole sign-up (create, read back, attach a card, finalize: four calls
/// from outside, dozens between the services) costs the tenant its own four
/// calls only.
async fn a_signup_costs_only_its_own_calls(app: &TestApp) {
    let started = Instant::now();
    let mut c = app.clients(&tenant("signup"));
    let plan = create_monthly_plan(&mut c, "25", None).await; // 3 writes
    let created = c
        .signup
        .create_signup(su::CreateSignupRequest {
            action: su::SignupAction::CreateWithPaymentMethod as i32,
            customer: Some(su::CustomerInput {
                account_name: "Acme".into(),
                name: "Sam".into(),
                email: "sam@acme.example".into(),
                ..Default::default()
            }),
            quote: Some(quote(&plan)),
            ..Default::default()
        })
        .await
        .expect("CreateSignup (money 1 of 3)")
        .into_inner()
        .signup
        .expect("signup");
    let session_id = created.session_id;
    c.signup
        .get_signup(su::GetSignupRequest { session_id: session_id.clone() })
        .await
        .expect("GetSignup (read 1 of 10)");
    c.signup
        .update_signup(su::UpdateSignupRequest {
            session_id: session_id.clone(),
            action: su::SignupAction::Update as i32,
            payment_method: Some(su::PaymentMethodInput {
                payment_method_name: "visa".into(),
                payment_token: "tok_visa".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("UpdateSignup UPDATE (money 2 of 3)");
    let done = c
        .signup
        .update_signup(su::UpdateSignupRequest {
            session_id,
            action: su::SignupAction::Finalize as i32,
            ..Default::default()
        })
        .await
        .expect("UpdateSignup FINALIZE (money 3 of 3): the charge and subscription inside are not counted")
        .into_inner()
        .signup
        .expect("signup");
    assert_eq!(done.status, su::SignupStatus::Finalized as i32);

    // The sign-up's quotes and catalog reads between the services left the
    // read bucket alone: 9 reads are left.
    let (allowed, _) = reads(&mut c, 30, None).await;
    assert!(
        allowed >= READ_BURST - 1 && allowed <= at_most(READ_BURST - 1, started),
        "{allowed} reads left after a sign-up"
    );
    // Nor did the customer, account, contact and bill group it created use
    // the write bucket: 3 writes are left.
    let mut writes = 0;
    for i in 0..10 {
        let product =
            cat::Product { name: format!("Extra {i}"), kind: cat::ProductKind::Recurring as i32, ..Default::default() };
        if c.catalog.create_product(cat::CreateProductRequest { product: Some(product) }).await.is_ok() {
            writes += 1;
        }
    }
    assert!(
        writes >= WRITE_BURST - 3 && writes <= at_most(WRITE_BURST - 3, started),
        "{writes} writes left after a sign-up"
    );
}

on_both_backends_with!(signup_on_sqlite, signup_on_postgres, a_signup_costs_only_its_own_calls, LIMITS);

/// Two processes on one Redis draw from one bucket per tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_bucket_through_redis() {
    let Some(first) = TestApp::spawn_with(Backend::PostgresRedis, LIMITS).await else {
        eprintln!("RECUR_TEST_DATABASE_URL / RECUR_TEST_REDIS_URL unset: Redis sharing test skipped");
        return;
    };
    let second = TestApp::spawn_with(Backend::PostgresRedis, LIMITS).await.expect("a second process");
    let tenant = tenant("shared");
    let mut a = first.clients(&tenant);
    let mut b = second.clients(&tenant);
    let started = Instant::now();
    let (mut on_first, mut on_second) = (0, 0);
    for _ in 0..15 {
        on_first += reads(&mut a, 2, None).await.0;
        on_second += reads(&mut b, 2, None).await.0;
    }
    let total = on_first + on_second;
    assert!(
        total >= READ_BURST && total <= at_most(READ_BURST, started),
        "{on_first} + {on_second} of 60 allowed: one bucket of {READ_BURST}, not one per process"
    );
    assert!(on_first > 0 && on_second > 0, "both processes served: {on_first} + {on_second}");
    first.stop().await;
    second.stop().await;
}
