//! The payment gateway over real gRPC with the sandbox provider, on SQLite
//! and on Postgres: every test card's outcome, idempotent charges (also 50
//! identical ones at once), refunds that never exceed the capture (also 20
//! racing), a provider timeout settled by the reconciler without a second
//! charge, the event outbox in order, the ledger's lists, and bad input.

use std::time::Duration;

use recur_e2e::pay::{charge, charge_req, status, usd};
use recur_e2e::{Clients, TestApp, details, on_both_backends, on_both_backends_with};
use recur_proto::common::v1::Money;
use recur_proto::payment::v1 as pay;
use tonic::Code;

/// A customer with `token` attached (as default); returns (customer, method).
async fn customer_with(c: &mut Clients, token: &str) -> (String, String) {
    let customer = c
        .payments
        .create_customer(pay::CreateCustomerRequest {
            email: "pat@example.com".into(),
            name: "Pat Doe".into(),
            ..Default::default()
        })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer");
    let pm = attach(c, &customer.id, token).await;
    (customer.id, pm)
}

async fn attach(c: &mut Clients, customer: &str, token: &str) -> String {
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
        .id
}

async fn events(c: &mut Clients, after: i64) -> Vec<pay::PaymentEvent> {
    c.payments
        .list_payment_events(pay::ListPaymentEventsRequest { after_sequence: after, page_size: 200 })
        .await
        .expect("events")
        .into_inner()
        .events
}

