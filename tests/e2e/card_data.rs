//! Card numbers never reach Recur's logs or tables. Every kind of field of
//! every payment-gateway and sign-up RPC is sent a card number (plain, with
//! spaces, with dashes, in map keys and values, in the
//! idempotency-key header) and refused with INVALID_ARGUMENT naming it; a
//! real test number typed on the hosted card page is tokenized and dropped;
//! then this app's database rows and this test binary's logs (debug level)
//! are scanned and hold none. On SQLite and on Postgres.
//!
//! (`recur-card-scan` does the same over every test's logs and databases
//! after a whole `.ci/run`.)

use recur_e2e::pay::usd;
use recur_e2e::{TestApp, details, on_both_backends, scan};
use recur_proto::common::v1::Address;
use recur_proto::payment::v1 as pay;
use recur_proto::signup::v1 as su;
use tonic::Code;

const VISA: &str = "4242424242424242";
const MASTERCARD_SPACED: &str = "5555 5555 5555 4444";
const AMEX: &str = "378282246310005";
const DISCOVER_DASHED: &str = "6011-1111-1111-1117";

fn refused(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let err = result.expect_err(field);
    assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err}");
    let d = details(&err);
    assert!(d.fields.iter().any(|f| f == field), "{field}: refused for {:?} ({})", d.fields, err.message());
    assert!(!err.message().contains("4242") && !err.message().contains("5555"), "the error never repeats the number");
}

