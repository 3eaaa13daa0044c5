//! One convention for a missing resource (README, "Errors"): the resource an
//! RPC addresses (a Get/Archive/Refund by id, the parent of a List) is
//! NOT_FOUND; a resource named in the body of a request is INVALID_ARGUMENT
//! with the reason `<RESOURCE>_NOT_FOUND` and a violation naming the field.
//! Either way another tenant's id answers exactly like an id that never
//! existed: same code, reason, fields and message, the echoed id aside.

use recur_e2e::{TestApp, create_monthly_plan, details, on_both_backends};
use recur_proto::catalog::v1 as cat;
use recur_proto::common::v1::Money;
use recur_proto::payment::v1 as pay;
use recur_proto::pricing::v1 as pricing;
use recur_proto::signup::v1 as su;
use recur_proto::subscription::v1 as sub;
use tonic::{Code, Status};

/// An id of the same kind and length as `id` that was never issued (a coupon
/// code without a prefix becomes a run of `Z`s).
fn never(id: &str) -> String {
    match id.split_once('_') {
        Some((prefix, body)) => format!("{prefix}_{}", "Z".repeat(body.len())),
        None => "Z".repeat(id.len()),
    }
}

/// What a caller can learn from an error, with the id it echoes masked.
type Seen = (Code, String, String, Vec<(String, String)>, Vec<(String, String)>);

fn seen(err: &Status, id: &str) -> Seen {
    let d = details(err);
    let mask = |s: &str| s.replace(id, "<id>");
    let mut metadata: Vec<(String, String)> = d.metadata.iter().map(|(k, v)| (k.clone(), mask(v))).collect();
    metadata.sort();
    let violations = d.violations.iter().map(|v| (v.field.clone(), mask(&v.description))).collect();
    (err.code(), d.reason, mask(err.message()), violations, metadata)
}

fn check(what: &str, foreign: (&Status, &str), missing: (&Status, &str), code: Code, reason: &str, fields: &[&str]) {
    let f = seen(foreign.0, foreign.1);
    let m = seen(missing.0, missing.1);
    assert_eq!(f.0, code, "{what}: {:?}", foreign.0);
    assert_eq!(f.1, reason, "{what}: {:?}", foreign.0);
    let got: Vec<&str> = f.3.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(got, fields, "{what}: {:?}", foreign.0);
    assert!(foreign.0.message().contains(foreign.1), "{what}: the message names what was asked for");
    assert_eq!(f, m, "{what}: another tenant's id is told apart from one that never existed");
}

/// Calls `$call` with `$id` bound to another tenant's real id, then to an id
/// that never existed, and checks both answer alike with `$code`, `$reason`
/// and `$fields`.
macro_rules! alike {
    ($what:expr, $foreign:expr, |$id:ident| $call:expr, $code:expr, $reason:expr, $fields:expr) => {{
        let foreign: String = $foreign.to_string();
        let missing = never(&foreign);
        let f = {
            let $id = foreign.clone();
            $call.await.expect_err($what)
        };
        let m = {
            let $id = missing.clone();
            $call.await.expect_err($what)
        };
        check($what, (&f, &foreign), (&m, &missing), $code, $reason, $fields);
    }};
}

fn usd(amount: &str) -> Option<Money> {
    Some(Money { currency_code: "USD".into(), amount: amount.into() })
}

/// Another tenant's resources, one of each kind.
struct Theirs {
    plan: recur_e2e::Plan,
    coupon_id: String,
    coupon_code: String,
    account_id: String,
    bill_group_id: String,
    subscription_id: String,
    invoice_id: String,
    customer_id: String,
    payment_method_id: String,
    payment_id: String,
}

async fn theirs(app: &TestApp) -> Theirs {
    let mut b = app.clients("globex");
    let plan = create_monthly_plan(&mut b, "20", None).await;
    let coupon = recur_e2e::percent_coupon(&mut b, "GLOBEX10", "10").await;
    let (account_id, bill_group_id) = recur_e2e::remittance_account(&mut b, "Globex").await;
    let created = b
        .subscriptions
        .create_subscription(sub::CreateSubscriptionRequest {
            account_id: account_id.clone(),
            bill_group_id: bill_group_id.clone(),
            offering: plan.offering_id.clone(),
            rate: plan.rate_id.clone(),
            ..Default::default()
        })
        .await
        .expect("subscription")
        .into_inner();
    let (customer_id, payment_method_id) = recur_e2e::customer_with_card(&mut b).await;
    let payment = b
        .payments
        .charge(pay::ChargeRequest { customer_id: customer_id.clone(), amount: usd("5.00"), ..Default::default() })
        .await
        .expect("charge")
        .into_inner()
        .payment
        .expect("payment");
    Theirs {
        plan,
        coupon_id: coupon.id,
        coupon_code: coupon.code,
        account_id,
        bill_group_id,
        subscription_id: created.subscription.expect("subscription").id,
        invoice_id: created.invoice.expect("an invoice for an in-advance rate").id,
        customer_id,
        payment_method_id,
        payment_id: payment.id,
    }
}

