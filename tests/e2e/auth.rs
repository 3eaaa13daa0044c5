//! Every RPC needs a valid bearer token, and no tenant can see another's data.

use recur_e2e::{Backend, TestApp, create_monthly_plan, details};
use recur_proto::catalog::v1 as cat;
use recur_proto::pricing::v1 as pricing;
use recur_proto::signup::v1 as su;
use recur_proto::subscription::v1 as sub;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_tenants() {
    let app = TestApp::spawn(Backend::SqliteMemory).await.expect("app");

    // No token, a malformed one, one signed with another key, an expired one.
    let other_key = recur_auth::TokenKey::generate();
    let expired = app.key.mint("acme", chrono::Utc::now() - chrono::Duration::hours(2), chrono::Duration::hours(1));
    for (name, token) in [
        ("no token", None),
        ("garbage", Some("not-a-jwt".to_string())),
        ("wrong key", Some(other_key.mint("acme", chrono::Utc::now(), chrono::Duration::hours(1)))),
        ("expired", Some(expired)),
    ] {
        let mut c = app.clients_with(token);
        let err = c.catalog.get_tenant_settings(cat::GetTenantSettingsRequest {}).await.expect_err(name);
        assert_eq!(err.code(), Code::Unauthenticated, "{name}: {err:?}");
        let err = c.signup.get_signup(su::GetSignupRequest { session_id: "cart_x".into() }).await.expect_err(name);
        assert_eq!(err.code(), Code::Unauthenticated, "{name}");
    }

    // Health needs no token (probes and load tools use it).
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.channel());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest { service: "recur.signup.v1.SignupService".into() })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(status.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // Tenant A signs a customer up.
    let mut a = app.clients("tenant-a");
    let plan = create_monthly_plan(&mut a, "20", None).await;
    let done = a
        .signup
        .create_signup(su::CreateSignupRequest {
            action: su::SignupAction::CreateAndFinalize as i32,
            customer: Some(su::CustomerInput {
                name: "Ann".into(),
                email: "ann@a.example".into(),
                ..Default::default()
            }),
            quote: Some(su::QuoteInput {
                offerings: vec![pricing::CartOffering {
                    offering_id: plan.offering_id.clone(),
                    rate_id: plan.rate_id.clone(),
                    items: vec![],
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("tenant A signs up")
        .into_inner()
        .signup
        .expect("signup");
    assert!(done.contract_id.starts_with("sub_"));
    let invoice_id = done.invoice.clone().expect("invoice").id;
    let account_id = done.customer.clone().expect("customer").account_id;

    // Tenant B sees none of it: NOT_FOUND, exactly as for an id that never existed.
    let mut b = app.clients("tenant-b");
    let err = b
        .subscriptions
        .get_subscription(sub::GetSubscriptionRequest { id: done.contract_id.clone() })
        .await
        .expect_err("B reads A");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(details(&err).reason, "SUBSCRIPTION_NOT_FOUND");
    let missing = b
        .subscriptions
        .get_subscription(sub::GetSubscriptionRequest { id: "sub_neverexisted000".into() })
        .await
        .expect_err("missing");
    assert_eq!(missing.code(), err.code());
    assert_eq!(details(&missing).reason, details(&err).reason);
    for err in [
        b.invoices.get_invoice(sub::GetInvoiceRequest { id: invoice_id.clone() }).await.expect_err("invoice"),
        b.accounts.get_account(sub::GetAccountRequest { id: account_id.clone() }).await.expect_err("account"),
        b.signup.get_signup(su::GetSignupRequest { session_id: done.session_id.clone() }).await.expect_err("session"),
        b.catalog
            .get_rate(cat::GetRateRequest { lookup: Some(cat::get_rate_request::Lookup::Id(plan.rate_id.clone())) })
            .await
            .expect_err("rate"),
    ] {
        assert_eq!(err.code(), Code::NotFound, "{err:?}");
    }
    // And B cannot sign up to A's plan.
    let err = b
        .pricing
        .quote(pricing::QuoteRequest {
            offerings: vec![pricing::CartOffering {
                offering_id: plan.offering_id.clone(),
                rate_id: plan.rate_id.clone(),
                items: vec![],
            }],
            ..Default::default()
        })
        .await
        .expect_err("B quotes A's plan");
    // A plan named in the body: INVALID_ARGUMENT on the field, as for one that never existed.
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(details(&err).reason, "OFFERING_NOT_FOUND");
    assert_eq!(details(&err).fields, vec!["offerings[0].offering_id"]);

    // A still sees its own.
    a.subscriptions
        .get_subscription(sub::GetSubscriptionRequest { id: done.contract_id.clone() })
        .await
        .expect("A reads A");
    app.stop().await;
}