async fn wait_for_status(c: &mut Clients, id: &str, want: pay::PaymentStatus) -> pay::Payment {
    for _ in 0..150 {
        let p = c
            .payments
            .get_payment(pay::GetPaymentRequest { id: id.into() })
            .await
            .expect("get")
            .into_inner()
            .payment
            .expect("payment");
        if status(&p) == want {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("payment {id} never became {want:?}");
}

async fn test_cards(app: &TestApp) {
    let mut c = app.clients("acme");
    let cases = [
        ("tok_visa", pay::PaymentStatus::Succeeded, ""),
        ("tok_mastercard", pay::PaymentStatus::Succeeded, ""),
        ("tok_amex", pay::PaymentStatus::Succeeded, ""),
        ("tok_decline", pay::PaymentStatus::Failed, "generic_decline"),
        ("tok_insufficient_funds", pay::PaymentStatus::Failed, "insufficient_funds"),
        ("tok_expired_card", pay::PaymentStatus::Failed, "expired_card"),
        ("tok_incorrect_cvc", pay::PaymentStatus::Failed, "incorrect_cvc"),
        ("tok_lost_card", pay::PaymentStatus::Failed, "lost_card"),
        ("tok_stolen_card", pay::PaymentStatus::Failed, "stolen_card"),
        ("tok_processing_error", pay::PaymentStatus::Failed, "processing_error"),
        ("tok_3ds_required", pay::PaymentStatus::RequiresAction, ""),
    ];
    let mut expected_events = Vec::new();
    for (token, want, code) in cases {
        let (customer, pm) = customer_with(&mut c, token).await;
        let p = charge(&mut c, &customer, "19.99", &format!("card-{token}")).await;
        assert_eq!(status(&p), want, "{token}");
        assert_eq!(p.decline_code, code, "{token}");
        assert_eq!(p.payment_method_id, pm);
        assert_eq!(p.provider, "sandbox");
        assert!(p.provider_payment_id.starts_with("pi_"), "{token}: {}", p.provider_payment_id);
        if want == pay::PaymentStatus::Failed {
            assert!(!p.failure_message.is_empty(), "{token} explains itself");
        }
        if want == pay::PaymentStatus::RequiresAction {
            let prefix = format!("{}/hosted/3ds/", app.public_url());
            assert!(p.action_url.starts_with(&prefix), "3-D Secure page: {}", p.action_url);
        } else {
            assert!(p.action_url.is_empty());
        }
        expected_events.push((
            p.id.clone(),
            match want {
                pay::PaymentStatus::Succeeded => "payment.succeeded",
                pay::PaymentStatus::Failed => "payment.failed",
                _ => "payment.requires_action",
            },
        ));
    }
    // The outbox holds one event per change, in the order they happened.
    let listed = events(&mut c, 0).await;
    let got: Vec<(String, &str)> = listed.iter().map(|e| (e.payment_id.clone(), e.r#type.as_str())).collect();
    let want: Vec<(String, &str)> = expected_events.iter().map(|(id, t)| (id.clone(), *t)).collect();
    assert_eq!(got, want);
    for (i, e) in listed.iter().enumerate() {
        assert_eq!(e.sequence, i as i64 + 1, "sequences count up from 1 without gaps");
        assert!(e.id.starts_with("evt_"));
        assert_eq!(e.payment.as_ref().map(|p| p.id.as_str()), Some(e.payment_id.as_str()));
    }
    // Another tenant sees none of it.
    assert!(events(&mut app.clients("globex"), 0).await.is_empty());
}

on_both_backends!(test_cards_on_sqlite, test_cards_on_postgres, test_cards);

async fn idempotent_charges(app: &TestApp) {
    let mut c = app.clients("acme");
    let (customer, _) = customer_with(&mut c, "tok_visa").await;
    let first = charge(&mut c, &customer, "25.00", "order-1").await;
    let again = charge(&mut c, &customer, "25.00", "order-1").await;
    assert_eq!(first, again, "the same key and request: the stored payment");
    assert_eq!(app.count_rows("payment", "sandbox_charges").await, 1, "one provider charge");
    // 25 and 25.00 are the same amount.
    let same = charge(&mut c, &customer, "25", "order-1").await;
    assert_eq!(same.id, first.id);

    let err = c.payments.charge(charge_req(&customer, "26.00", "order-1")).await.expect_err("other amount");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let d = details(&err);
    assert_eq!(d.reason, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(d.fields, vec!["idempotency_key"]);

    // The idempotency-key metadata entry works as well as the field.
    let mut req = tonic::Request::new(charge_req(&customer, "30.00", ""));
    req.metadata_mut().insert("idempotency-key", "order-2".parse().expect("ascii"));
    let by_header = c.payments.charge(req).await.expect("charge").into_inner().payment.expect("payment");
    let mut req = tonic::Request::new(charge_req(&customer, "30.00", ""));
    req.metadata_mut().insert("idempotency-key", "order-2".parse().expect("ascii"));
    let again = c.payments.charge(req).await.expect("charge").into_inner().payment.expect("payment");
    assert_eq!(by_header.id, again.id);

    // Without a key, every call is a new payment.
    let a = charge(&mut c, &customer, "5.00", "").await;
    let b = charge(&mut c, &customer, "5.00", "").await;
    assert_ne!(a.id, b.id);
    assert_eq!(app.count_rows("payment", "sandbox_charges").await, 4);
    // Keys are per tenant: another tenant's "order-1" is its own.
    let mut g = app.clients("globex");
    let (gc, _) = customer_with(&mut g, "tok_visa").await;
    assert_ne!(charge(&mut g, &gc, "25.00", "order-1").await.id, first.id);
}

on_both_backends!(idempotent_charges_on_sqlite, idempotent_charges_on_postgres, idempotent_charges);

/// 50 identical calls at once (the sandbox answers in 300 ms, so they all
/// arrive while the first is at the provider): one payment, one attempt,
/// one provider charge, and every caller gets the same settled answer.
async fn fifty_identical_charges(app: &TestApp) {
    let mut c = app.clients("acme");
    let (customer, _) = customer_with(&mut c, "tok_visa").await;
    let mut calls = Vec::new();
    for _ in 0..50 {
        let mut client = c.payments.clone();
        let req = charge_req(&customer, "42.00", "same-order");
        calls.push(tokio::spawn(async move { client.charge(req).await }));
    }
    let mut ids = std::collections::HashSet::new();
    for call in calls {
        let p = call.await.expect("task").expect("every call succeeds").into_inner().payment.expect("payment");
        assert_eq!(status(&p), pay::PaymentStatus::Succeeded, "each caller sees the outcome");
        ids.insert(p.id);
    }
    assert_eq!(ids.len(), 1, "one payment");
    assert_eq!(app.count_rows("payment", "sandbox_charges").await, 1, "exactly one provider charge");
    assert_eq!(app.count_rows("payment", "payments").await, 1);
    assert_eq!(app.count_rows("payment", "payment_attempts").await, 1, "one provider call");
    assert_eq!(events(&mut c, 0).await.len(), 1, "one payment.succeeded");
}

on_both_backends_with!(
    fifty_identical_charges_on_sqlite,
    fifty_identical_charges_on_postgres,
    fifty_identical_charges,
    &[("RECUR_SANDBOX_LATENCY_MS", "300"), ("RECUR_DB_MAX_CONNECTIONS", "10")]
);

async fn refunds(app: &TestApp) {
    let mut c = app.clients("acme");
    let (customer, _) = customer_with(&mut c, "tok_visa").await;
    let p = charge(&mut c, &customer, "100.00", "to-refund").await;

    let partial = c
        .payments
        .refund(pay::RefundRequest {
            payment_id: p.id.clone(),
            amount: usd("30.00"),
            reason: "requested_by_customer".into(),
            idempotency_key: "refund-1".into(),
        })
        .await
        .expect("refund")
        .into_inner();
    let r = partial.refund.expect("refund");
    assert!(r.id.starts_with("rfnd_"));
    assert_eq!((r.status.as_str(), r.amount.as_ref().map(|m| m.amount.as_str())), ("succeeded", Some("30.00")));
    let after = partial.payment.expect("payment");
    assert_eq!(status(&after), pay::PaymentStatus::PartiallyRefunded);
    assert_eq!(after.amount_refunded.as_ref().map(|m| m.amount.as_str()), Some("30.00"));

    // The same refund again: the stored one, nothing more refunded.
    let again = c
        .payments
        .refund(pay::RefundRequest {
            payment_id: p.id.clone(),
            amount: usd("30.00"),
            reason: "requested_by_customer".into(),
            idempotency_key: "refund-1".into(),
        })
        .await
        .expect("replay")
        .into_inner();
    assert_eq!(again.refund.map(|r| r.id), Some(r.id.clone()));

    let too_much = c
        .payments
        .refund(pay::RefundRequest { payment_id: p.id.clone(), amount: usd("80.00"), ..Default::default() })
        .await
        .expect_err("more than is left");
    assert_eq!(too_much.code(), Code::FailedPrecondition);
    let d = details(&too_much);
    assert_eq!(d.reason, "REFUND_EXCEEDS_CAPTURED");
    assert_eq!(d.fields, vec!["amount"]);
    assert_eq!(d.metadata.get("refundable").map(String::as_str), Some("70.00"));

    let wrong_currency = c
        .payments
        .refund(pay::RefundRequest {
            payment_id: p.id.clone(),
            amount: Some(Money { currency_code: "EUR".into(), amount: "1.00".into() }),
            ..Default::default()
        })
        .await
        .expect_err("EUR on a USD payment");
    assert_eq!(wrong_currency.code(), Code::InvalidArgument);
    assert_eq!(details(&wrong_currency).fields, vec!["amount.currency_code"]);

    // No amount: what is left.
    let rest = c
        .payments
        .refund(pay::RefundRequest { payment_id: p.id.clone(), ..Default::default() })
        .await
        .expect("the rest")
        .into_inner();
    assert_eq!(rest.refund.and_then(|r| r.amount).map(|m| m.amount), Some("70.00".into()));
    let done = rest.payment.expect("payment");
    assert_eq!(status(&done), pay::PaymentStatus::Refunded);
    assert_eq!(done.amount_refunded.map(|m| m.amount), Some("100.00".into()));

    let nothing_left = c
        .payments
        .refund(pay::RefundRequest { payment_id: p.id.clone(), amount: usd("0.01"), ..Default::default() })
        .await
        .expect_err("refunded already");
    assert_eq!(details(&nothing_left).reason, "PAYMENT_NOT_REFUNDABLE");

    let (declined, _) = customer_with(&mut c, "tok_decline").await;
    let failed = charge(&mut c, &declined, "10.00", "declined").await;
    let err = c
        .payments
        .refund(pay::RefundRequest { payment_id: failed.id, ..Default::default() })
        .await
        .expect_err("a failed payment");
    assert_eq!((err.code(), details(&err).reason.as_str()), (Code::FailedPrecondition, "PAYMENT_NOT_REFUNDABLE"));
    let err = c
        .payments
        .refund(pay::RefundRequest { payment_id: "pay_nope".into(), ..Default::default() })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);

    let kinds: Vec<String> =
        events(&mut c, 0).await.into_iter().filter(|e| e.payment_id == p.id).map(|e| e.r#type).collect();
    assert_eq!(kinds, ["payment.succeeded", "payment.refunded", "payment.refunded"]);
    assert_eq!(app.scalar("payment", "SELECT CAST(SUM(refunded_minor) AS BIGINT) FROM sandbox_charges").await, 10_000);
}

on_both_backends!(refunds_on_sqlite, refunds_on_postgres, refunds);

/// Refunds racing for the same payment never add up to more than it.
async fn racing_refunds(app: &TestApp) {
    let mut c = app.clients("acme");
    let (customer, _) = customer_with(&mut c, "tok_visa").await;
    for (amount, each, wins) in [("100.00", "10.00", 10usize), ("100.00", "7.00", 14)] {
        let p = charge(&mut c, &customer, amount, &format!("race-{each}")).await;
        let mut calls = Vec::new();
        for i in 0..20 {
            let mut client = c.payments.clone();
            let req = pay::RefundRequest {
                payment_id: p.id.clone(),
                amount: usd(each),
                idempotency_key: format!("race-{each}-{i}"),
                ..Default::default()
            };
            calls.push(tokio::spawn(async move { client.refund(req).await }));
        }
        let (mut ok, mut refused) = (0, 0);
        for call in calls {
            match call.await.expect("task") {
                Ok(r) => {
                    assert_eq!(r.into_inner().refund.map(|r| r.status), Some("succeeded".into()));
                    ok += 1;
                }
                Err(e) => {
                    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
                    assert!(matches!(
                        details(&e).reason.as_str(),
                        "REFUND_EXCEEDS_CAPTURED" | "PAYMENT_NOT_REFUNDABLE"
                    ));
                    refused += 1;
                }
            }
        }
        assert_eq!((ok, refused), (wins, 20 - wins), "{each} × 20 against {amount}");
        let after = c
            .payments
            .get_payment(pay::GetPaymentRequest { id: p.id.clone() })
            .await
            .expect("get")
            .into_inner()
            .payment
            .expect("payment");
        let refunded: f64 = after.amount_refunded.as_ref().map(|m| m.amount.parse().expect("decimal")).unwrap_or(0.0);
        let each_f: f64 = each.parse().expect("decimal");
        assert!((refunded - each_f * wins as f64).abs() < 1e-9, "refunded {refunded}");
    }
    // The provider's books agree: 100.00 + 98.00 refunded, never more.
    assert_eq!(app.scalar("payment", "SELECT CAST(SUM(refunded_minor) AS BIGINT) FROM sandbox_charges").await, 19_800);
    assert_eq!(app.scalar("payment", "SELECT COUNT(*) FROM refunds WHERE status = 'succeeded'").await, 24);
    assert_eq!(app.count_rows("payment", "refunds").await, 24, "refused refunds leave no row");
}

on_both_backends!(racing_refunds_on_sqlite, racing_refunds_on_postgres, racing_refunds);

/// The provider takes the charge but answers after the deadline: the payment
/// is PROCESSING (never assumed failed), the reconciler learns the outcome
/// by asking again with the same key, and a retry creates no second charge.
async fn timeout_then_reconciled(app: &TestApp) {
    let mut c = app.clients("acme");
    let (customer, _) = customer_with(&mut c, "tok_timeout").await;
    let mut req = tonic::Request::new(charge_req(&customer, "55.00", "slow-order"));
    req.set_timeout(Duration::from_millis(1500));
    let started = std::time::Instant::now();
    let p = c.payments.charge(req).await.expect("an answer, not an error").into_inner().payment.expect("payment");
    assert!(started.elapsed() < Duration::from_millis(1500), "answered within the deadline");
    assert_eq!(status(&p), pay::PaymentStatus::Processing);
    assert_eq!(p.attempt_count, 1);
    assert!(events(&mut c, 0).await.is_empty(), "nothing settled yet");

    let settled = wait_for_status(&mut c, &p.id, pay::PaymentStatus::Succeeded).await;
    assert_eq!(settled.attempt_count, 2, "the reconciler's attempt");
    let retry = charge(&mut c, &customer, "55.00", "slow-order").await;
    assert_eq!((retry.id.as_str(), status(&retry)), (p.id.as_str(), pay::PaymentStatus::Succeeded));
    assert_eq!(app.count_rows("payment", "sandbox_charges").await, 1, "one charge at the provider");
    assert_eq!(app.scalar("payment", "SELECT COUNT(*) FROM payment_attempts WHERE outcome = 'unknown'").await, 1);
    assert_eq!(app.scalar("payment", "SELECT COUNT(*) FROM payment_attempts WHERE outcome = 'succeeded'").await, 1);
    let kinds: Vec<String> = events(&mut c, 0).await.into_iter().map(|e| e.r#type).collect();
    assert_eq!(kinds, ["payment.succeeded"]);
}

on_both_backends_with!(
    timeout_then_reconciled_on_sqlite,
    timeout_then_reconciled_on_postgres,
    timeout_then_reconciled,
    &[("RECUR_PAYMENT_RECONCILE_AFTER_MS", "3000"), ("RECUR_PAYMENT_RECONCILE_INTERVAL_MS", "200")]
);

async fn the_ledger_lists(app: &TestApp) {
    let mut c = app.clients("acme");
    let (alice, _) = customer_with(&mut c, "tok_visa").await;
    let (bob, _) = customer_with(&mut c, "tok_decline").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let mut req = charge_req(&alice, "10.00", &format!("a{i}"));
        req.invoice_id = format!("inv_{i}");
        ids.push(c.payments.charge(req).await.expect("charge").into_inner().payment.expect("payment").id);
    }
    let declined = charge(&mut c, &bob, "10.00", "b0").await;
    let list = |customer: &str, status: pay::PaymentStatus, invoice: &str, token: &str| pay::ListPaymentsRequest {
        page_size: 2,
        page_token: token.into(),
        customer_id: customer.into(),
        invoice_id: invoice.into(),
        status: status as i32,
    };
    let first = c
        .payments
        .list_payments(list(&alice, pay::PaymentStatus::Unspecified, "", ""))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(first.payments.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), ids[..2]);
    assert!(!first.next_page_token.is_empty());
    let second = c
        .payments
        .list_payments(list(&alice, pay::PaymentStatus::Unspecified, "", &first.next_page_token))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(second.payments.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), ids[2..]);
    assert!(second.next_page_token.is_empty());
    let failed =
        c.payments.list_payments(list("", pay::PaymentStatus::Failed, "", "")).await.expect("list").into_inner();
    assert_eq!(failed.payments.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), vec![declined.id]);
    let by_invoice = c
        .payments
        .list_payments(list("", pay::PaymentStatus::Unspecified, "inv_1", ""))
        .await
        .expect("list")
        .into_inner();
    assert_eq!(by_invoice.payments.iter().map(|p| p.id.clone()).collect::<Vec<_>>(), vec![ids[1].clone()]);
    let bad = c
        .payments
        .list_payments(list("", pay::PaymentStatus::Unspecified, "", "garbage"))
        .await
        .expect_err("bad token");
    assert_eq!((bad.code(), details(&bad).fields), (Code::InvalidArgument, vec!["page_token".to_string()]));

    // Events page by sequence.
    let page = c
        .payments
        .list_payment_events(pay::ListPaymentEventsRequest { after_sequence: 0, page_size: 3 })
        .await
        .expect("events")
        .into_inner()
        .events;
    assert_eq!(page.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1, 2, 3]);
    let rest = events(&mut c, 3).await;
    assert_eq!(rest.iter().map(|e| e.sequence).collect::<Vec<_>>(), [4]);
    assert!(events(&mut c, 4).await.is_empty());
    let err = c
        .payments
        .list_payment_events(pay::ListPaymentEventsRequest { after_sequence: -1, page_size: 0 })
        .await
        .expect_err("negative");
    assert_eq!(details(&err).fields, vec!["after_sequence"]);

    // Another tenant's payment does not exist for this one.
    let err = app
        .clients("globex")
        .payments
        .get_payment(pay::GetPaymentRequest { id: ids[0].clone() })
        .await
        .expect_err("foreign");
    assert_eq!(err.code(), Code::NotFound);
}

on_both_backends!(the_ledger_lists_on_sqlite, the_ledger_lists_on_postgres, the_ledger_lists);

async fn bad_charges(app: &TestApp) {
    let mut c = app.clients("acme");
    let (customer, _) = customer_with(&mut c, "tok_visa").await;
    let cases: Vec<(pay::ChargeRequest, Code, Vec<&str>)> = vec![
        (pay::ChargeRequest::default(), Code::InvalidArgument, vec!["customer_id", "amount"]),
        (charge_req(&customer, "0", ""), Code::InvalidArgument, vec!["amount.amount"]),
        (charge_req(&customer, "-5.00", ""), Code::InvalidArgument, vec!["amount.amount"]),
        (charge_req(&customer, "10.001", ""), Code::InvalidArgument, vec!["amount.amount"]),
        (charge_req(&customer, "ten", ""), Code::InvalidArgument, vec!["amount.amount"]),
        (
            pay::ChargeRequest {
                customer_id: customer.clone(),
                amount: Some(Money { currency_code: "XYZ".into(), amount: "1.00".into() }),
                ..Default::default()
            },
            Code::InvalidArgument,
            vec!["amount.currency_code"],
        ),
        (
            pay::ChargeRequest { return_url: "javascript:alert(1)".into(), ..charge_req(&customer, "1.00", "") },
            Code::InvalidArgument,
            vec!["return_url"],
        ),
        (
            pay::ChargeRequest {
                metadata: [("k".repeat(41), "v".to_string())].into(),
                ..charge_req(&customer, "1.00", "")
            },
            Code::InvalidArgument,
            // A key over 40 characters is the map's fault, named by the map.
            vec!["metadata"],
        ),
        (charge_req(&customer, "1.00", &"k".repeat(256)), Code::InvalidArgument, vec!["idempotency_key"]),
        (charge_req("cus_nope", "1.00", ""), Code::InvalidArgument, vec!["customer_id"]),
        (
            pay::ChargeRequest { payment_method_id: "pm_nope".into(), ..charge_req(&customer, "1.00", "") },
            Code::InvalidArgument,
            vec!["payment_method_id"],
        ),
    ];
    for (req, code, fields) in cases {
        let err = c.payments.charge(req.clone()).await.expect_err("refused");
        assert_eq!(err.code(), code, "{req:?}: {err}");
        assert_eq!(details(&err).fields, fields, "{req:?}");
    }
    // A customer without any payment method.
    let bare = c
        .payments
        .create_customer(pay::CreateCustomerRequest { email: "x@example.com".into(), ..Default::default() })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer");
    let err = c.payments.charge(charge_req(&bare.id, "1.00", "")).await.expect_err("no method");
    assert_eq!((err.code(), details(&err).reason.as_str()), (Code::FailedPrecondition, "NO_PAYMENT_METHOD"));
    assert_eq!(app.count_rows("payment", "payments").await, 0, "nothing saved");
    assert_eq!(app.count_rows("payment", "sandbox_charges").await, 0, "nothing charged");

    // An unknown token is the caller's mistake, named.
    let err = c
        .payments
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: customer.clone(),
            payment_token: "tok_unknown".into(),
            ..Default::default()
        })
        .await
        .expect_err("unknown token");
    assert_eq!((err.code(), details(&err).fields), (Code::InvalidArgument, vec!["payment_token".to_string()]));
}

