//! The Stripe provider, end to end: Recur's gRPC API on one side, a local
//! HTTP server answering as Stripe's REST API documents on the other
//! (`recur_e2e::stripe_fake`). The tenant `acme` is on Stripe (through
//! `RECUR_PAYMENT_PROVIDERS`), `globex` stays on the sandbox. On SQLite and
//! on Postgres.

use std::time::Duration;

use recur_e2e::pay::{charge, charge_req, get_payment as get, status, usd};
use recur_e2e::stripe_fake::{self, FakeStripe};
use recur_e2e::{Backend, Clients, TestApp, details};
use recur_proto::payment::v1 as pay;
use serde_json::json;
use tonic::Code;

struct Setup {
    app: TestApp,
    fake: FakeStripe,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn setup(backend: Backend, extra: &[(&str, &str)]) -> Option<Setup> {
    let fake = FakeStripe::start().await;
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("recur-stripe-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("providers.yaml");
    std::fs::write(
        &file,
        format!(
            "tenants:\n  acme:\n    provider: stripe\n    secret_key: {}\n    publishable_key: {}\n    \
             webhook_secret: {}\n    api_base: {}\n",
            stripe_fake::SECRET_KEY,
            stripe_fake::PUBLISHABLE_KEY,
            stripe_fake::WEBHOOK_SECRET,
            fake.base_url
        ),
    )
    .expect("write providers file");
    let path = file.display().to_string();
    let mut vars = vec![("RECUR_PAYMENT_PROVIDERS", path.as_str())];
    vars.extend_from_slice(extra);
    let app = TestApp::spawn_with(backend, &vars).await?;
    Some(Setup { app, fake, _dir: TempDir(dir) })
}

macro_rules! on_both {
    ($sqlite:ident, $postgres:ident, $body:path, $vars:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sqlite() {
            let s = setup(Backend::SqliteMemory, $vars).await.expect("sqlite always works");
            $body(&s).await;
            s.fake.stop();
            s.app.stop().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $postgres() {
            let Some(s) = setup(Backend::PostgresRedis, $vars).await else {
                eprintln!("RECUR_TEST_DATABASE_URL / RECUR_TEST_REDIS_URL unset: Postgres + Redis run skipped");
                return;
            };
            $body(&s).await;
            s.fake.stop();
            s.app.stop().await;
        }
    };
}

async fn customer(c: &mut Clients) -> pay::Customer {
    c.payments
        .create_customer(pay::CreateCustomerRequest {
            email: "ops@acme.example".into(),
            name: "Acme Ops".into(),
            ..Default::default()
        })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer")
}

async fn attach(c: &mut Clients, customer: &str, token: &str) -> pay::PaymentMethod {
    c.payments
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: customer.into(),
            payment_token: token.into(),
            set_default: true,
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("attach {token}: {e}"))
        .into_inner()
        .payment_method
        .expect("method")
}

fn field<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

async fn customers_and_cards(s: &Setup) {
    let mut c = s.app.clients("acme");
    let cus = customer(&mut c).await;
    assert_eq!(cus.provider, "stripe");
    assert!(cus.provider_customer_id.starts_with("cus_"), "{}", cus.provider_customer_id);

    // Seed 000's paymentMethodInit, from Stripe.
    let init = c
        .payments
        .init_payment_method(pay::InitPaymentMethodRequest { customer_id: cus.id.clone(), ..Default::default() })
        .await
        .expect("init")
        .into_inner()
        .init
        .expect("init");
    assert_eq!(init.provider, "stripe");
    assert_eq!(init.provider_customer_id, cus.provider_customer_id);
    assert!(init.setup_intent_id.starts_with("seti_"));
    assert!(init.client_secret.starts_with(&format!("{}_secret_", init.setup_intent_id)));
    assert_eq!(init.publishable_key, stripe_fake::PUBLISHABLE_KEY);
    assert!(init.hosted_page_url.is_empty(), "Stripe collects cards with its own form");

    // Before the customer confirms, the setup intent holds no card.
    let err = c
        .payments
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: cus.id.clone(),
            payment_token: init.setup_intent_id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("not confirmed yet");
    assert_eq!((err.code(), details(&err).fields), (Code::InvalidArgument, vec!["payment_token".to_string()]));

    // The customer confirms it in Stripe.js; Recur attaches what came of it.
    s.fake.confirm_setup_intent(&init.setup_intent_id, "pm_card_visa").expect("confirm");
    let visa = attach(&mut c, &cus.id, &init.setup_intent_id).await;
    assert_eq!((visa.brand.as_str(), visa.last4.as_str(), visa.exp_month, visa.exp_year), ("visa", "4242", 8, 2031));
    assert!(visa.provider_payment_method_id.starts_with("pm_"));

    let master = attach(&mut c, &cus.id, "pm_card_mastercard").await;
    assert_eq!((master.brand.as_str(), master.last4.as_str()), ("mastercard", "4444"));
    let from_token = attach(&mut c, &cus.id, "tok_visa").await;
    assert_eq!(from_token.last4, "4242");

    let err = c
        .payments
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: cus.id.clone(),
            payment_token: "pm_does_not_exist".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown method");
    assert_eq!((err.code(), details(&err).fields), (Code::InvalidArgument, vec!["payment_token".to_string()]));

    // Every POST carried an idempotency key and the API key (or the fake
    // would have refused it), and the form as Stripe expects it.
    let received = s.fake.received();
    assert!(received.iter().filter(|r| r.method == "POST").all(|r| r.idempotency_key.is_some()));
    let seti = received.iter().find(|r| r.path == "/v1/setup_intents").expect("setup intent call");
    assert_eq!(field(&seti.form, "usage"), Some("off_session"));
    assert_eq!(field(&seti.form, "payment_method_types[]"), Some("card"));
}

on_both!(customers_and_cards_on_sqlite, customers_and_cards_on_postgres, customers_and_cards, &[]);

async fn charges(s: &Setup) {
    let mut c = s.app.clients("acme");
    let cus = customer(&mut c).await;
    attach(&mut c, &cus.id, "pm_card_visa").await;
    let ok = charge(&mut c, &cus.id, "19.99", "stripe-ok").await;
    assert_eq!(status(&ok), pay::PaymentStatus::Succeeded);
    assert!(ok.provider_payment_id.starts_with("pi_"));
    let sent = s.fake.received().into_iter().find(|r| r.path == "/v1/payment_intents").expect("intent");
    assert_eq!(field(&sent.form, "amount"), Some("1999"));
    assert_eq!(field(&sent.form, "currency"), Some("usd"));
    assert_eq!(field(&sent.form, "off_session"), Some("true"));
    assert_eq!(field(&sent.form, "confirm"), Some("true"));
    assert_eq!(field(&sent.form, "metadata[recur_payment_id]"), Some(ok.id.as_str()));
    assert_eq!(sent.idempotency_key.as_deref(), Some(format!("acme:{}", ok.id).as_str()));

    attach(&mut c, &cus.id, "pm_card_chargeDeclinedInsufficientFunds").await;
    let declined = charge(&mut c, &cus.id, "19.99", "stripe-declined").await;
    assert_eq!(status(&declined), pay::PaymentStatus::Failed);
    assert_eq!(declined.decline_code, "insufficient_funds");
    assert_eq!(declined.failure_message, "Your card has insufficient funds.");
    assert!(declined.provider_payment_id.starts_with("pi_"));

    attach(&mut c, &cus.id, "pm_card_authenticationRequired").await;
    let mut req = charge_req(&cus.id, "19.99", "stripe-3ds");
    req.return_url = "https://acme.example/after-3ds".into();
    let tds = c.payments.charge(req).await.expect("charge").into_inner().payment.expect("payment");
    assert_eq!(status(&tds), pay::PaymentStatus::RequiresAction);
    assert_eq!(tds.action_url, format!("{}/3d_secure/{}", s.fake.base_url, tds.provider_payment_id));
    let confirm = s
        .fake
        .received()
        .into_iter()
        .find(|r| r.path.ends_with("/confirm"))
        .expect("confirmed on-session for a redirect");
    assert_eq!(field(&confirm.form, "return_url"), Some("https://acme.example/after-3ds"));

    // The sandbox tenant next door is untouched by Stripe.
    let before = s.fake.received().len();
    let mut g = s.app.clients("globex");
    let gc = customer(&mut g).await;
    assert_eq!(gc.provider, "sandbox");
    attach(&mut g, &gc.id, "tok_visa").await;
    assert_eq!(status(&charge(&mut g, &gc.id, "5.00", "g").await), pay::PaymentStatus::Succeeded);
    assert_eq!(s.fake.received().len(), before);
}

on_both!(charges_on_sqlite, charges_on_postgres, charges, &[]);

/// A 500 (and a 503) before Stripe did anything: retried with the same
/// idempotency key, one PaymentIntent. Failing past the retries leaves the
/// outcome unknown (PROCESSING) until the reconciler asks again.
async fn retries(s: &Setup) {
    let mut c = s.app.clients("acme");
    let cus = customer(&mut c).await;
    attach(&mut c, &cus.id, "pm_card_visa").await;
    s.fake.fail_next("/v1/payment_intents", 500, 1);
    s.fake.fail_next("/v1/payment_intents", 503, 1);
    let p = charge(&mut c, &cus.id, "12.00", "flaky").await;
    assert_eq!(status(&p), pay::PaymentStatus::Succeeded);
    let calls: Vec<_> = s.fake.received().into_iter().filter(|r| r.path == "/v1/payment_intents").collect();
    assert_eq!(calls.len(), 3, "two failures and a success");
    assert!(calls.iter().all(|r| r.idempotency_key == calls[0].idempotency_key), "one key throughout");
    assert_eq!(s.fake.intents_created(), 1);

    s.fake.fail_next("/v1/payment_intents", 500, 3);
    let unknown = charge(&mut c, &cus.id, "13.00", "down").await;
    assert_eq!(status(&unknown), pay::PaymentStatus::Processing, "never assumed failed");
    for _ in 0..100 {
        if status(&get(&mut c, &unknown.id).await) == pay::PaymentStatus::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(&get(&mut c, &unknown.id).await), pay::PaymentStatus::Succeeded, "the reconciler settled it");
    assert_eq!(s.fake.intents_created(), 2);
}

on_both!(
    retries_on_sqlite,
    retries_on_postgres,
    retries,
    &[("RECUR_PAYMENT_RECONCILE_AFTER_MS", "1000"), ("RECUR_PAYMENT_RECONCILE_INTERVAL_MS", "200")]
);

/// A PaymentIntent Stripe reports `processing` (a bank debit): the payment
/// stays PROCESSING, and the reconciler asks Stripe about that intent, never
/// sending the charge again, until Stripe has an answer.
async fn processing_intents(s: &Setup) {
    let mut c = s.app.clients("acme");
    let cus = customer(&mut c).await;
    attach(&mut c, &cus.id, "pm_usBankAccount_processing").await;
    let p = charge(&mut c, &cus.id, "30.00", "ach-1").await;
    assert_eq!(status(&p), pay::PaymentStatus::Processing);
    assert!(p.provider_payment_id.starts_with("pi_"), "Stripe's intent is known: {p:?}");
    let looked_up = |fake: &FakeStripe| {
        fake.received()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == format!("/v1/payment_intents/{}", p.provider_payment_id))
            .count()
    };
    for _ in 0..100 {
        if looked_up(&s.fake) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(looked_up(&s.fake) >= 2, "the reconciler asked about the intent");
    assert_eq!(status(&get(&mut c, &p.id).await), pay::PaymentStatus::Processing, "still deciding");
    s.fake.settle_intent(&p.provider_payment_id, "succeeded");
    for _ in 0..100 {
        if status(&get(&mut c, &p.id).await) == pay::PaymentStatus::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(&get(&mut c, &p.id).await), pay::PaymentStatus::Succeeded, "settled from Stripe's answer");
    assert_eq!(s.fake.intents_created(), 1, "never charged again");
    let posts = s.fake.received().into_iter().filter(|r| r.method == "POST" && r.path == "/v1/payment_intents").count();
    assert_eq!(posts, 1, "one POST of the charge");
}

on_both!(
    processing_intents_on_sqlite,
    processing_intents_on_postgres,
    processing_intents,
    &[("RECUR_PAYMENT_RECONCILE_AFTER_MS", "300"), ("RECUR_PAYMENT_RECONCILE_INTERVAL_MS", "100")]
);

/// Stripe charges but answers after the deadline; asked again while still
/// busy it says so (409), and once done it replays its answer.
async fn timeout(s: &Setup) {
    let mut c = s.app.clients("acme");
    let cus = customer(&mut c).await;
    attach(&mut c, &cus.id, "pm_card_visa").await;
    s.fake.delay_next("/v1/payment_intents", Duration::from_secs(3));
    let mut req = tonic::Request::new(charge_req(&cus.id, "30.00", "slow"));
    req.set_timeout(Duration::from_millis(1500));
    let p = c.payments.charge(req).await.expect("answered").into_inner().payment.expect("payment");
    assert_eq!(status(&p), pay::PaymentStatus::Processing);
    let mut settled = p.clone();
    for _ in 0..150 {
        settled = get(&mut c, &p.id).await;
        if status(&settled) != pay::PaymentStatus::Processing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status(&settled), pay::PaymentStatus::Succeeded);
    assert!(settled.attempt_count >= 2);
    assert_eq!(s.fake.intents_created(), 1, "one PaymentIntent, however often it was asked");
    let retry = charge(&mut c, &cus.id, "30.00", "slow").await;
    assert_eq!(retry.id, p.id);
    assert_eq!(s.fake.intents_created(), 1);
}

on_both!(
    timeout_on_sqlite,
    timeout_on_postgres,
    timeout,
    &[("RECUR_PAYMENT_RECONCILE_AFTER_MS", "1000"), ("RECUR_PAYMENT_RECONCILE_INTERVAL_MS", "200")]
);

async fn fifty_identical(s: &Setup) {
    let mut c = s.app.clients("acme");
    let cus = customer(&mut c).await;
    attach(&mut c, &cus.id, "pm_card_visa").await;
    let mut calls = Vec::new();
    for _ in 0..50 {
        let mut client = c.payments.clone();
        let req = charge_req(&cus.id, "99.00", "once");
        calls.push(tokio::spawn(async move { client.charge(req).await }));
    }
    let mut ids = std::collections::HashSet::new();
    for call in calls {
        ids.insert(call.await.expect("task").expect("charge").into_inner().payment.expect("payment").id);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(s.fake.intents_created(), 1, "exactly one provider charge");
    assert_eq!(s.fake.received().iter().filter(|r| r.path == "/v1/payment_intents").count(), 1);
}

on_both!(fifty_identical_on_sqlite, fifty_identical_on_postgres, fifty_identical, &[]);

async fn refunds(s: &Setup) {
    let mut c = s.app.clients("acme");
    let cus = customer(&mut c).await;
    attach(&mut c, &cus.id, "pm_card_visa").await;
    let p = charge(&mut c, &cus.id, "50.00", "to-refund").await;
    let r = c
        .payments
        .refund(pay::RefundRequest {
            payment_id: p.id.clone(),
            amount: usd("20.00"),
            reason: "requested_by_customer".into(),
            ..Default::default()
        })
        .await
        .expect("refund")
        .into_inner();
    assert_eq!(r.refund.map(|r| r.status), Some("succeeded".into()));
    assert_eq!(status(&r.payment.expect("payment")), pay::PaymentStatus::PartiallyRefunded);
    let sent = s.fake.received().into_iter().find(|r| r.path == "/v1/refunds").expect("refund call");
    assert_eq!(field(&sent.form, "amount"), Some("2000"));
    assert_eq!(field(&sent.form, "payment_intent"), Some(p.provider_payment_id.as_str()));
    assert_eq!(field(&sent.form, "reason"), Some("requested_by_customer"));
    let err = c
        .payments
        .refund(pay::RefundRequest { payment_id: p.id.clone(), amount: usd("40.00"), ..Default::default() })
        .await
        .expect_err("more than is left");
    assert_eq!(details(&err).reason, "REFUND_EXCEEDS_CAPTURED");
    assert_eq!(s.fake.refunds_created(), 1, "refused before reaching Stripe");
}

on_both!(refunds_on_sqlite, refunds_on_postgres, refunds, &[]);

async fn webhooks(s: &Setup) {
    let mut c = s.app.clients("acme");
    let cus = customer(&mut c).await;
    attach(&mut c, &cus.id, "pm_card_authenticationRequired").await;
    let waiting = charge(&mut c, &cus.id, "15.00", "needs-3ds").await;
    assert_eq!(status(&waiting), pay::PaymentStatus::RequiresAction);
    let now = chrono::Utc::now().timestamp();
    let deliver = |payload: Vec<u8>, signature: String| pay::HandleProviderWebhookRequest {
        provider: "stripe".into(),
        payload,
        signature,
    };

    // The customer authenticated on Stripe's page; Stripe says so.
    let intent = s.fake.complete_authentication(&waiting.provider_payment_id, true).expect("intent");
    let (body, sig) = FakeStripe::event("payment_intent.succeeded", intent, now);
    let r = c.payments.handle_provider_webhook(deliver(body.clone(), sig.clone())).await.expect("webhook").into_inner();
    assert!(r.handled);
    assert_eq!(r.payment_id, waiting.id);
    assert!(r.provider_event_id.starts_with("evt_"));
    assert_eq!(status(&get(&mut c, &waiting.id).await), pay::PaymentStatus::Succeeded);
    // Delivered again: acknowledged, nothing changes twice.
    let again = c.payments.handle_provider_webhook(deliver(body.clone(), sig)).await.expect("again").into_inner();
    assert_eq!(again.payment_id, waiting.id);
    let events = c
        .payments
        .list_payment_events(pay::ListPaymentEventsRequest { after_sequence: 0, page_size: 50 })
        .await
        .expect("events")
        .into_inner()
        .events;
    let kinds: Vec<&str> = events.iter().filter(|e| e.payment_id == waiting.id).map(|e| e.r#type.as_str()).collect();
    assert_eq!(kinds, ["payment.requires_action", "payment.succeeded"]);

    // Refused: a tampered payload, an old delivery, no signature at all.
    let (body2, sig2) = FakeStripe::event("payment_intent.succeeded", json!({"id": "pi_x"}), now);
    let mut tampered = body2.clone();
    tampered.extend_from_slice(b" ");
    let err = c.payments.handle_provider_webhook(deliver(tampered, sig2.clone())).await.expect_err("tampered");
    assert_eq!((err.code(), details(&err).reason.as_str()), (Code::InvalidArgument, "WEBHOOK_SIGNATURE_INVALID"));
    assert_eq!(details(&err).fields, vec!["signature"]);
    // A signature is hex: digits in it that pass the Luhn check are no card.
    let luhn_hex = format!("t={now},v1=4242424242424242{}", "ab".repeat(24));
    let err = c.payments.handle_provider_webhook(deliver(body2.clone(), luhn_hex)).await.expect_err("forged");
    assert_eq!((err.code(), details(&err).reason.as_str()), (Code::InvalidArgument, "WEBHOOK_SIGNATURE_INVALID"));
    let (old, old_sig) = FakeStripe::event("payment_intent.succeeded", json!({"id": "pi_x"}), now - 301);
    let err = c.payments.handle_provider_webhook(deliver(old, old_sig)).await.expect_err("replayed late");
    assert_eq!(details(&err).reason, "WEBHOOK_TIMESTAMP_OUT_OF_TOLERANCE");
    let err = c.payments.handle_provider_webhook(deliver(body2.clone(), String::new())).await.expect_err("unsigned");
    assert_eq!((err.code(), details(&err).fields), (Code::InvalidArgument, vec!["signature".to_string()]));
    let err = c
        .payments
        .handle_provider_webhook(pay::HandleProviderWebhookRequest {
            provider: "sandbox".into(),
            payload: body2.clone(),
            signature: "t=1,v1=00".into(),
        })
        .await
        .expect_err("the sandbox sends none");
    assert_eq!((err.code(), details(&err).reason.as_str()), (Code::FailedPrecondition, "WEBHOOK_NOT_CONFIGURED"));
    // A tenant without Stripe cannot be sent Stripe events.
    let err = s
        .app
        .clients("globex")
        .payments
        .handle_provider_webhook(deliver(body.clone(), FakeStripe::event("x", json!({}), now).1))
        .await
        .expect_err("no stripe for globex");
    assert_eq!(err.code(), Code::FailedPrecondition);

    // An event Recur does not act on is acknowledged, not handled.
    let (other, other_sig) = FakeStripe::event("customer.updated", json!({"id": cus.provider_customer_id}), now);
    let r = c.payments.handle_provider_webhook(deliver(other, other_sig)).await.expect("other").into_inner();
    assert!(!r.handled);

    // A failed authentication, delivered to the HTTP endpoint Stripe posts to.
    let failing = charge(&mut c, &cus.id, "16.00", "fails-3ds").await;
    let intent = s.fake.complete_authentication(&failing.provider_payment_id, false).expect("intent");
    let (body, sig) = FakeStripe::event("payment_intent.payment_failed", intent, now);
    let http = recur_e2e::http_client();
    let url = format!("{}/hosted/webhooks/stripe/acme", s.app.public_url());
    let resp = http.post(&url).header("stripe-signature", sig).body(body.clone()).send().await.expect("post");
    assert_eq!(resp.status(), 200);
    let failed = get(&mut c, &failing.id).await;
    assert_eq!(status(&failed), pay::PaymentStatus::Failed);
    assert_eq!(failed.decline_code, "payment_intent_authentication_failure");
    let resp = http.post(&url).header("stripe-signature", "t=1,v1=ab").body(body).send().await.expect("post");
    assert_eq!(resp.status(), 400, "a bad signature over HTTP");
}

on_both!(webhooks_on_sqlite, webhooks_on_postgres, webhooks, &[]);
