//! The `recur` binary, started as a user would start it: SIGTERM lets an
//! in-flight call finish (and succeed) before the process exits cleanly,
//! `recur token` mints tokens the server accepts, and `recur catalog`
//! round-trips the catalog through export and apply.

use std::process::Command;
use std::time::Duration;

use recur_proto::payment::v1 as pay;
use recur_proto::payment::v1::payment_gateway_service_client::PaymentGatewayServiceClient;

mod common;

use common::{authed, start};

const SECRET: &str = "recur-shutdown-test-signing-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_calls_finish() {
    // Every sandbox call takes 1.5 s, so a charge is surely in flight when
    // the signal arrives.
    let mut server = start(&[("RECUR_JWT_SECRET", SECRET), ("RECUR_SANDBOX_LATENCY_MS", "1500")]);
    let key = recur_auth::TokenKey::new(SECRET.as_bytes().to_vec());
    let token = key.mint("acme", chrono::Utc::now(), chrono::Duration::hours(1));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let t = token.clone();
    let mut client = PaymentGatewayServiceClient::with_interceptor(channel, move |r| authed(&t, r));
    let customer = client
        .create_customer(pay::CreateCustomerRequest { email: "a@b.example".into(), ..Default::default() })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer");
    client
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: customer.id.clone(),
            payment_token: "tok_visa".into(),
            ..Default::default()
        })
        .await
        .expect("attach");

    let mut charging = client.clone();
    let in_flight = tokio::spawn(async move {
        charging
            .charge(pay::ChargeRequest {
                customer_id: customer.id,
                amount: Some(recur_proto::common::v1::Money { currency_code: "USD".into(), amount: "12.00".into() }),
                idempotency_key: "shutdown-test".into(),
                ..Default::default()
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());

    let payment =
        in_flight.await.expect("task").expect("the in-flight charge completed").into_inner().payment.expect("payment");
    assert_eq!(payment.status, pay::PaymentStatus::Succeeded as i32);

    // The process exits by itself, successfully.
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = server.child.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("recur exited within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    assert!(tokio::net::TcpStream::connect(&server.addr).await.is_err(), "still accepting after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_key_and_printed_tokens() {
    // Without RECUR_JWT_SECRET the process makes a development key and
    // `recur token` (pointed at the same data directory) mints tokens for it.
    let server = start(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_recur"))
        .env_clear()
        .env("RECUR_DATA_DIR", &server.dir)
        .args(["token", "--tenant", "acme"])
        .output()
        .expect("recur token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).expect("utf-8").trim().to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut client = PaymentGatewayServiceClient::with_interceptor(channel, move |r| authed(&token, r));
    client
        .create_customer(pay::CreateCustomerRequest { email: "x@y.example".into(), ..Default::default() })
        .await
        .expect("the minted token is accepted");

    let bad = Command::new(env!("CARGO_BIN_EXE_recur")).args(["token", "--tenant", "no spaces"]).output().expect("run");
    assert!(!bad.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_cli_round_trips_with_export() {
    // A development-key start loads the demo catalog; `recur catalog export`
    // prints it, and applying that export changes nothing.
    let server = start(&[]);
    let recur = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_recur"))
            .env_clear()
            .env("RECUR_DATA_DIR", &server.dir)
            .args(args)
            .args(["--addr", &server.addr])
            .output()
            .expect("run recur")
    };
    let export = recur(&["catalog", "export"]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let yaml = String::from_utf8(export.stdout).expect("utf-8");
    assert!(yaml.contains("handle: starter-monthly"), "{yaml}");
    let file = server.dir.join("exported.yaml");
    std::fs::write(&file, &yaml).expect("write export");
    let file = file.display().to_string();

    let dry = recur(&["catalog", "apply", &file, "--dry-run"]);
    assert!(dry.status.success(), "{}", String::from_utf8_lossy(&dry.stderr));
    let out = String::from_utf8(dry.stdout).expect("utf-8");
    assert!(out.contains("dry run, nothing written: 0 created, 0 changed, 0 archived, 22 unchanged"), "{out}");

    // A changed price applies as a change; a broken document is refused
    // with the offending field named.
    std::fs::write(&file, yaml.replace("flat_amount: '29'", "flat_amount: '35'")).expect("write");
    let applied = recur(&["catalog", "apply", &file]);
    let out = String::from_utf8(applied.stdout).expect("utf-8");
    assert!(applied.status.success() && out.contains("applied: 0 created, 1 changed"), "{out}");
    std::fs::write(&file, yaml.replace("kind: per_unit", "kind: weekly")).expect("write");
    let refused = recur(&["catalog", "apply", &file]);
    assert!(!refused.status.success());
    let err = String::from_utf8(refused.stderr).expect("utf-8");
    assert!(err.contains("InvalidArgument") && err.contains(".kind"), "{err}");
}
