//! A crash between the provider call and the database write: the real
//! `recur` binary charges a card whose provider takes the money but answers
//! late, and is killed (SIGKILL) while the answer is still on its way. The
//! payment is left PROCESSING with its attempt unfinished. A new process on
//! the same database settles it through the reconciler (asking the provider
//! again with the same idempotency key), and a retry of the charge returns
//! that payment: one charge at the provider, one `payment.succeeded` event.
//! On SQLite, and on Postgres when `RECUR_TEST_DATABASE_URL` is set.

mod common;

use std::time::Duration;

use common::{data_dir, start_in};
use recur_proto::payment::v1 as pay;
use recur_proto::payment::v1::payment_gateway_service_client::PaymentGatewayServiceClient;
use sqlx::Connection;

const SECRET: &str = "recur-restart-test-signing-key-0123456789";

type Client = PaymentGatewayServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, common::Bearer>,
>;

async fn client(addr: &str) -> Client {
    let key = recur_auth::TokenKey::new(SECRET.as_bytes().to_vec());
    let token = key.mint("acme", chrono::Utc::now(), chrono::Duration::hours(1));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    PaymentGatewayServiceClient::with_interceptor(channel, common::Bearer(token))
}

/// Reads a count from the payment service's tables.
async fn count(db: &Db, sql: &str) -> i64 {
    match db {
        Db::Sqlite(dir) => {
            let url = format!("sqlite://{}?mode=ro", dir.join("payment.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.expect("count")
        }
        Db::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url).await.expect("postgres");
            sqlx::query("SET search_path TO payment").execute(&mut conn).await.expect("schema");
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap_or(0)
        }
    }
}

enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

fn charge_req(customer: &str) -> pay::ChargeRequest {
    pay::ChargeRequest {
        customer_id: customer.into(),
        amount: Some(recur_proto::common::v1::Money { currency_code: "USD".into(), amount: "77.00".into() }),
        idempotency_key: "order-crash".into(),
        ..Default::default()
    }
}

async fn crash_and_recover(dir: std::path::PathBuf, db: &Db, vars: Vec<(&str, String)>) {
    let mut env: Vec<(&str, &str)> = vec![
        ("RECUR_JWT_SECRET", SECRET),
        ("RECUR_PAYMENT_RECONCILE_AFTER_MS", "4000"),
        ("RECUR_PAYMENT_RECONCILE_INTERVAL_MS", "200"),
    ];
    env.extend(vars.iter().map(|(k, v)| (*k, v.as_str())));

    let mut first = start_in(dir.clone(), &env);
    let mut c = client(&first.addr).await;
    let customer = c
        .create_customer(pay::CreateCustomerRequest { email: "crash@example.com".into(), ..Default::default() })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer");
    c.attach_payment_method(pay::AttachPaymentMethodRequest {
        customer_id: customer.id.clone(),
        payment_token: "tok_timeout".into(),
        ..Default::default()
    })
    .await
    .expect("attach");

    // The charge goes out; the provider takes it and keeps the answer.
    let mut charging = c.clone();
    let req = charge_req(&customer.id);
    let in_flight = tokio::spawn(async move { charging.charge(req).await });
    let mut charged = false;
    for _ in 0..100 {
        if count(db, "SELECT COUNT(*) FROM sandbox_charges").await == 1 {
            charged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(charged, "the provider took the charge");
    assert_eq!(count(db, "SELECT COUNT(*) FROM payments WHERE status = 'processing'").await, 1);

    // The process dies before the answer comes back.
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    assert!(in_flight.await.expect("task").is_err(), "the caller saw the connection drop");
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM payment_attempts WHERE outcome = 'pending' AND finished_at IS NULL").await,
        1,
        "the attempt never reported back"
    );

    // A new process on the same database settles it.
    let second = start_in(dir.clone(), &env);
    let mut c = client(&second.addr).await;
    let list = pay::ListPaymentsRequest { customer_id: customer.id.clone(), ..Default::default() };
    let mut payment = None;
    for _ in 0..200 {
        let p = c.list_payments(list.clone()).await.expect("list").into_inner().payments;
        assert_eq!(p.len(), 1);
        if p[0].status == pay::PaymentStatus::Succeeded as i32 {
            payment = Some(p[0].clone());
            break;
        }
        assert_eq!(p[0].status, pay::PaymentStatus::Processing as i32, "never assumed failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let payment = payment.expect("the reconciler settled the payment");
    assert_eq!(payment.attempt_count, 2);

    // Retrying the charge with the same key returns it; nothing new happens.
    let retry = c.charge(charge_req(&customer.id)).await.expect("retry").into_inner().payment.expect("payment");
    assert_eq!((retry.id.as_str(), retry.status), (payment.id.as_str(), pay::PaymentStatus::Succeeded as i32));
    assert_eq!(count(db, "SELECT COUNT(*) FROM sandbox_charges").await, 1, "one charge at the provider");
    assert_eq!(count(db, "SELECT COUNT(*) FROM payments").await, 1);
    assert_eq!(count(db, "SELECT COUNT(*) FROM payment_attempts WHERE outcome = 'unknown'").await, 1);
    assert_eq!(count(db, "SELECT COUNT(*) FROM payment_attempts WHERE outcome = 'succeeded'").await, 1);
    let events = c
        .list_payment_events(pay::ListPaymentEventsRequest { after_sequence: 0, page_size: 10 })
        .await
        .expect("events")
        .into_inner()
        .events;
    assert_eq!(events.iter().map(|e| e.r#type.as_str()).collect::<Vec<_>>(), ["payment.succeeded"]);
    drop(second);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_provider_and_database_on_sqlite() {
    let dir = data_dir();
    crash_and_recover(dir.clone(), &Db::Sqlite(dir), vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_between_provider_and_database_on_postgres() {
    let Some(admin) = recur_storage::testing::postgres_url() else {
        eprintln!("RECUR_TEST_DATABASE_URL unset: Postgres run skipped");
        return;
    };
    let database = recur_storage::testing::TestDatabase::postgres(&admin).await.expect("a test database");
    let url = database.url().expect("postgres url").to_string();
    crash_and_recover(data_dir(), &Db::Postgres(url.clone()), vec![("RECUR_DATABASE_URL", url.clone())]).await;
    match common::artifacts() {
        Some(_) => common::keep("postgres", &url),
        None => database.cleanup().await,
    }
}