/// A resource named in the body that does not exist is INVALID_ARGUMENT
/// `<RESOURCE>_NOT_FOUND` on its field, whoever else may own the id.
async fn missing_references(app: &TestApp) {
    let t = theirs(app).await;
    let mut c = app.clients("acme");
    let plan = create_monthly_plan(&mut c, "30", None).await;
    let (account_id, bill_group_id) = recur_e2e::remittance_account(&mut c, "Acme").await;
    let (customer_id, _) = recur_e2e::customer_with_card(&mut c).await;
    let bad = Code::InvalidArgument;

    // Subscriptions and bill groups.
    alike!(
        "CreateBillGroup, unknown account",
        t.account_id,
        |id| c.accounts.create_bill_group(sub::CreateBillGroupRequest {
            bill_group: Some(sub::BillGroup { account_id: id, ..Default::default() }),
        }),
        bad,
        "ACCOUNT_NOT_FOUND",
        &["bill_group.account_id"]
    );
    let subscribe =
        |account_id: &str, bill_group_id: &str, offering: &str, rate: &str| sub::CreateSubscriptionRequest {
            account_id: account_id.into(),
            bill_group_id: bill_group_id.into(),
            offering: offering.into(),
            rate: rate.into(),
            ..Default::default()
        };
    alike!(
        "CreateSubscription, unknown account",
        t.account_id,
        |id| c.subscriptions.create_subscription(subscribe(&id, &bill_group_id, &plan.offering_id, &plan.rate_id)),
        bad,
        "ACCOUNT_NOT_FOUND",
        &["account_id"]
    );
    alike!(
        "CreateSubscription, unknown bill group",
        t.bill_group_id,
        |id| c.subscriptions.create_subscription(subscribe(&account_id, &id, &plan.offering_id, &plan.rate_id)),
        bad,
        "BILL_GROUP_NOT_FOUND",
        &["bill_group_id"]
    );
    alike!(
        "CreateSubscription, unknown rate",
        t.plan.rate_id,
        |id| c.subscriptions.create_subscription(subscribe(&account_id, &bill_group_id, &plan.offering_id, &id)),
        bad,
        "RATE_NOT_FOUND",
        &["rate"]
    );

    // Payments.
    alike!(
        "Charge, unknown customer",
        t.customer_id,
        |id| c.payments.charge(pay::ChargeRequest { customer_id: id, amount: usd("1.00"), ..Default::default() }),
        bad,
        "CUSTOMER_NOT_FOUND",
        &["customer_id"]
    );
    alike!(
        "Charge, unknown payment method",
        t.payment_method_id,
        |id| c.payments.charge(pay::ChargeRequest {
            customer_id: customer_id.clone(),
            payment_method_id: id,
            amount: usd("1.00"),
            ..Default::default()
        }),
        bad,
        "PAYMENT_METHOD_NOT_FOUND",
        &["payment_method_id"]
    );
    alike!(
        "AttachPaymentMethod, unknown customer",
        t.customer_id,
        |id| c.payments.attach_payment_method(pay::AttachPaymentMethodRequest {
            customer_id: id,
            payment_token: "tok_visa".into(),
            ..Default::default()
        }),
        bad,
        "CUSTOMER_NOT_FOUND",
        &["customer_id"]
    );
    alike!(
        "InitPaymentMethod, unknown customer",
        t.customer_id,
        |id| c.payments.init_payment_method(pay::InitPaymentMethodRequest { customer_id: id, ..Default::default() }),
        bad,
        "CUSTOMER_NOT_FOUND",
        &["customer_id"]
    );
    alike!(
        "CreatePortalSession, unknown customer",
        t.customer_id,
        |id| c
            .payments
            .create_portal_session(pay::CreatePortalSessionRequest { customer_id: id, ..Default::default() }),
        bad,
        "CUSTOMER_NOT_FOUND",
        &["customer_id"]
    );

    // Pricing: every catalog resource it prices is named in the body.
    let quote = |offering: &str, rate: &str, coupons: &[String]| pricing::QuoteRequest {
        offerings: vec![pricing::CartOffering { offering_id: offering.into(), rate_id: rate.into(), items: vec![] }],
        coupon_codes: coupons.to_vec(),
        ..Default::default()
    };
    alike!(
        "Quote, unknown rate",
        t.plan.rate_id,
        |id| c.pricing.quote(quote(&plan.offering_id, &id, &[])),
        bad,
        "RATE_NOT_FOUND",
        &["offerings[0].rate_id"]
    );
    alike!(
        "Quote, unknown offering",
        t.plan.offering_id,
        |id| c.pricing.quote(quote(&id, &plan.rate_id, &[])),
        bad,
        "OFFERING_NOT_FOUND",
        &["offerings[0].offering_id"]
    );
    alike!(
        "Quote, unknown coupon code",
        t.coupon_code,
        |id| c.pricing.quote(quote(&plan.offering_id, &plan.rate_id, &[id])),
        bad,
        "COUPON_NOT_FOUND",
        &["coupon_codes[0]"]
    );
    alike!(
        "RateUsage, unknown rate",
        t.plan.rate_id,
        |id| c.pricing.rate_usage(pricing::RateUsageRequest {
            rate_id: id,
            product_id: plan.product_id.clone(),
            quantity: "1".into(),
            ..Default::default()
        }),
        bad,
        "RATE_NOT_FOUND",
        &["rate_id"]
    );
    alike!(
        "RateUsage, unknown product",
        t.plan.product_id,
        |id| c.pricing.rate_usage(pricing::RateUsageRequest {
            rate_id: plan.rate_id.clone(),
            product_id: id,
            quantity: "1".into(),
            ..Default::default()
        }),
        bad,
        "PRODUCT_NOT_FOUND",
        &["product_id"]
    );

    // Sign-up passes pricing's answer on, re-rooted in its own request.
    alike!(
        "CreateSignup, unknown offering",
        t.plan.offering_id,
        |id| c.signup.create_signup(su::CreateSignupRequest {
            action: su::SignupAction::Estimate as i32,
            customer: Some(su::CustomerInput {
                name: "Jo Doe".into(),
                email: "jo@acme.example".into(),
                ..Default::default()
            }),
            quote: Some(su::QuoteInput { offerings: quote(&id, &plan.rate_id, &[]).offerings, ..Default::default() }),
            ..Default::default()
        }),
        bad,
        "OFFERING_NOT_FOUND",
        &["quote.offerings[0].offering_id"]
    );

    // The catalog's own references.
    alike!(
        "CreateOffering, unknown product",
        t.plan.product_id,
        |id| c.catalog.create_offering(cat::CreateOfferingRequest {
            offering: Some(cat::Offering { name: "Other".into(), product_ids: vec![id], ..Default::default() }),
        }),
        bad,
        "PRODUCT_NOT_FOUND",
        &["offering.product_ids[0]"]
    );
    alike!(
        "CreateRate, unknown offering",
        t.plan.offering_id,
        |id| c.catalog.create_rate(cat::CreateRateRequest {
            rate: Some(cat::Rate {
                offering_id: id,
                name: "Other".into(),
                currency_code: "USD".into(),
                ..Default::default()
            }),
        }),
        bad,
        "OFFERING_NOT_FOUND",
        &["rate.offering_id"]
    );
    alike!(
        "CreateCoupon, unknown offering",
        t.plan.offering_id,
        |id| c.catalog.create_coupon(cat::CreateCouponRequest {
            coupon: Some(cat::Coupon {
                code: "ACME5".into(),
                discount_type: cat::DiscountType::Percent as i32,
                percent_off: "5".into(),
                duration: cat::CouponDuration::Once as i32,
                offering_ids: vec![id],
                ..Default::default()
            }),
        }),
        bad,
        "OFFERING_NOT_FOUND",
        &["coupon.offering_ids[0]"]
    );

    // None of it was written.
    assert_eq!(app.count_rows("subscription", "bill_groups").await, 2, "a bill group was written");
    assert_eq!(app.count_rows("subscription", "subscriptions").await, 1, "a subscription was written");
    assert_eq!(app.count_rows("payment", "payments").await, 1, "a payment was written");
    assert_eq!(app.count_rows("payment", "payment_methods").await, 2, "a payment method was written");

    // A bill group whose gateway customer does not exist would make every
    // invoice of it fail to be collected: it is refused as it is created,
    // naming the field, and nothing is written.
    alike!(
        "CreateBillGroup, an unknown gateway customer",
        t.customer_id,
        |id| c.accounts.create_bill_group(sub::CreateBillGroupRequest {
            bill_group: Some(sub::BillGroup {
                account_id: account_id.clone(),
                gateway_customer_id: id,
                payment_method_id: t.payment_method_id.clone(),
                collection_method: sub::CollectionMethod::Automatic as i32,
                ..Default::default()
            }),
        }),
        bad,
        "CUSTOMER_NOT_FOUND",
        &["bill_group.gateway_customer_id"]
    );
    assert_eq!(app.count_rows("subscription", "bill_groups").await, 2, "a bill group was written");
}

