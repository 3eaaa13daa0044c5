//! The hosted pages: driven in headless Chromium (adding a card with a
//! sandbox test number, passing and failing 3-D Secure, managing payment
//! methods in the billing portal), and checked over plain HTTP (links that
//! are not valid, escaping, security headers, refusals) on both backends.

use recur_e2e::browser::Browser;
use recur_e2e::pay::get_payment as payment;
use recur_e2e::{Backend, Clients, TestApp, on_both_backends};
use recur_proto::common::v1::Money;
use recur_proto::payment::v1 as pay;

const NAME: &str = r#"Pat <script>alert("x")</script> O'Neil"#;

async fn customer(c: &mut Clients, name: &str) -> pay::Customer {
    c.payments
        .create_customer(pay::CreateCustomerRequest {
            email: "pat@example.com".into(),
            name: name.into(),
            ..Default::default()
        })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer")
}

async fn methods(c: &mut Clients, customer: &str) -> Vec<pay::PaymentMethod> {
    c.payments
        .list_payment_methods(pay::ListPaymentMethodsRequest { customer_id: customer.into() })
        .await
        .expect("methods")
        .into_inner()
        .payment_methods
}

async fn charge_3ds(c: &mut Clients, customer: &str, pm: &str, return_url: &str) -> pay::Payment {
    c.payments
        .charge(pay::ChargeRequest {
            customer_id: customer.into(),
            payment_method_id: pm.into(),
            amount: Some(Money { currency_code: "USD".into(), amount: "19.99".into() }),
            description: "Pro plan <monthly>".into(),
            return_url: return_url.into(),
            ..Default::default()
        })
        .await
        .expect("charge")
        .into_inner()
        .payment
        .expect("payment")
}

