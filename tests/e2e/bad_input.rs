//! Bad sign-up requests answer INVALID_ARGUMENT naming the offending field,
//! and leave nothing behind: no session, no gateway customer, no account.
//! A NUL character in any text field of any service is refused alike on
//! both backends (Postgres cannot store one; SQLite could).

use recur_e2e::{TestApp, create_monthly_plan, details, on_both_backends};
use recur_proto::pricing::v1 as pricing;
use recur_proto::signup::v1 as su;
use tonic::Code;

fn request(plan: &recur_e2e::Plan, email: &str, offering_id: &str, quantity: &str) -> su::CreateSignupRequest {
    su::CreateSignupRequest {
        action: su::SignupAction::CreateWithPaymentMethod as i32,
        customer: Some(su::CustomerInput {
            account_name: "Acme Inc".into(),
            name: "John Doe".into(),
            email: email.into(),
            ..Default::default()
        }),
        quote: Some(su::QuoteInput {
            offerings: vec![pricing::CartOffering {
                offering_id: offering_id.into(),
                rate_id: plan.rate_id.clone(),
                items: vec![pricing::CartItem {
                    product_id: plan.product_id.clone(),
                    quantity: quantity.into(),
                    custom_price: None,
                }],
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn nothing_saved(app: &TestApp) {
    assert_eq!(app.count_rows("signup", "signup_sessions").await, 0, "a session was saved");
    assert_eq!(app.count_rows("payment", "gateway_customers").await, 0, "a gateway customer was made");
    assert_eq!(app.count_rows("subscription", "accounts").await, 0, "an account was made");
}

async fn bad_signups(app: &TestApp) {
    let mut c = app.clients("acme");
    let plan = create_monthly_plan(&mut c, "100", None).await;
    let cases: [(&str, su::CreateSignupRequest, &str); 5] = [
        ("missing email", request(&plan, "", &plan.offering_id, "1"), "customer.email"),
        ("malformed email", request(&plan, "not-an-email", &plan.offering_id, "1"), "customer.email"),
        (
            "unknown offering",
            request(&plan, "jo@acme.example", "offr_doesnotexist123", "1"),
            "quote.offerings[0].offering_id",
        ),
        (
            "negative quantity",
            request(&plan, "jo@acme.example", &plan.offering_id, "-1"),
            "quote.offerings[0].items[0].quantity",
        ),
        (
            "non-numeric quantity",
            request(&plan, "jo@acme.example", &plan.offering_id, "lots"),
            "quote.offerings[0].items[0].quantity",
        ),
    ];
    for (name, req, field) in cases {
        let err = c.signup.create_signup(req).await.expect_err(name);
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
        let d = details(&err);
        assert!(d.fields.iter().any(|f| f == field), "{name}: expected a violation on {field}, got {:?}", d.fields);
        assert!(!d.reason.is_empty(), "{name}: no ErrorInfo reason");
        nothing_saved(app).await;
    }

    // A request missing its customer and quote names both.
    let err = c
        .signup
        .create_signup(su::CreateSignupRequest {
            action: su::SignupAction::CreateInPending as i32,
            ..Default::default()
        })
        .await
        .expect_err("empty request");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(details(&err).fields, vec!["customer", "quote"]);

    // An action CreateSignup does not take.
    let mut req = request(&plan, "jo@acme.example", &plan.offering_id, "1");
    req.action = su::SignupAction::Finalize as i32;
    let err = c.signup.create_signup(req).await.expect_err("FINALIZE on create");
    assert_eq!(details(&err).fields, vec!["action"]);

    // A raw card number instead of a token is refused, and not kept.
    let created = c
        .signup
        .create_signup(request(&plan, "jo@acme.example", &plan.offering_id, "1"))
        .await
        .expect("a good request")
        .into_inner()
        .signup
        .expect("signup");
    let err = c
        .signup
        .update_signup(su::UpdateSignupRequest {
            session_id: created.session_id.clone(),
            action: su::SignupAction::Update as i32,
            payment_method: Some(su::PaymentMethodInput {
                payment_method_name: "visa".into(),
                payment_token: "4242 4242 4242 4242".into(),
            }),
            ..Default::default()
        })
        .await
        .expect_err("card number");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(details(&err).fields, vec!["payment_method.payment_token"]);
    assert_eq!(app.count_rows("payment", "payment_methods").await, 0);

    // An unknown session is NOT_FOUND.
    let err = c
        .signup
        .get_signup(su::GetSignupRequest { session_id: "cart_nosuchsession00".into() })
        .await
        .expect_err("unknown session");
    assert_eq!(err.code(), Code::NotFound);
}

on_both_backends!(bad_signups_sqlite_memory, bad_signups_postgres_redis, bad_signups);

fn refused_for_nul<T: std::fmt::Debug>(what: &str, result: Result<T, tonic::Status>, field: &str) {
    let err = result.expect_err(what);
    assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
    let d = details(&err);
    assert_eq!((d.reason.as_str(), d.fields), ("NUL_CHARACTER", vec![field.to_string()]), "{what}");
}

async fn nul_characters(app: &TestApp) {
    use recur_proto::catalog::v1 as cat;
    use recur_proto::payment::v1 as pay;
    use recur_proto::subscription::v1 as sub;
    let mut c = app.clients("acme");
    let product = |name: &str| cat::CreateProductRequest {
        product: Some(cat::Product {
            handle: "gold".into(),
            name: name.into(),
            kind: cat::ProductKind::Recurring as i32,
            ..Default::default()
        }),
    };
    refused_for_nul("catalog", c.catalog.create_product(product("Gold\0")).await, "product.name");
    assert_eq!(app.count_rows("catalog", "products").await, 0);
    c.catalog.create_product(product("Gold")).await.expect("the same product without the NUL");

    let customer =
        pay::CreateCustomerRequest { name: "Jo".into(), email: "jo@\0acme.example".into(), ..Default::default() };
    refused_for_nul("payment", c.payments.create_customer(customer).await, "email");
    assert_eq!(app.count_rows("payment", "gateway_customers").await, 0);

    let mut charge = pay::ChargeRequest { customer_id: "cus_x".into(), ..Default::default() };
    charge.metadata.insert("note".into(), "a\0b".into());
    refused_for_nul("metadata", c.payments.charge(charge).await, "metadata[note]");

    let account = sub::CreateAccountRequest {
        account: Some(sub::Account {
            account_name: "Acme\0".into(),
            currency_code: "USD".into(),
            ..Default::default()
        }),
    };
    refused_for_nul("subscription", c.accounts.create_account(account).await, "account.account_name");
    assert_eq!(app.count_rows("subscription", "accounts").await, 0);

    let plan = create_monthly_plan(&mut c, "100", None).await;
    let mut signup = request(&plan, "jo@acme.example", &plan.offering_id, "1");
    if let Some(customer) = signup.customer.as_mut() {
        customer.name = "John\0Doe".into();
    }
    refused_for_nul("signup", c.signup.create_signup(signup).await, "customer.name");
    nothing_saved(app).await;

    // Bytes may hold anything: a webhook's payload is not text.
    let webhook = pay::HandleProviderWebhookRequest {
        provider: "stripe".into(),
        payload: vec![0, 1, 2],
        signature: "t=1,v1=00".into(),
    };
    let err = c.payments.handle_provider_webhook(webhook).await.expect_err("not a Stripe tenant");
    assert_ne!(details(&err).reason, "NUL_CHARACTER", "{err:?}");
}

on_both_backends!(nul_characters_sqlite_memory, nul_characters_postgres_redis, nul_characters);

/// Idempotency keys sent as metadata are stored, so they are checked like
/// fields: no card numbers, at most 255 characters.
async fn idempotency_keys_are_checked(app: &TestApp) {
    use recur_proto::subscription::v1 as sub;
    let mut c = app.clients("acme");
    let with_key = |key: &str| {
        let mut r = tonic::Request::new(sub::CreateAccountRequest {
            account: Some(sub::Account {
                account_name: "Acme".into(),
                currency_code: "USD".into(),
                ..Default::default()
            }),
        });
        r.metadata_mut().insert("idempotency-key", key.parse().expect("ascii"));
        r
    };
    for key in ["4242 4242 4242 4242".to_string(), "k".repeat(256)] {
        let err = c.accounts.create_account(with_key(&key)).await.expect_err("refused key");
        assert_eq!((err.code(), details(&err).fields), (Code::InvalidArgument, vec!["idempotency_key".to_string()]));
    }
    assert_eq!(app.count_rows("subscription", "accounts").await, 0);
    let first = c.accounts.create_account(with_key("order-7")).await.expect("a good key").into_inner().account;
    let again = c.accounts.create_account(with_key("order-7")).await.expect("the same key").into_inner().account;
    assert_eq!(first.map(|a| a.id), again.map(|a| a.id), "the key's account, once");
    assert_eq!(app.count_rows("subscription", "accounts").await, 1);
}

on_both_backends!(idempotency_keys_sqlite_memory, idempotency_keys_postgres_redis, idempotency_keys_are_checked);