on_both_backends!(bad_charges_on_sqlite, bad_charges_on_postgres, bad_charges);

/// A providers file giving tenant `lowcap` a ceiling of 5,000.00 USD per
/// charge (other tenants keep the default, 999,999.99 USD).
fn lowcap_providers() -> [(&'static str, &'static str); 1] {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let path = PATH.get_or_init(|| {
        let file = std::env::temp_dir().join(format!("recur-ceilings-{}.yaml", std::process::id()));
        std::fs::write(&file, "tenants:\n  lowcap:\n    provider: sandbox\n    max_amounts: {USD: \"5000.00\"}\n")
            .expect("write providers file");
        file.display().to_string()
    });
    [("RECUR_PAYMENT_PROVIDERS", path.as_str())]
}

/// A refusal for an amount above `ceiling`: INVALID_ARGUMENT
/// `AMOUNT_TOO_LARGE` on `amount`, saying the ceiling.
fn assert_too_large(err: &tonic::Status, ceiling: &str) {
    let d = details(err);
    assert_eq!((err.code(), d.reason.as_str()), (Code::InvalidArgument, "AMOUNT_TOO_LARGE"), "{err}");
    assert_eq!(d.fields, vec!["amount"], "{err}");
    assert_eq!(err.message(), format!("amount: at most {ceiling}"));
}