async fn fill_card(b: &Browser, number: &str, month: &str, year: &str, cvc: &str) {
    b.type_into("#number", number).await;
    b.type_into("#exp_month", month).await;
    b.type_into("#exp_year", year).await;
    b.type_into("#cvc", cvc).await;
    b.click("#save").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_pages_in_a_browser() {
    let Some(b) = Browser::start().await else { return };
    let app = TestApp::spawn(Backend::SqliteMemory).await.expect("sqlite always works");
    let mut c = app.clients("acme");
    let cus = customer(&mut c, NAME).await;
    let done = format!("{}/hosted/done", app.public_url());

    // 1. Adding a card on the hosted page (the `href` alternative to an
    //    embedded form), then back to the caller's return URL.
    let init = c
        .payments
        .init_payment_method(pay::InitPaymentMethodRequest { customer_id: cus.id.clone(), return_url: done.clone() })
        .await
        .expect("init")
        .into_inner()
        .init
        .expect("init");
    assert!(init.hosted_page_url.starts_with(&format!("{}/hosted/payment-method/", app.public_url())));
    b.goto(&init.hosted_page_url).await;
    assert_eq!(b.title().await, "Add a payment method");
    assert!(b.find_all("script").await.is_empty(), "the customer's name is text, not markup");
    assert!(b.source().await.contains("&lt;script&gt;"), "escaped");

    fill_card(&b, "4111 1111 1111 1111", "12", "2030", "123").await;
    assert!(b.text(".error").await.contains("not a sandbox test card"));
    assert!(!b.source().await.contains("4111"), "the number is never echoed");
    assert!(methods(&mut c, &cus.id).await.is_empty());

    fill_card(&b, "4242 4242 4242 4242", "12", "2030", "123").await;
    let url = b.url().await;
    if !url.starts_with(&done) {
        panic!("still on {url}: {:?}", b.source().await);
    }
    assert!(url.starts_with(&format!("{done}?payment_method_id=pm_")), "{url}");
    assert!(url.ends_with("&status=succeeded"), "{url}");
    let saved = methods(&mut c, &cus.id).await;
    assert_eq!(saved.len(), 1);
    let visa = &saved[0];
    assert_eq!((visa.brand.as_str(), visa.last4.as_str(), visa.exp_month, visa.exp_year), ("visa", "4242", 12, 2030));
    assert!(visa.is_default);
    assert!(url.contains(&visa.id));

    // 2. 3-D Secure, passed: REQUIRES_ACTION → SUCCEEDED, back to the caller.
    let tds = c
        .payments
        .attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: cus.id.clone(),
            payment_token: "tok_3ds_required".into(),
            ..Default::default()
        })
        .await
        .expect("attach")
        .into_inner()
        .payment_method
        .expect("pm");
    let p = charge_3ds(&mut c, &cus.id, &tds.id, &done).await;
    assert_eq!(p.status, pay::PaymentStatus::RequiresAction as i32);
    b.goto(&p.action_url).await;
    assert_eq!(b.title().await, "Confirm this payment");
    assert_eq!(b.text("#amount").await, "19.99 USD");
    assert!(b.source().await.contains("Pro plan &lt;monthly&gt;"));
    b.click("#approve").await;
    assert_eq!(b.url().await, format!("{done}?payment_id={}&status=succeeded", p.id));
    assert_eq!(payment(&mut c, &p.id).await.status, pay::PaymentStatus::Succeeded as i32);

    // 3. 3-D Secure, failed.
    let q = charge_3ds(&mut c, &cus.id, &tds.id, &done).await;
    b.goto(&q.action_url).await;
    b.click("#fail").await;
    assert_eq!(b.url().await, format!("{done}?payment_id={}&status=failed", q.id));
    let failed = payment(&mut c, &q.id).await;
    assert_eq!(failed.status, pay::PaymentStatus::Failed as i32);
    assert_eq!(failed.decline_code, "authentication_failed");
    // The link again: the outcome, no second chance.
    b.goto(&q.action_url).await;
    assert_eq!(b.text("#result").await, "This payment is failed.");

    let events = c
        .payments
        .list_payment_events(pay::ListPaymentEventsRequest { after_sequence: 0, page_size: 50 })
        .await
        .expect("events")
        .into_inner()
        .events;
    let kinds: Vec<(String, String)> = events.into_iter().map(|e| (e.payment_id, e.r#type)).collect();
    assert_eq!(
        kinds,
        vec![
            (p.id.clone(), "payment.requires_action".into()),
            (p.id.clone(), "payment.succeeded".into()),
            (q.id.clone(), "payment.requires_action".into()),
            (q.id.clone(), "payment.failed".into()),
        ]
    );

    // 4. The billing portal (seed 003's "manage billing" link).
    let portal = c
        .payments
        .create_portal_session(pay::CreatePortalSessionRequest {
            customer_id: cus.id.clone(),
            return_url: "https://merchant.example/account".into(),
        })
        .await
        .expect("portal")
        .into_inner();
    b.goto(&portal.url).await;
    assert_eq!(b.title().await, "Billing");
    assert_eq!(b.find_all("tr").await.len(), 2);
    assert!(b.find_all("script").await.is_empty());
    b.click(&format!("#default-{}", tds.id)).await;
    let now = methods(&mut c, &cus.id).await;
    assert!(now.iter().any(|m| m.id == tds.id && m.is_default), "the 3184 card is the default now");
    let paid_before = pay::ChargeRequest {
        customer_id: cus.id.clone(),
        payment_method_id: visa.id.clone(),
        amount: Some(Money { currency_code: "USD".into(), amount: "2.00".into() }),
        idempotency_key: "before-removal".into(),
        ..Default::default()
    };
    let first = c.payments.charge(paid_before.clone()).await.expect("charged").into_inner().payment.expect("p");
    b.click(&format!("#remove-{}", visa.id)).await;
    assert_eq!(b.find_all("tr").await.len(), 1);
    // A retry of what was charged before still answers the stored payment.
    let retried = c.payments.charge(paid_before).await.expect("retry").into_inner().payment.expect("p");
    assert_eq!((retried.id, retried.status), (first.id, pay::PaymentStatus::Succeeded as i32));
    assert_eq!(methods(&mut c, &cus.id).await.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), vec![tds.id.clone()]);
    // A removed card is never charged again.
    let err = c
        .payments
        .charge(pay::ChargeRequest {
            customer_id: cus.id.clone(),
            payment_method_id: visa.id.clone(),
            amount: Some(Money { currency_code: "USD".into(), amount: "1.00".into() }),
            ..Default::default()
        })
        .await
        .expect_err("removed");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(recur_e2e::details(&err).reason, "PAYMENT_METHOD_NOT_FOUND");
    // Adding a card from the portal comes back to the portal.
    b.click("#add").await;
    assert_eq!(b.title().await, "Add a payment method");
    fill_card(&b, "5555 5555 5555 4444", "3", "2031", "321").await;
    assert_eq!(b.title().await, "Billing");
    assert!(b.source().await.contains("mastercard ···· 4444"));
    assert_eq!(methods(&mut c, &cus.id).await.len(), 2);
    assert!(!b.find("#return").await.is_empty(), "a way back to the merchant");

    // 5. A link that was tampered with.
    b.goto(&format!("{}x", portal.url)).await;
    assert_eq!(b.title().await, "This link is not valid");

    b.quit().await;
    app.stop().await;
}

