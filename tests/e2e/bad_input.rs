//! Bad sign-up requests answer INVALID_ARGUMENT naming the offending field,
//! and leave nothing behind: no session, no gateway customer, no account.

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
                items: vec![pricing::CartItem { product_id: plan.product_id.clone(), quantity: quantity.into() }],
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