async fn amount_ceilings(app: &TestApp) {
    // The default ceiling: 999,999.99 USD per charge.
    let mut c = app.clients("acme");
    let (customer, _) = customer_with(&mut c, "tok_visa").await;
    for (amount, key) in
        [("92233720368547758.07", "huge"), ("1000000.00", "one-cent-more"), ("92233720368547758.08", "")]
    {
        let err = c.payments.charge(charge_req(&customer, amount, key)).await.expect_err(amount);
        assert_too_large(&err, "999999.99 USD");
    }
    let jpy = pay::ChargeRequest {
        amount: Some(Money { currency_code: "JPY".into(), amount: "100000000".into() }),
        ..charge_req(&customer, "1", "")
    };
    assert_too_large(&c.payments.charge(jpy).await.expect_err("JPY"), "99999999 JPY");
    assert_eq!(app.count_rows("payment", "payments").await, 0, "nothing written");
    assert_eq!(app.count_rows("payment", "payment_attempts").await, 0, "no attempt");
    assert_eq!(app.count_rows("payment", "sandbox_charges").await, 0, "the provider was never called");

    let p = charge(&mut c, &customer, "999999.99", "at-the-ceiling").await;
    assert_eq!(status(&p), pay::PaymentStatus::Succeeded);
    // A refund above the ceiling is refused before anything is reserved
    // (it would also exceed the capture, but the ceiling comes first).
    let err = c
        .payments
        .refund(pay::RefundRequest { payment_id: p.id.clone(), amount: usd("1000000.00"), ..Default::default() })
        .await
        .expect_err("refund above the ceiling");
    assert_too_large(&err, "999999.99 USD");
    assert_eq!(app.count_rows("payment", "refunds").await, 0, "no refund reserved");

    // A tenant configured lower: 5,000.00 USD.
    let mut low = app.clients("lowcap");
    let (customer, _) = customer_with(&mut low, "tok_visa").await;
    let err = low.payments.charge(charge_req(&customer, "5000.01", "over")).await.expect_err("over 5000");
    assert_too_large(&err, "5000.00 USD");
    let p = charge(&mut low, &customer, "5000.00", "at-5000").await;
    assert_eq!(status(&p), pay::PaymentStatus::Succeeded);
    let err = low
        .payments
        .refund(pay::RefundRequest { payment_id: p.id.clone(), amount: usd("5000.01"), ..Default::default() })
        .await
        .expect_err("refund over 5000");
    assert_too_large(&err, "5000.00 USD");
    // Within the ceiling, refunds work as ever.
    low.payments
        .refund(pay::RefundRequest { payment_id: p.id.clone(), amount: usd("5000.00"), ..Default::default() })
        .await
        .expect("refund at the ceiling");
    assert_eq!(app.count_rows("payment", "payments").await, 2, "only the two charges within their ceilings");
}

on_both_backends_with!(amount_ceilings_on_sqlite, amount_ceilings_on_postgres, amount_ceilings, &lowcap_providers());
