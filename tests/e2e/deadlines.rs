//! A caller's deadline is honoured: when the payment provider hangs, the
//! gateway answers before the caller gives up, with the payment PROCESSING
//! (its outcome unknown, never assumed), instead of leaving the caller to
//! time out.

use std::time::{Duration, Instant};

use recur_e2e::{Backend, TestApp};
use recur_proto::payment::v1 as pay;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_provider_answers_processing_within_the_deadline() {
    let app = TestApp::spawn(Backend::SqliteMemory).await.expect("app");
    let mut c = app.clients("acme");
    let customer = c
        .payments
        .create_customer(pay::CreateCustomerRequest { email: "slow@s.example".into(), ..Default::default() })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer");
    c.payments
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: customer.id.clone(),
            payment_token: "tok_timeout".into(),
            ..Default::default()
        })
        .await
        .expect("attach");

    let mut req = tonic::Request::new(pay::ChargeRequest {
        customer_id: customer.id.clone(),
        amount: Some(recur_proto::common::v1::Money { currency_code: "USD".into(), amount: "5.00".into() }),
        idempotency_key: "slow-1".into(),
        ..Default::default()
    });
    req.set_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let payment =
        c.payments.charge(req).await.expect("answered before the deadline").into_inner().payment.expect("payment");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(payment.status, pay::PaymentStatus::Processing as i32);

    let stored = c
        .payments
        .get_payment(pay::GetPaymentRequest { id: payment.id.clone() })
        .await
        .expect("get")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(stored.status, pay::PaymentStatus::Processing as i32, "the unknown outcome is recorded as such");
    app.stop().await;
}