/// The same pages over plain HTTP: status codes, headers, refusals.
async fn hosted_pages_over_http(app: &TestApp) {
    let http = recur_e2e::http_client();
    let mut c = app.clients("acme");
    let cus = customer(&mut c, NAME).await;
    let init = c
        .payments
        .init_payment_method(pay::InitPaymentMethodRequest { customer_id: cus.id.clone(), ..Default::default() })
        .await
        .expect("init")
        .into_inner()
        .init
        .expect("init");
    let page = http.get(&init.hosted_page_url).send().await.expect("get");
    assert_eq!(page.status(), 200);
    let h = page.headers();
    assert_eq!(h.get("content-type").and_then(|v| v.to_str().ok()), Some("text/html; charset=utf-8"));
    assert_eq!(h.get("cache-control").and_then(|v| v.to_str().ok()), Some("no-store"));
    assert_eq!(h.get("x-frame-options").and_then(|v| v.to_str().ok()), Some("DENY"));
    assert!(
        h.get("content-security-policy").is_some_and(|v| v.to_str().unwrap_or_default().contains("default-src 'none'"))
    );
    let body = page.text().await.expect("body");
    assert!(
        !body.contains("<script>") && body.contains("Pat &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; O&#39;Neil")
    );

    // A card number typed into the name field is refused, not saved.
    let resp = http
        .post(&init.hosted_page_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=4242424242424242&number=4242424242424242&exp_month=12&exp_year=2030&cvc=123")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 422);
    assert!(!resp.text().await.expect("body").contains("4242424242424242"));
    assert!(methods(&mut c, &cus.id).await.is_empty());
    // So is a name with a NUL character in it (Postgres cannot store one).
    let resp = http
        .post(&init.hosted_page_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Pat%00&number=4242424242424242&exp_month=12&exp_year=2030&cvc=123")
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), 422);
    assert!(resp.text().await.expect("body").contains("cannot be saved"));
    assert!(methods(&mut c, &cus.id).await.is_empty());

    // Links of one kind do not open pages of another, and forged ones fail.
    let kind_swap = init.hosted_page_url.replace("/hosted/payment-method/", "/hosted/portal/");
    assert_eq!(http.get(&kind_swap).send().await.expect("get").status(), 404);
    let forged = format!("{}A", init.hosted_page_url);
    assert_eq!(http.get(&forged).send().await.expect("get").status(), 404);
    assert_eq!(
        http.get(format!("{}/hosted/portal/nonsense", app.public_url())).send().await.expect("get").status(),
        404
    );
    assert_eq!(http.get(format!("{}/hosted/done", app.public_url())).send().await.expect("get").status(), 200);

    // The portal for an empty customer says so; a bad return URL is refused.
    let portal = c
        .payments
        .create_portal_session(pay::CreatePortalSessionRequest {
            customer_id: cus.id.clone(),
            return_url: String::new(),
        })
        .await
        .expect("portal")
        .into_inner();
    let body = http.get(&portal.url).send().await.expect("get").text().await.expect("body");
    assert!(body.contains("No payment methods yet."));
    let err = c
        .payments
        .create_portal_session(pay::CreatePortalSessionRequest {
            customer_id: cus.id.clone(),
            return_url: "javascript:alert(1)".into(),
        })
        .await
        .expect_err("bad return url");
    assert_eq!(recur_e2e::details(&err).fields, vec!["return_url"]);
    let err = c
        .payments
        .create_portal_session(pay::CreatePortalSessionRequest { customer_id: "cus_nope".into(), ..Default::default() })
        .await
        .expect_err("unknown customer");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(recur_e2e::details(&err).reason, "CUSTOMER_NOT_FOUND");
    // A page link works without a bearer token; the gRPC API never does.
    let err = app
        .clients_with(None)
        .payments
        .get_customer(pay::GetCustomerRequest { id: cus.id.clone() })
        .await
        .expect_err("no token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
}

on_both_backends!(hosted_pages_over_http_on_sqlite, hosted_pages_over_http_on_postgres, hosted_pages_over_http);
