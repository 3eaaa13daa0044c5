//! The seed systems' subscription flows as stories, over gRPC on both
//! backends, with the clock of every service set by the test: BuiltOn's
//! sign-up with a payment method, Maxio's create-by-handle with components,
//! a coupon and a custom price then listed by filters, Botisimo's free to
//! paid change with the amount due confirmed, billwerk's order preview,
//! future contract, upgrade to a plan variant, component quantities up and
//! down, termination with and without notice, and calendar billing.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use recur_e2e::{Clients, TestApp, on_both_backends_at};
use recur_proto::catalog::v1 as cat;
use recur_proto::common::v1 as common;
use recur_proto::pricing::v1 as pricepb;
use recur_proto::subscription::v1 as sub;
use rust_decimal::Decimal;

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().expect("date")
}

fn amt(m: &Option<common::Money>) -> Decimal {
    Decimal::from_str(&m.as_ref().expect("money").amount).expect("decimal")
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("literal")
}

fn secs(t: &Option<prost_types::Timestamp>) -> Option<i64> {
    t.as_ref().map(|t| t.seconds)
}

async fn product(c: &mut Clients, handle: &str, kind: cat::ProductKind) -> String {
    c.catalog
        .create_product(cat::CreateProductRequest {
            product: Some(cat::Product {
                handle: handle.into(),
                name: handle.into(),
                kind: kind as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("product")
        .into_inner()
        .product
        .expect("product")
        .id
}

async fn offering(c: &mut Clients, handle: &str, products: &[&str]) -> String {
    c.catalog
        .create_offering(cat::CreateOfferingRequest {
            offering: Some(cat::Offering {
                handle: handle.into(),
                name: handle.into(),
                product_ids: products.iter().map(|p| p.to_string()).collect(),
                ..Default::default()
            }),
        })
        .await
        .expect("offering")
        .into_inner()
        .offering
        .expect("offering")
        .id
}

fn flat(product: &str, amount: &str) -> cat::Price {
    cat::Price {
        product_id: product.into(),
        model: cat::PricingModel::Flat as i32,
        flat_amount: amount.into(),
        ..Default::default()
    }
}

fn per_unit(product: &str, amount: &str) -> cat::Price {
    cat::Price {
        product_id: product.into(),
        model: cat::PricingModel::PerUnit as i32,
        unit_amount: amount.into(),
        ..Default::default()
    }
}

async fn rate(c: &mut Clients, offering: &str, handle: &str, prices: Vec<cat::Price>, notice_days: i32) -> String {
    c.catalog
        .create_rate(cat::CreateRateRequest {
            rate: Some(cat::Rate {
                offering_id: offering.into(),
                handle: handle.into(),
                name: handle.into(),
                currency_code: "USD".into(),
                billing_period: Some(cat::BillingPeriod { unit: cat::PeriodUnit::Month as i32, count: 1 }),
                timing: cat::BillingTiming::InAdvance as i32,
                notice_period_days: notice_days,
                prices,
                ..Default::default()
            }),
        })
        .await
        .expect("rate")
        .into_inner()
        .rate
        .expect("rate")
        .id
}

async fn account(c: &mut Clients, name: &str) -> String {
    c.accounts
        .create_account(sub::CreateAccountRequest {
            account: Some(sub::Account { account_name: name.into(), ..Default::default() }),
        })
        .await
        .expect("account")
        .into_inner()
        .account
        .expect("account")
        .id
}

async fn bill_group(c: &mut Clients, account: &str, customer: &str, pm: &str, billing_day: i32) -> String {
    let method = if pm.is_empty() { sub::CollectionMethod::Remittance } else { sub::CollectionMethod::Automatic };
    c.accounts
        .create_bill_group(sub::CreateBillGroupRequest {
            bill_group: Some(sub::BillGroup {
                account_id: account.into(),
                gateway_customer_id: customer.into(),
                payment_method_id: pm.into(),
                collection_method: method as i32,
                billing_day,
                ..Default::default()
            }),
        })
        .await
        .expect("bill group")
        .into_inner()
        .bill_group
        .expect("bill group")
        .id
}

fn item(product: &str, quantity: &str) -> sub::SubscriptionItem {
    sub::SubscriptionItem { product_id: product.into(), quantity: quantity.into(), custom_price: None }
}

/// BuiltOn (seed 001): a user, the standard plan, a subscription, a
/// payment method that is charged for it.
async fn builton_signs_up_a_user_with_a_card(app: &TestApp) {
    let mut c = app.clients("builton");
    let base = product(&mut c, "app", cat::ProductKind::Recurring).await;
    let plans = offering(&mut c, "plans", &[&base]).await;
    let standard = rate(&mut c, &plans, "standard", vec![flat(&base, "19.00")], 0).await;
    let user = account(&mut c, "Ada (user 17)").await;
    let (customer, pm) = recur_e2e::customer_with_card(&mut c).await;
    let bg = bill_group(&mut c, &user, &customer, &pm, 0).await;
    let made = c
        .subscriptions
        .create_subscription(sub::CreateSubscriptionRequest {
            account_id: user.clone(),
            bill_group_id: bg,
            offering: "plans".into(),
            rate: "standard".into(),
            ..Default::default()
        })
        .await
        .expect("subscribe")
        .into_inner();
    let s = made.subscription.expect("subscription");
    assert_eq!((s.state, s.rate_id.as_str()), (sub::SubscriptionState::Active as i32, standard.as_str()));
    let inv = made.invoice.expect("first invoice");
    assert_eq!((inv.status, amt(&inv.amount_paid)), (sub::InvoiceStatus::Paid as i32, dec("19.00")));
    assert!(!made.payment_id.is_empty(), "charged on the user's card");
    assert_eq!(secs(&s.next_billing_time), Some(day(2023, 5, 1).timestamp()));
}

/// Maxio (seed 002): created by handles with a per-seat and an on/off
/// component, a coupon and a custom seat price; found again by filters.
async fn maxio_creates_by_handle_with_components_coupon_and_custom_price(app: &TestApp) {
    let mut c = app.clients("maxio");
    let base = product(&mut c, "base", cat::ProductKind::Recurring).await;
    let seats = product(&mut c, "seats", cat::ProductKind::PerUnit).await;
    let sso = product(&mut c, "sso", cat::ProductKind::OnOff).await;
    let team = offering(&mut c, "team", &[&base, &seats, &sso]).await;
    rate(
        &mut c,
        &team,
        "team-monthly",
        vec![flat(&base, "50.00"), per_unit(&seats, "10.00"), per_unit(&sso, "20.00")],
        0,
    )
    .await;
    recur_e2e::percent_coupon(&mut c, "WELCOME", "10").await;
    let customer = account(&mut c, "Initrode").await;
    let bg = bill_group(&mut c, &customer, "", "", 0).await;
    let created = c
        .subscriptions
        .create_subscription(sub::CreateSubscriptionRequest {
            account_id: customer.clone(),
            bill_group_id: bg.clone(),
            offering: "team".into(),
            rate: "team-monthly".into(),
            items: vec![
                sub::SubscriptionItem {
                    product_id: "seats".into(),
                    quantity: "5".into(),
                    custom_price: Some(per_unit("", "8.00")),
                },
                item("sso", "1"),
            ],
            coupon_codes: vec!["WELCOME".into()],
            metadata: [("crm".to_string(), "maxio".to_string())].into(),
            custom_id: "cust-ref-1".into(),
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner();
    // 50.00 + 5 × 8.00 (the custom price, not 10.00) + 20.00 = 110.00,
    // 10% off: 99.00.
    let inv = created.invoice.expect("invoice");
    assert_eq!(amt(&inv.amount), dec("99.00"));
    let s = created.subscription.expect("subscription");
    let seat = s.items.iter().find(|i| i.product_id == seats).expect("seats item");
    assert_eq!(seat.custom_price.as_ref().map(|p| p.unit_amount.as_str()), Some("8.00"));
    assert_eq!(amt(&s.recurring_amount), dec("99.00"));

    // Another customer on the list price, to filter out.
    let other = account(&mut c, "Vandelay").await;
    let other_bg = bill_group(&mut c, &other, "", "", 0).await;
    c.subscriptions
        .create_subscription(sub::CreateSubscriptionRequest {
            account_id: other,
            bill_group_id: other_bg,
            offering: "team".into(),
            rate: "team-monthly".into(),
            ..Default::default()
        })
        .await
        .expect("create");
    let list = |r: sub::ListSubscriptionsRequest| {
        let mut subs = c.subscriptions.clone();
        async move {
            let page = subs.list_subscriptions(r).await.expect("list").into_inner();
            page.subscriptions.into_iter().map(|s| s.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(sub::ListSubscriptionsRequest { coupon: "WELCOME".into(), ..Default::default() }).await,
        [s.id.as_str()]
    );
    assert_eq!(
        list(sub::ListSubscriptionsRequest {
            metadata: [("crm".to_string(), "maxio".to_string())].into(),
            states: vec![sub::SubscriptionState::Active as i32],
            ..Default::default()
        })
        .await,
        [s.id.as_str()]
    );
    assert_eq!(list(sub::ListSubscriptionsRequest { product_id: sso.clone(), ..Default::default() }).await.len(), 2);
    assert_eq!(
        list(sub::ListSubscriptionsRequest { account_id: customer, ..Default::default() }).await,
        [s.id.as_str()]
    );

    // Two more seats on Apr 16 (15 of 30 days left), at the custom price:
    // 2 × 8.00 × 15/30 = 8.00.
    app.set_time(day(2023, 4, 16));
    let preview = c
        .subscriptions
        .preview_change(sub::PreviewChangeRequest {
            id: s.id.clone(),
            change: Some(sub::SubscriptionChange {
                items: vec![item("seats", "7")],
                timing: pricepb::ChangeTiming::Immediate as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(amt(&preview.amount_due_now), dec("8.00"));
}

/// Botisimo (seed 003): a free plan changed to a paid one, the amount due
/// shown first and then charged exactly.
async fn botisimo_changes_free_to_paid_with_the_amount_confirmed(app: &TestApp) {
    let mut c = app.clients("botisimo");
    let bot = product(&mut c, "bot", cat::ProductKind::Recurring).await;
    let membership = offering(&mut c, "membership", &[&bot]).await;
    rate(&mut c, &membership, "free", vec![flat(&bot, "0")], 0).await;
    let pro = rate(&mut c, &membership, "pro", vec![flat(&bot, "30.00")], 0).await;
    let streamer = account(&mut c, "streamer 9").await;
    let (customer, pm) = recur_e2e::customer_with_card(&mut c).await;
    let bg = bill_group(&mut c, &streamer, &customer, &pm, 0).await;
    let free = c
        .subscriptions
        .create_subscription(sub::CreateSubscriptionRequest {
            account_id: streamer,
            bill_group_id: bg,
            offering: "membership".into(),
            rate: "free".into(),
            ..Default::default()
        })
        .await
        .expect("free")
        .into_inner();
    assert!(free.invoice.is_none(), "nothing to invoice on a free plan");
    let s = free.subscription.expect("subscription");
    // Apr 11: 20 of 30 days left, 30.00 × 20/30 = 20.00 due now.
    app.set_time(day(2023, 4, 11));
    let change = Some(sub::SubscriptionChange {
        rate: "pro".into(),
        timing: pricepb::ChangeTiming::Immediate as i32,
        ..Default::default()
    });
    let preview = c
        .subscriptions
        .preview_change(sub::PreviewChangeRequest { id: s.id.clone(), change: change.clone() })
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(amt(&preview.amount_due_now), dec("20.00"));
    assert_eq!(amt(&preview.next_recurring_amount), dec("30.00"));
    // The member confirms the amount shown.
    let changed = c
        .subscriptions
        .change_subscription(sub::ChangeSubscriptionRequest {
            id: s.id.clone(),
            change,
            cancel_scheduled_change: false,
        })
        .await
        .expect("change")
        .into_inner();
    let inv = changed.invoice.expect("proration invoice");
    assert_eq!(amt(&inv.amount_paid), amt(&preview.amount_due_now), "charged exactly what was confirmed");
    assert_eq!(changed.subscription.expect("subscription").rate_id, pro);
}

/// billwerk (seed 004): an order previewed then placed, a future contract
/// not invoiced until it starts, an upgrade to a plan variant, component
/// quantities up and down, termination with and without notice, and
/// calendar billing on the bill group's billing day.
async fn billwerk_orders_upgrades_and_terminates(app: &TestApp) {
    let mut c = app.clients("billwerk");
    let plan = product(&mut c, "plan", cat::ProductKind::Recurring).await;
    let users = product(&mut c, "users", cat::ProductKind::PerUnit).await;
    let office = offering(&mut c, "office", &[&plan, &users]).await;
    let small = rate(&mut c, &office, "small", vec![flat(&plan, "30.00"), per_unit(&users, "3.00")], 30).await;
    let large = rate(&mut c, &office, "large", vec![flat(&plan, "60.00"), per_unit(&users, "3.00")], 30).await;
    let firm = account(&mut c, "Müller GmbH").await;
    let (customer, pm) = recur_e2e::customer_with_card(&mut c).await;
    let bg = bill_group(&mut c, &firm, &customer, &pm, 0).await;

    // The order's preview: 30.00 + 3 × 3.00 = 39.00; placing it charges that.
    let order = sub::CreateSubscriptionRequest {
        account_id: firm.clone(),
        bill_group_id: bg.clone(),
        offering: "office".into(),
        rate: "small".into(),
        items: vec![item("users", "3")],
        ..Default::default()
    };
    let preview = c
        .pricing
        .quote(pricepb::QuoteRequest {
            offerings: vec![pricepb::CartOffering {
                offering_id: office.clone(),
                rate_id: small.clone(),
                items: vec![pricepb::CartItem { product_id: users.clone(), quantity: "3".into(), custom_price: None }],
            }],
            ..Default::default()
        })
        .await
        .expect("quote")
        .into_inner()
        .quote
        .expect("quote");
    let placed = c.subscriptions.create_subscription(order.clone()).await.expect("order").into_inner();
    assert_eq!(amt(&placed.invoice.expect("invoice").amount), amt(&preview.amount));
    assert_eq!(amt(&preview.amount), dec("39.00"));
    let s = placed.subscription.expect("subscription");

    // A future contract: PENDING, nothing invoiced until it starts.
    let future = c
        .subscriptions
        .create_subscription(sub::CreateSubscriptionRequest { start_date: "2023-06-01".into(), ..order.clone() })
        .await
        .expect("future")
        .into_inner();
    assert_eq!(future.subscription.expect("subscription").state, sub::SubscriptionState::Pending as i32);
    assert!(future.invoice.is_none());

    // Apr 11 (20 of 30 days left): up to the large variant, 5 users.
    // Credit 39.00 × 20/30 = 26.00 (30.00 → 20.00 and 9.00 → 6.00), charge
    // (60.00 + 15.00) × 20/30 = 50.00: 24.00 due.
    app.set_time(day(2023, 4, 11));
    let up = c
        .subscriptions
        .change_subscription(sub::ChangeSubscriptionRequest {
            id: s.id.clone(),
            change: Some(sub::SubscriptionChange {
                rate: "large".into(),
                items: vec![item("users", "5")],
                timing: pricepb::ChangeTiming::Immediate as i32,
            }),
            cancel_scheduled_change: false,
        })
        .await
        .expect("upgrade")
        .into_inner();
    assert_eq!(amt(&up.invoice.expect("invoice").amount), dec("24.00"));
    let now = up.subscription.expect("subscription");
    assert_eq!(now.rate_id, large);
    assert_eq!(amt(&now.recurring_amount), dec("75.00"));

    // Apr 21 (10 days left): down to 2 users: 3 × 3.00 × 10/30 = 3.00
    // credited, kept on the account.
    app.set_time(day(2023, 4, 21));
    let down = c
        .subscriptions
        .change_subscription(sub::ChangeSubscriptionRequest {
            id: s.id.clone(),
            change: Some(sub::SubscriptionChange {
                items: vec![item("users", "2")],
                timing: pricepb::ChangeTiming::Immediate as i32,
                ..Default::default()
            }),
            cancel_scheduled_change: false,
        })
        .await
        .expect("downgrade")
        .into_inner();
    assert_eq!(amt(&down.credited), dec("3.00"));
    assert_eq!(amt(&down.subscription.expect("subscription").recurring_amount), dec("66.00"));

    // Terminated with the rate's 30 days' notice on Apr 21: May 21 falls in
    // the period May 1 → Jun 1, so it ends Jun 1.
    let ended = c
        .subscriptions
        .cancel_subscription(sub::CancelSubscriptionRequest {
            id: s.id.clone(),
            timing: sub::CancelTiming::WithNotice as i32,
            reason: "contract ends".into(),
            ..Default::default()
        })
        .await
        .expect("terminate")
        .into_inner()
        .subscription
        .expect("subscription");
    assert_eq!(secs(&ended.expire_time), Some(day(2023, 6, 1).timestamp()));
    assert!(ended.cancel_at_period_end);

    // Without notice: another contract ends at once.
    let other = c.subscriptions.create_subscription(order.clone()).await.expect("order").into_inner();
    let other = other.subscription.expect("subscription");
    let at_once = c
        .subscriptions
        .cancel_subscription(sub::CancelSubscriptionRequest {
            id: other.id.clone(),
            timing: sub::CancelTiming::Immediate as i32,
            ..Default::default()
        })
        .await
        .expect("terminate")
        .into_inner()
        .subscription
        .expect("subscription");
    assert_eq!(at_once.state, sub::SubscriptionState::Canceled as i32);

    // Calendar billing on the 1st from Apr 21: Apr 21 → May 1 is 10 of 30
    // days: 39.00 × 10/30 = 13.00 now, periods from May 1 on the 1st.
    let calendar = bill_group(&mut c, &firm, &customer, &pm, 1).await;
    let cal = c
        .subscriptions
        .create_subscription(sub::CreateSubscriptionRequest { bill_group_id: calendar, ..order })
        .await
        .expect("calendar")
        .into_inner();
    let inv = cal.invoice.expect("invoice");
    assert_eq!(amt(&inv.amount), dec("13.00"));
    assert_eq!(inv.lines[0].proration_fraction, "0.333333");
    let cs = cal.subscription.expect("subscription");
    assert_eq!(secs(&cs.current_period_end), Some(day(2023, 5, 1).timestamp()));
    assert_eq!(cs.billing_anchor.map(|a| a.day), Some(1));
}

on_both_backends_at!(builton_sqlite, builton_postgres, builton_signs_up_a_user_with_a_card, day(2023, 4, 1));
on_both_backends_at!(
    maxio_sqlite,
    maxio_postgres,
    maxio_creates_by_handle_with_components_coupon_and_custom_price,
    day(2023, 4, 1)
);
on_both_backends_at!(
    botisimo_sqlite,
    botisimo_postgres,
    botisimo_changes_free_to_paid_with_the_amount_confirmed,
    day(2023, 4, 1)
);
on_both_backends_at!(billwerk_sqlite, billwerk_postgres, billwerk_orders_upgrades_and_terminates, day(2023, 4, 1));
