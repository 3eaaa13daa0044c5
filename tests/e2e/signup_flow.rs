//! Seed 000's quick start over real gRPC: a plan in the catalog, a sign-up
//! session created with payment-method collection, a sandbox token attached,
//! and finalization into an account, contact, bill group, active contract,
//! paid invoice and succeeded payment — each read back from the service that
//! owns it. Runs on SQLite + in-memory cache and on Postgres + Redis.

use recur_e2e::{TestApp, create_monthly_plan, details, on_both_backends};
use recur_proto::common::v1::Address;
use recur_proto::payment::v1 as pay;
use recur_proto::pricing::v1 as pricing;
use recur_proto::signup::v1 as su;
use recur_proto::subscription::v1 as sub;
use tonic::Code;

fn customer() -> su::CustomerInput {
    su::CustomerInput {
        account_name: "Acme Inc".into(),
        name: "John Doe".into(),
        email: "john@acme.example".into(),
        billing_address: Some(Address {
            line1: "123 Main St".into(),
            city: "San Francisco".into(),
            state: "CA".into(),
            postal_code: "94107".into(),
            country: "US".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn quote(plan: &recur_e2e::Plan) -> su::QuoteInput {
    su::QuoteInput {
        offerings: vec![pricing::CartOffering {
            offering_id: plan.offering_id.clone(),
            rate_id: plan.rate_id.clone(),
            items: vec![pricing::CartItem {
                product_id: plan.product_id.clone(),
                quantity: "1".into(),
                custom_price: None,
            }],
        }],
        ..Default::default()
    }
}

fn amount(m: &Option<recur_proto::common::v1::Money>) -> (String, String) {
    let m = m.clone().expect("money present");
    (m.amount, m.currency_code)
}

async fn quick_start(app: &TestApp) {
    let mut c = app.clients("acme");
    let plan = create_monthly_plan(&mut c, "100", Some("7.25")).await;

    // 1. A session that starts payment-method collection.
    let created = c
        .signup
        .create_signup(su::CreateSignupRequest {
            action: su::SignupAction::CreateWithPaymentMethod as i32,
            customer: Some(customer()),
            bill_group: Some(su::BillGroupInput {
                auto_email_invoice: Some(true),
                collect_invoice_balance_automatically: Some(true),
            }),
            quote: Some(quote(&plan)),
            ..Default::default()
        })
        .await
        .expect("CreateSignup")
        .into_inner()
        .signup
        .expect("signup");
    let session_id = created.session_id.clone();
    assert!(session_id.starts_with("cart_"), "{session_id}");
    assert_eq!(created.status, su::SignupStatus::Pending as i32);
    let q = created.quote.clone().expect("quote");
    assert!(q.id.starts_with("quot_"));
    assert_eq!(q.status, su::QuoteStatus::Draft as i32);
    let priced = q.pricing.expect("priced by the pricing service");
    // Before finalization the quote carries no tax.
    assert_eq!(amount(&priced.amount), ("100.00".into(), "USD".into()));
    assert_eq!(amount(&priced.amount_without_tax), ("100.00".into(), "USD".into()));
    assert!(!priced.tax_computed);
    assert_eq!(priced.offerings[0].offering_id, plan.offering_id);
    assert_eq!(priced.offerings[0].items[0].product_id, plan.product_id);
    let init = created.payment_method_init.expect("payment method init");
    assert_eq!(init.provider, "sandbox");
    assert!(init.customer_id.starts_with("cus_"), "{}", init.customer_id);
    assert!(init.setup_intent_id.starts_with("seti_"), "{}", init.setup_intent_id);
    assert!(init.client_secret.starts_with(&init.setup_intent_id));
    assert!(!init.publishable_key.is_empty());

    // The session reads back as saved.
    let got = c
        .signup
        .get_signup(su::GetSignupRequest { session_id: session_id.clone() })
        .await
        .expect("GetSignup")
        .into_inner()
        .signup
        .expect("signup");
    assert_eq!(got.session_id, session_id);
    assert_eq!(got.payment_method_init.map(|i| i.setup_intent_id), Some(init.setup_intent_id.clone()));

    // 2. UPDATE attaches the token the provider's form returned.
    let updated = c
        .signup
        .update_signup(su::UpdateSignupRequest {
            session_id: session_id.clone(),
            action: su::SignupAction::Update as i32,
            payment_method: Some(su::PaymentMethodInput {
                payment_method_name: "visa".into(),
                payment_token: "tok_visa".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("UpdateSignup UPDATE")
        .into_inner()
        .signup
        .expect("signup");
    assert_eq!(updated.action, su::SignupAction::AddPaymentMethod as i32);
    let pm = updated.payment_method.expect("payment method saved");
    assert!(pm.id.starts_with("pm_"));
    assert_eq!((pm.brand.as_str(), pm.last4.as_str()), ("visa", "4242"));

    // 3. FINALIZE makes everything, through the services that own it.
    let done = c
        .signup
        .update_signup(su::UpdateSignupRequest {
            session_id: session_id.clone(),
            action: su::SignupAction::Finalize as i32,
            ..Default::default()
        })
        .await
        .expect("UpdateSignup FINALIZE")
        .into_inner()
        .signup
        .expect("signup");
    assert_eq!(done.status, su::SignupStatus::Finalized as i32);
    let cust = done.customer.clone().expect("customer");
    assert!(cust.account_id.starts_with("acct_"), "{}", cust.account_id);
    assert!(cust.contact_id.starts_with("cont_"), "{}", cust.contact_id);
    assert_eq!((cust.account_name.as_str(), cust.contact_name.as_str()), ("Acme Inc", "John Doe"));
    assert_eq!(cust.contact_email, "john@acme.example");
    let bill_group_id = done.bill_group.clone().expect("bill group").id;
    assert!(bill_group_id.starts_with("bg_"));
    assert!(done.contract_id.starts_with("sub_"), "{}", done.contract_id);
    assert_eq!(done.quote.clone().expect("quote").status, su::QuoteStatus::Processed as i32);
    // Tax is computed at finalization: 100.00 + 7.25% CA sales tax.
    let invoice = done.invoice.clone().expect("invoice");
    assert!(invoice.id.starts_with("inv_"));
    assert_eq!(amount(&invoice.amount_without_tax).0, "100.00");
    assert_eq!(amount(&invoice.tax).0, "7.25");
    assert_eq!(amount(&invoice.amount).0, "107.25");
    assert_eq!(invoice.line_ids.len(), 1);
    let payment = done.payment.clone().expect("payment");
    assert!(payment.id.starts_with("pay_"));
    assert_eq!(amount(&payment.amount), ("107.25".into(), "USD".into()));
    assert_eq!(payment.status, pay::PaymentStatus::Succeeded as i32);

    // Each resource, from the service that owns it.
    let subscription = c
        .subscriptions
        .get_subscription(sub::GetSubscriptionRequest { id: done.contract_id.clone() })
        .await
        .expect("GetSubscription")
        .into_inner()
        .subscription
        .expect("subscription");
    assert_eq!(subscription.state, sub::SubscriptionState::Active as i32);
    assert_eq!(subscription.account_id, cust.account_id);
    assert_eq!(subscription.bill_group_id, bill_group_id);
    assert_eq!(subscription.offering_id, plan.offering_id);
    assert_eq!(subscription.rate_id, plan.rate_id);
    assert_eq!(amount(&subscription.recurring_amount).0, "107.25");
    assert!(
        subscription.current_period_end.expect("period end").seconds
            > subscription.current_period_start.expect("start").seconds
    );

    let inv = c
        .invoices
        .get_invoice(sub::GetInvoiceRequest { id: invoice.id.clone() })
        .await
        .expect("GetInvoice")
        .into_inner()
        .invoice
        .expect("invoice");
    assert_eq!(inv.status, sub::InvoiceStatus::Paid as i32);
    assert_eq!(inv.subscription_id, done.contract_id);
    assert!(inv.number.starts_with("INV-"), "{}", inv.number);
    assert_eq!(amount(&inv.amount).0, "107.25");
    assert_eq!(amount(&inv.amount_paid).0, "107.25");
    assert_eq!(amount(&inv.amount_due).0, "0.00");
    assert_eq!(inv.payment_ids, vec![payment.id.clone()]);
    assert_eq!(inv.lines.len(), 1);
    let line = &inv.lines[0];
    assert_eq!(line.id, invoice.line_ids[0]);
    assert_eq!(line.product_id, plan.product_id);
    assert_eq!((amount(&line.amount_without_tax).0, amount(&line.tax).0), ("100.00".into(), "7.25".into()));
    assert_eq!(line.tax_rate, "7.25");

    let account = c
        .accounts
        .get_account(sub::GetAccountRequest { id: cust.account_id.clone() })
        .await
        .expect("GetAccount")
        .into_inner()
        .account
        .expect("account");
    assert_eq!(account.contacts.len(), 1);
    assert_eq!(account.contacts[0].id, cust.contact_id);
    let bg = c
        .accounts
        .get_bill_group(sub::GetBillGroupRequest { id: bill_group_id.clone() })
        .await
        .expect("GetBillGroup")
        .into_inner()
        .bill_group
        .expect("bill group");
    assert_eq!(bg.payment_method_id, pm.id);
    assert_eq!(bg.collect_invoice_balance_automatically, Some(true));

    let p = c
        .payments
        .get_payment(pay::GetPaymentRequest { id: payment.id.clone() })
        .await
        .expect("GetPayment")
        .into_inner()
        .payment
        .expect("payment");
    assert_eq!(p.status, pay::PaymentStatus::Succeeded as i32);
    assert_eq!(p.invoice_id, invoice.id);

    // FINALIZE again answers with the same result and makes nothing new.
    let again = c
        .signup
        .update_signup(su::UpdateSignupRequest {
            session_id: session_id.clone(),
            action: su::SignupAction::Finalize as i32,
            ..Default::default()
        })
        .await
        .expect("FINALIZE is idempotent")
        .into_inner()
        .signup
        .expect("signup");
    assert_eq!(again.contract_id, done.contract_id);
    assert_eq!(again.payment.map(|p| p.id), Some(payment.id.clone()));
    assert_eq!(app.count_rows("subscription", "subscriptions").await, 1);
    assert_eq!(app.count_rows("payment", "payments").await, 1);
    let listed = c
        .payments
        .list_payments(pay::ListPaymentsRequest { customer_id: init.customer_id.clone(), ..Default::default() })
        .await
        .expect("ListPayments")
        .into_inner();
    assert_eq!(listed.payments.len(), 1);

    // Every step was recorded as an event, in order.
    let events = c.events.list_events(sub::ListEventsRequest::default()).await.expect("ListEvents").into_inner().events;
    let types: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        vec!["account.created", "bill_group.created", "subscription.created", "invoice.created", "invoice.paid"]
    );
}

async fn estimate_saves_nothing(app: &TestApp) {
    let mut c = app.clients("estimator");
    let plan = create_monthly_plan(&mut c, "49.99", None).await;
    let estimate = c
        .signup
        .create_signup(su::CreateSignupRequest {
            action: su::SignupAction::Estimate as i32,
            quote: Some(quote(&plan)),
            ..Default::default()
        })
        .await
        .expect("ESTIMATE")
        .into_inner()
        .signup
        .expect("signup");
    assert_eq!(estimate.session_id, "", "an estimate is not a session");
    assert_eq!(estimate.status, su::SignupStatus::Estimate as i32);
    let priced = estimate.quote.expect("quote").pricing.expect("priced");
    assert_eq!(amount(&priced.amount).0, "49.99");
    assert_eq!(app.count_rows("signup", "signup_sessions").await, 0);
    assert_eq!(app.count_rows("payment", "gateway_customers").await, 0);
    assert_eq!(app.count_rows("subscription", "accounts").await, 0);
}

async fn cancel_ends_a_pending_session(app: &TestApp) {
    let mut c = app.clients("canceler");
    let plan = create_monthly_plan(&mut c, "10", None).await;
    let pending = c
        .signup
        .create_signup(su::CreateSignupRequest {
            action: su::SignupAction::CreateInPending as i32,
            customer: Some(customer()),
            quote: Some(quote(&plan)),
            ..Default::default()
        })
        .await
        .expect("CREATE_IN_PENDING")
        .into_inner()
        .signup
        .expect("signup");
    assert_eq!(pending.status, su::SignupStatus::Pending as i32);
    assert!(pending.payment_method_init.is_none());
    let canceled = c
        .signup
        .update_signup(su::UpdateSignupRequest {
            session_id: pending.session_id.clone(),
            action: su::SignupAction::Cancel as i32,
            ..Default::default()
        })
        .await
        .expect("CANCEL")
        .into_inner()
        .signup
        .expect("signup");
    assert_eq!(canceled.status, su::SignupStatus::Canceled as i32);
    let err = c
        .signup
        .update_signup(su::UpdateSignupRequest {
            session_id: pending.session_id.clone(),
            action: su::SignupAction::Finalize as i32,
            ..Default::default()
        })
        .await
        .expect_err("a canceled session cannot be finalized");
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(details(&err).reason, "SESSION_CANCELED");
    assert_eq!(app.count_rows("subscription", "subscriptions").await, 0);
}

async fn finalize_requires_the_payment_method_it_started_collecting(app: &TestApp) {
    let mut c = app.clients("forgetful");
    let plan = create_monthly_plan(&mut c, "10", None).await;
    let created = c
        .signup
        .create_signup(su::CreateSignupRequest {
            action: su::SignupAction::CreateWithPaymentMethod as i32,
            customer: Some(customer()),
            quote: Some(quote(&plan)),
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner()
        .signup
        .expect("signup");
    let err = c
        .signup
        .update_signup(su::UpdateSignupRequest {
            session_id: created.session_id.clone(),
            action: su::SignupAction::Finalize as i32,
            ..Default::default()
        })
        .await
        .expect_err("no payment method yet");
    assert_eq!(err.code(), Code::FailedPrecondition);
    let d = details(&err);
    assert_eq!(d.reason, "PAYMENT_METHOD_REQUIRED");
    assert_eq!(d.fields, vec!["payment_method.payment_token"]);
    assert_eq!(d.metadata.get("session_id"), Some(&created.session_id), "the error names the saved session");

    // FINALIZE may carry the missing piece itself.
    let done = c
        .signup
        .update_signup(su::UpdateSignupRequest {
            session_id: created.session_id.clone(),
            action: su::SignupAction::Finalize as i32,
            payment_method: Some(su::PaymentMethodInput {
                payment_method_name: "visa".into(),
                payment_token: "tok_mastercard".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("finalize with the payment method")
        .into_inner()
        .signup
        .expect("signup");
    assert_eq!(done.status, su::SignupStatus::Finalized as i32);
    assert_eq!(done.payment.map(|p| p.status), Some(pay::PaymentStatus::Succeeded as i32));
}

/// The README's quick start, word for word: the demo catalog the all-in-one
/// process loads, and handles instead of ids — no hand-made catalog call.
async fn readme_quick_start_on_the_demo_catalog(app: &TestApp) {
    let tenant = "default";
    let loaded = recur::load_demo_catalog(&app.addr.to_string(), &app.key, tenant).await.expect("demo catalog");
    assert_eq!(loaded, Some(22));
    assert_eq!(
        recur::load_demo_catalog(&app.addr.to_string(), &app.key, tenant).await,
        Ok(None),
        "only into an empty catalog"
    );
    let mut c = app.clients(tenant);
    let created = c
        .signup
        .create_signup(su::CreateSignupRequest {
            action: su::SignupAction::CreateWithPaymentMethod as i32,
            customer: Some(customer()),
            bill_group: Some(su::BillGroupInput {
                auto_email_invoice: Some(true),
                collect_invoice_balance_automatically: Some(true),
            }),
            quote: Some(su::QuoteInput {
                offerings: vec![pricing::CartOffering {
                    offering_id: "starter".into(),
                    rate_id: "starter-monthly".into(),
                    items: vec![pricing::CartItem {
                        product_id: "platform-fee".into(),
                        quantity: "1".into(),
                        custom_price: None,
                    }],
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("CreateSignup on handles")
        .into_inner()
        .signup
        .expect("signup");
    let priced = created.quote.clone().and_then(|q| q.pricing).expect("priced");
    assert_eq!(amount(&priced.amount), ("29.00".into(), "USD".into()));
    assert!(priced.offerings[0].offering_id.starts_with("offr_"), "handles resolve to ids");
    c.signup
        .update_signup(su::UpdateSignupRequest {
            session_id: created.session_id.clone(),
            action: su::SignupAction::Update as i32,
            payment_method: Some(su::PaymentMethodInput {
                payment_method_name: "visa".into(),
                payment_token: "tok_visa".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("UPDATE");
    let done = c
        .signup
        .update_signup(su::UpdateSignupRequest {
            session_id: created.session_id.clone(),
            action: su::SignupAction::Finalize as i32,
            ..Default::default()
        })
        .await
        .expect("FINALIZE")
        .into_inner()
        .signup
        .expect("signup");
    assert!(done.contract_id.starts_with("sub_"));
    assert_eq!(
        done.payment.map(|p| (p.status, amount(&p.amount).0)),
        Some((pay::PaymentStatus::Succeeded as i32, "29.00".into()))
    );
}

on_both_backends!(
    readme_quick_start_sqlite_memory,
    readme_quick_start_postgres_redis,
    readme_quick_start_on_the_demo_catalog
);
on_both_backends!(quick_start_sqlite_memory, quick_start_postgres_redis, quick_start);
on_both_backends!(estimate_saves_nothing_sqlite_memory, estimate_saves_nothing_postgres_redis, estimate_saves_nothing);
on_both_backends!(cancel_sqlite_memory, cancel_postgres_redis, cancel_ends_a_pending_session);
on_both_backends!(
    finalize_needs_payment_method_sqlite_memory,
    finalize_needs_payment_method_postgres_redis,
    finalize_requires_the_payment_method_it_started_collecting
);