async fn never_stored(app: &TestApp) {
    let log = scan::log_file();
    let mut c = app.clients("acme");
    let p = &mut c.payments;

    // A customer, a card and a payment to aim the requests at.
    let cus = p
        .create_customer(pay::CreateCustomerRequest { email: "a@example.com".into(), ..Default::default() })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer");
    p.attach_payment_method(pay::AttachPaymentMethodRequest {
        customer_id: cus.id.clone(),
        payment_token: "tok_visa".into(),
        ..Default::default()
    })
    .await
    .expect("attach");
    let paid = p
        .charge(pay::ChargeRequest { customer_id: cus.id.clone(), amount: usd("10.00"), ..Default::default() })
        .await
        .expect("charge")
        .into_inner()
        .payment
        .expect("payment");

    // CreateCustomer, GetCustomer
    for (req, field) in [
        (pay::CreateCustomerRequest { name: VISA.into(), ..Default::default() }, "name"),
        (pay::CreateCustomerRequest { email: format!("{VISA}@example.com"), ..Default::default() }, "email"),
        (pay::CreateCustomerRequest { reference: MASTERCARD_SPACED.into(), ..Default::default() }, "reference"),
        (pay::CreateCustomerRequest { account_id: AMEX.into(), ..Default::default() }, "account_id"),
    ] {
        refused(p.create_customer(req).await, field);
    }
    let mut keyed = tonic::Request::new(pay::CreateCustomerRequest::default());
    keyed.metadata_mut().insert("idempotency-key", VISA.parse().expect("ascii"));
    refused(p.create_customer(keyed).await, "idempotency_key");
    refused(p.get_customer(pay::GetCustomerRequest { id: DISCOVER_DASHED.into() }).await, "id");

    // Payment methods
    refused(
        p.init_payment_method(pay::InitPaymentMethodRequest {
            customer_id: cus.id.clone(),
            return_url: format!("https://shop.example/back?card={VISA}"),
        })
        .await,
        "return_url",
    );
    for (req, field) in [
        (
            pay::AttachPaymentMethodRequest {
                customer_id: cus.id.clone(),
                payment_token: VISA.into(),
                ..Default::default()
            },
            "payment_token",
        ),
        (
            pay::AttachPaymentMethodRequest {
                customer_id: cus.id.clone(),
                payment_token: MASTERCARD_SPACED.into(),
                ..Default::default()
            },
            "payment_token",
        ),
        (
            pay::AttachPaymentMethodRequest {
                customer_id: cus.id.clone(),
                payment_token: "tok_visa".into(),
                name: format!("my card {DISCOVER_DASHED}"),
                ..Default::default()
            },
            "name",
        ),
    ] {
        refused(p.attach_payment_method(req).await, field);
    }
    refused(p.list_payment_methods(pay::ListPaymentMethodsRequest { customer_id: AMEX.into() }).await, "customer_id");

    // Charge: every kind of field, and the idempotency-key header.
    let base = pay::ChargeRequest { customer_id: cus.id.clone(), amount: usd("1.00"), ..Default::default() };
    for (req, field) in [
        (pay::ChargeRequest { description: format!("card {VISA}"), ..base.clone() }, "description"),
        (pay::ChargeRequest { invoice_id: AMEX.into(), ..base.clone() }, "invoice_id"),
        (pay::ChargeRequest { idempotency_key: MASTERCARD_SPACED.into(), ..base.clone() }, "idempotency_key"),
        (pay::ChargeRequest { payment_method_id: DISCOVER_DASHED.into(), ..base.clone() }, "payment_method_id"),
        (pay::ChargeRequest { return_url: format!("https://x.example/{VISA}"), ..base.clone() }, "return_url"),
        // An amount is no card number, but a card number as an amount is
        // above any charge's ceiling.
        (pay::ChargeRequest { amount: usd(VISA), ..base.clone() }, "amount"),
        (
            pay::ChargeRequest { metadata: [("note".to_string(), VISA.to_string())].into(), ..base.clone() },
            "metadata[note]",
        ),
        (
            pay::ChargeRequest { metadata: [(AMEX.to_string(), "x".to_string())].into(), ..base.clone() },
            "metadata (a key)",
        ),
    ] {
        refused(p.charge(req).await, field);
    }
    let mut keyed = tonic::Request::new(base.clone());
    keyed.metadata_mut().insert("idempotency-key", VISA.parse().expect("ascii"));
    refused(p.charge(keyed).await, "idempotency_key");

    // Refund, reads, lists, portal, webhooks, events.
    refused(
        p.refund(pay::RefundRequest { payment_id: paid.id.clone(), reason: VISA.into(), ..Default::default() }).await,
        "reason",
    );
    refused(
        p.refund(pay::RefundRequest {
            payment_id: paid.id.clone(),
            idempotency_key: AMEX.into(),
            ..Default::default()
        })
        .await,
        "idempotency_key",
    );
    refused(p.get_payment(pay::GetPaymentRequest { id: VISA.into() }).await, "id");
    refused(
        p.list_payments(pay::ListPaymentsRequest { invoice_id: MASTERCARD_SPACED.into(), ..Default::default() }).await,
        "invoice_id",
    );
    refused(
        p.create_portal_session(pay::CreatePortalSessionRequest {
            customer_id: cus.id.clone(),
            return_url: format!("https://x.example/?n={AMEX}"),
        })
        .await,
        "return_url",
    );
    refused(
        p.handle_provider_webhook(pay::HandleProviderWebhookRequest {
            provider: "stripe".into(),
            payload: format!(r#"{{"id":"evt_1","card":"{VISA}"}}"#).into_bytes(),
            signature: "t=1,v1=00".into(),
        })
        .await,
        "payload",
    );
    // Numbers are not text a card is typed into: a sequence that happens
    // to pass the Luhn check is a sequence (and is neither logged nor kept).
    p.list_payment_events(pay::ListPaymentEventsRequest { after_sequence: 4_242_424_242_424_242, page_size: 1 })
        .await
        .expect("a number is no card number");

    // Sign-up sessions: the customer, the payment method, the session id.
    let customer = su::CustomerInput {
        account_name: "Acme".into(),
        name: "Pat".into(),
        email: "pat@acme.example".into(),
        billing_address: Some(Address { country: "US".into(), ..Default::default() }),
        ..Default::default()
    };
    for (req, field) in [
        (
            su::CreateSignupRequest {
                action: su::SignupAction::Estimate as i32,
                customer: Some(su::CustomerInput { name: VISA.into(), ..customer.clone() }),
                ..Default::default()
            },
            "customer.name",
        ),
        (
            su::CreateSignupRequest {
                action: su::SignupAction::CreateWithPaymentMethod as i32,
                customer: Some(customer.clone()),
                payment_method: Some(su::PaymentMethodInput {
                    payment_method_name: "visa".into(),
                    payment_token: MASTERCARD_SPACED.into(),
                }),
                ..Default::default()
            },
            "payment_method.payment_token",
        ),
        (
            su::CreateSignupRequest {
                action: su::SignupAction::Estimate as i32,
                customer: Some(su::CustomerInput {
                    billing_address: Some(Address {
                        line1: format!("{DISCOVER_DASHED} Main St"),
                        country: "US".into(),
                        ..Default::default()
                    }),
                    ..customer.clone()
                }),
                ..Default::default()
            },
            "customer.billing_address.line1",
        ),
    ] {
        refused(c.signup.create_signup(req).await, field);
    }
    refused(
        c.signup
            .update_signup(su::UpdateSignupRequest {
                session_id: "cart_x".into(),
                action: su::SignupAction::Update as i32,
                payment_method: Some(su::PaymentMethodInput {
                    payment_method_name: AMEX.into(),
                    payment_token: "tok_visa".into(),
                }),
                ..Default::default()
            })
            .await,
        "payment_method.payment_method_name",
    );

    // The hosted card page takes a real test number, tokenizes it, drops it.
    let init = c
        .payments
        .init_payment_method(pay::InitPaymentMethodRequest { customer_id: cus.id.clone(), ..Default::default() })
        .await
        .expect("init")
        .into_inner()
        .init
        .expect("init");
    let form = format!("name=Pat&number={VISA}&exp_month=12&exp_year=2030&cvc=123");
    let resp = recur_e2e::http_client()
        .post(&init.hosted_page_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("post the card form");
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.expect("body").contains("ending in 4242"));
    // A refund too, so every ledger table has rows to scan.
    c.payments.refund(pay::RefundRequest { payment_id: paid.id.clone(), ..Default::default() }).await.expect("refund");
    c.payments
        .list_payment_events(pay::ListPaymentEventsRequest { after_sequence: 0, page_size: 10 })
        .await
        .expect("events");

    // Nothing saved anywhere holds a card number...
    let db = app.scan_database().await;
    assert!(db.rows >= 10 && db.tables >= 10, "the scan saw the data: {db:?}");
    assert_eq!(db.findings, vec![], "card numbers in the database");
    assert_eq!(app.scalar("payment", "SELECT COUNT(*) FROM payment_methods").await, 1, "tok_visa, once");
    // ... and nothing logged does either, though the refusals were logged.
    let logs = scan::scan_logs(log.parent().expect("dir"));
    let text = std::fs::read_to_string(log).expect("log file");
    assert!(text.lines().filter(|l| l.contains("\"code\":3")).count() >= 20, "refused calls are in the log");
    assert_eq!(logs.findings, vec![], "card numbers in the logs");
}

on_both_backends!(never_stored_on_sqlite, never_stored_on_postgres, never_stored);