on_both_backends!(missing_references_on_sqlite, missing_references_on_postgres, missing_references);

/// The resource an RPC addresses is NOT_FOUND, another tenant's alike.
async fn missing_resources(app: &TestApp) {
    let t = theirs(app).await;
    let mut c = app.clients("acme");
    let gone = Code::NotFound;
    use cat::{get_coupon_request, get_offering_request, get_product_request, get_rate_request};

    alike!(
        "GetAccount",
        t.account_id,
        |id| c.accounts.get_account(sub::GetAccountRequest { id }),
        gone,
        "ACCOUNT_NOT_FOUND",
        &["id"]
    );
    alike!(
        "GetBillGroup",
        t.bill_group_id,
        |id| c.accounts.get_bill_group(sub::GetBillGroupRequest { id }),
        gone,
        "BILL_GROUP_NOT_FOUND",
        &[]
    );
    alike!(
        "GetSubscription",
        t.subscription_id,
        |id| c.subscriptions.get_subscription(sub::GetSubscriptionRequest { id }),
        gone,
        "SUBSCRIPTION_NOT_FOUND",
        &[]
    );
    alike!(
        "GetInvoice",
        t.invoice_id,
        |id| c.invoices.get_invoice(sub::GetInvoiceRequest { id }),
        gone,
        "INVOICE_NOT_FOUND",
        &[]
    );
    alike!(
        "GetCustomer",
        t.customer_id,
        |id| c.payments.get_customer(pay::GetCustomerRequest { id }),
        gone,
        "CUSTOMER_NOT_FOUND",
        &["id"]
    );
    alike!(
        "ListPaymentMethods of an unknown customer",
        t.customer_id,
        |id| c.payments.list_payment_methods(pay::ListPaymentMethodsRequest { customer_id: id }),
        gone,
        "CUSTOMER_NOT_FOUND",
        &["customer_id"]
    );
    alike!(
        "GetPayment",
        t.payment_id,
        |id| c.payments.get_payment(pay::GetPaymentRequest { id }),
        gone,
        "PAYMENT_NOT_FOUND",
        &["id"]
    );
    alike!(
        "Refund of an unknown payment",
        t.payment_id,
        |id| c.payments.refund(pay::RefundRequest { payment_id: id, ..Default::default() }),
        gone,
        "PAYMENT_NOT_FOUND",
        &["payment_id"]
    );
    alike!(
        "GetProduct",
        t.plan.product_id,
        |id| c.catalog.get_product(cat::GetProductRequest { lookup: Some(get_product_request::Lookup::Id(id)) }),
        gone,
        "PRODUCT_NOT_FOUND",
        &[]
    );
    alike!(
        "GetOffering",
        t.plan.offering_id,
        |id| c.catalog.get_offering(cat::GetOfferingRequest { lookup: Some(get_offering_request::Lookup::Id(id)) }),
        gone,
        "OFFERING_NOT_FOUND",
        &[]
    );
    alike!(
        "GetRate",
        t.plan.rate_id,
        |id| c.catalog.get_rate(cat::GetRateRequest { lookup: Some(get_rate_request::Lookup::Id(id)) }),
        gone,
        "RATE_NOT_FOUND",
        &[]
    );
    alike!(
        "ArchiveRate",
        t.plan.rate_id,
        |id| c.catalog.archive_rate(cat::ArchiveRateRequest { id }),
        gone,
        "RATE_NOT_FOUND",
        &[]
    );
    alike!(
        "GetCoupon by id",
        t.coupon_id,
        |id| c.catalog.get_coupon(cat::GetCouponRequest { lookup: Some(get_coupon_request::Lookup::Id(id)) }),
        gone,
        "COUPON_NOT_FOUND",
        &[]
    );
    alike!(
        "GetCoupon by code",
        t.coupon_code,
        |id| c.catalog.get_coupon(cat::GetCouponRequest { lookup: Some(get_coupon_request::Lookup::Code(id)) }),
        gone,
        "COUPON_NOT_FOUND",
        &[]
    );

    // The other tenant's resources are untouched and still theirs.
    let mut b = app.clients("globex");
    let rate = b
        .catalog
        .get_rate(cat::GetRateRequest { lookup: Some(get_rate_request::Lookup::Id(t.plan.rate_id.clone())) })
        .await
        .expect("their rate")
        .into_inner()
        .rate
        .expect("rate");
    assert_eq!(rate.status, cat::CatalogStatus::Active as i32);
    b.accounts.get_account(sub::GetAccountRequest { id: t.account_id }).await.expect("their account");
}

on_both_backends!(missing_resources_on_sqlite, missing_resources_on_postgres, missing_resources);
