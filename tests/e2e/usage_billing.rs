//! Usage billed in arrears over gRPC on both backends: METERED products
//! carry their aggregation in the catalog (SUM, COUNT, MAX, UNIQUE_COUNT of
//! a property, LATEST; refused where it makes no sense), each period's
//! aggregate is rated by pricing at the period end and invoiced with the
//! next period's in-advance lines (billwerk's metered usage in arrears),
//! usage that arrives during the grace period still counts, the running
//! period is shown by GetUsageSummary, and a rate billed in arrears is
//! invoiced at the end of each period, the last one included when the
//! subscription is canceled at its end (MonetizeNow's in-arrears rate).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use recur_e2e::clock::{advance, amount, at, enable, time, ts};
use recur_e2e::{Clients, TestApp, details, flat_price, per_unit_price};
use recur_proto::catalog::v1 as cat;
use recur_proto::pricing::v1 as pricing;
use recur_proto::subscription::v1 as sub;
use rust_decimal::Decimal;
use tonic::Code;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("decimal")
}

async fn product(
    c: &mut Clients,
    name: &str,
    kind: cat::ProductKind,
    aggregation: cat::UsageAggregation,
    property: &str,
) -> Result<cat::Product, tonic::Status> {
    let r = c
        .catalog
        .create_product(cat::CreateProductRequest {
            product: Some(cat::Product {
                name: name.into(),
                kind: kind as i32,
                aggregation: aggregation as i32,
                aggregation_property: property.into(),
                ..Default::default()
            }),
        })
        .await?;
    Ok(r.into_inner().product.expect("product"))
}

/// A licensed (RECURRING) product named `name`.
async fn licensed(c: &mut Clients, name: &str) -> cat::Product {
    product(c, name, cat::ProductKind::Recurring, cat::UsageAggregation::Unspecified, "").await.expect(name)
}

/// A METERED product named `name` whose usage adds up (SUM).
async fn summed(c: &mut Clients, name: &str) -> cat::Product {
    product(c, name, cat::ProductKind::Metered, cat::UsageAggregation::Sum, "").await.expect(name)
}

/// An offering of `prices` (product, model price) and its monthly rate.
async fn plan(c: &mut Clients, handle: &str, timing: cat::BillingTiming, prices: Vec<cat::Price>) -> (String, String) {
    recur_e2e::monthly_offering(c, handle, handle, &format!("{handle} monthly"), timing, prices).await
}

async fn subscribe(c: &mut Clients, account: &str, bg: &str, offering: &str, rate: &str) -> sub::Subscription {
    subscribe_with_coupons(c, (account, bg), offering, rate, &[]).await
}

async fn subscribe_with_coupons(
    c: &mut Clients,
    (account, bg): (&str, &str),
    offering: &str,
    rate: &str,
    coupons: &[&str],
) -> sub::Subscription {
    c.subscriptions
        .create_subscription(sub::CreateSubscriptionRequest {
            account_id: account.into(),
            bill_group_id: bg.into(),
            offering: offering.into(),
            rate: rate.into(),
            coupon_codes: coupons.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner()
        .subscription
        .expect("subscription")
}

async fn cancel_at_end_of_term(c: &mut Clients, id: &str) {
    c.subscriptions
        .cancel_subscription(sub::CancelSubscriptionRequest {
            id: id.into(),
            timing: sub::CancelTiming::EndOfTerm as i32,
            ..Default::default()
        })
        .await
        .expect("cancel at the end of the term");
}

fn event(id: &str, product: &str, quantity: &str, at: DateTime<Utc>, user: Option<&str>) -> sub::UsageRecord {
    sub::UsageRecord {
        product_id: product.into(),
        quantity: quantity.into(),
        event_time: Some(ts(at)),
        event_id: id.into(),
        properties: user.map(|u| ("user".to_string(), u.to_string())).into_iter().collect(),
    }
}

async fn record(c: &mut Clients, subscription: &str, records: Vec<sub::UsageRecord>) -> sub::RecordUsageResponse {
    c.subscriptions
        .record_usage(sub::RecordUsageRequest { subscription_id: subscription.into(), records, ..Default::default() })
        .await
        .expect("usage")
        .into_inner()
}

async fn invoices(c: &mut Clients, subscription: &str) -> Vec<sub::Invoice> {
    let r = c
        .invoices
        .list_invoices(sub::ListInvoicesRequest {
            subscription_id: subscription.into(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    let mut all = r.invoices;
    let seconds = |t: &Option<prost_types::Timestamp>| t.as_ref().map(|t| t.seconds);
    all.sort_by_key(|i| (seconds(&i.period_start), seconds(&i.create_time)));
    all
}

/// A METERED product's aggregation is part of the catalog: SUM unless
/// given, a property only for (and required by) UNIQUE_COUNT, none on a
/// licensed product; RateUsage taxes what it rates when asked.
async fn the_catalog_keeps_each_meters_aggregation(app: &TestApp) {
    let mut c = app.clients("acme");
    let sum =
        product(&mut c, "Calls", cat::ProductKind::Metered, cat::UsageAggregation::Unspecified, "").await.expect("sum");
    assert_eq!(sum.aggregation, cat::UsageAggregation::Sum as i32, "SUM unless given");
    let unique = product(&mut c, "Users", cat::ProductKind::Metered, cat::UsageAggregation::UniqueCount, "user")
        .await
        .expect("unique count");
    let got = c
        .catalog
        .get_product(cat::GetProductRequest { lookup: Some(cat::get_product_request::Lookup::Id(unique.id.clone())) })
        .await
        .expect("get")
        .into_inner()
        .product
        .expect("product");
    assert_eq!(
        (got.aggregation, got.aggregation_property.as_str()),
        (cat::UsageAggregation::UniqueCount as i32, "user")
    );
    let refusals = [
        (cat::ProductKind::Recurring, cat::UsageAggregation::Max, "", "product.aggregation"),
        (cat::ProductKind::Metered, cat::UsageAggregation::UniqueCount, "", "product.aggregation_property"),
        (cat::ProductKind::Metered, cat::UsageAggregation::Sum, "user", "product.aggregation_property"),
    ];
    for (kind, aggregation, property, field) in refusals {
        let err = product(&mut c, "Bad", kind, aggregation, property).await.expect_err("refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{kind:?} {aggregation:?} {property:?}");
        assert_eq!(details(&err).fields, vec![field.to_string()], "{kind:?} {aggregation:?} {property:?}");
    }

    // RateUsage: 12 calls at 0.25 = 3.00, with 10% tax in California.
    let (_, rate) = plan(&mut c, "calls", cat::BillingTiming::InAdvance, vec![per_unit_price(&sum.id, "0.25")]).await;
    recur_e2e::set_ca_tax(&mut c, "10").await;
    let rated = c
        .pricing
        .rate_usage(pricing::RateUsageRequest {
            rate_id: rate.clone(),
            product_id: sum.id.clone(),
            quantity: "12".into(),
            tax_address: Some(recur_proto::common::v1::Address {
                country: "US".into(),
                state: "CA".into(),
                ..Default::default()
            }),
            compute_tax: true,
            ..Default::default()
        })
        .await
        .expect("rate usage")
        .into_inner();
    assert_eq!(
        (amount(&rated.amount), amount(&rated.amount_without_tax), amount(&rated.tax), amount(&rated.total)),
        (d("3.00"), d("3.00"), d("0.30"), d("3.30"))
    );
    assert_eq!(rated.breakdown.expect("breakdown").tax_rate, "10");
    let err = c
        .pricing
        .rate_usage(pricing::RateUsageRequest {
            rate_id: rate,
            product_id: sum.id,
            quantity: "12".into(),
            compute_tax: true,
            ..Default::default()
        })
        .await
        .expect_err("no address");
    assert_eq!(details(&err).fields, vec!["tax_address.country".to_string()]);
}

/// billwerk's metered usage billed in arrears: a platform fee in advance
/// and one meter of each aggregation; March's usage is on the invoice of
/// April 1 with April's fee, late usage during the grace period included.
async fn metered_usage_is_billed_in_arrears(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 3, 1, 0)).await;
    let fee = licensed(&mut c, "Platform").await;
    let meters = [
        (cat::UsageAggregation::Sum, "", "0.50"),
        (cat::UsageAggregation::Count, "", "1.00"),
        (cat::UsageAggregation::Max, "", "3.00"),
        (cat::UsageAggregation::UniqueCount, "user", "5.00"),
        (cat::UsageAggregation::Latest, "", "7.00"),
    ];
    let mut ids = Vec::new();
    let mut prices = vec![flat_price(&fee.id, "10.00")];
    for (aggregation, property, unit) in meters {
        let p = product(&mut c, &format!("{aggregation:?}"), cat::ProductKind::Metered, aggregation, property)
            .await
            .expect("meter");
        prices.push(per_unit_price(&p.id, unit));
        ids.push(p.id);
    }
    let (offering, rate) = plan(&mut c, "metered", cat::BillingTiming::InAdvance, prices).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Metered").await;
    let s = subscribe(&mut c, &account, &bg, &offering, &rate).await;
    let first = invoices(&mut c, &s.id).await;
    assert_eq!(first.len(), 1);
    assert_eq!(amount(&first[0].amount), d("10.00"), "usage is not billed in advance");

    let (sum, count, max, unique, latest) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]);
    advance(&mut c, at(2024, 3, 25, 0)).await;
    let r = record(
        &mut c,
        &s.id,
        vec![
            event("s1", sum, "3", at(2024, 3, 2, 0), None),
            event("s2", sum, "4.5", at(2024, 3, 3, 0), None),
            event("c1", count, "1", at(2024, 3, 2, 0), None),
            event("c2", count, "1", at(2024, 3, 4, 0), None),
            event("c3", count, "9", at(2024, 3, 5, 0), None),
            event("m1", max, "2", at(2024, 3, 2, 0), None),
            event("m2", max, "6", at(2024, 3, 6, 0), None),
            event("m3", max, "4", at(2024, 3, 7, 0), None),
            event("u1", unique, "1", at(2024, 3, 2, 0), Some("alice")),
            event("u2", unique, "1", at(2024, 3, 3, 0), Some("bob")),
            event("u3", unique, "1", at(2024, 3, 4, 0), Some("alice")),
            event("u4", unique, "1", at(2024, 3, 5, 0), None),
            event("l1", latest, "5", at(2024, 3, 10, 0), None),
            event("l2", latest, "2", at(2024, 3, 20, 0), None),
            event("l3", latest, "8", at(2024, 3, 15, 0), None),
            event("s1", sum, "3", at(2024, 3, 2, 0), None),
        ],
    )
    .await;
    assert_eq!((r.accepted, r.duplicates), (15, 1));

    // The running period: SUM 7.5 x 0.50, COUNT 3 x 1, MAX 6 x 3, two
    // distinct users x 5, LATEST 2 x 7 (the last in time, not in order).
    let summary = c
        .subscriptions
        .get_usage_summary(sub::GetUsageSummaryRequest { subscription_id: s.id.clone() })
        .await
        .expect("summary")
        .into_inner();
    assert_eq!((time(&summary.period_start), time(&summary.period_end)), (at(2024, 3, 1, 0), at(2024, 4, 1, 0)));
    let got: Vec<(String, String, i64, Decimal)> = summary
        .lines
        .iter()
        .map(|l| (l.product_id.clone(), l.quantity.clone(), l.event_count, amount(&l.amount)))
        .collect();
    let want = vec![
        (sum.clone(), "7.5".to_string(), 2, d("3.75")),
        (count.clone(), "3".to_string(), 3, d("3.00")),
        (max.clone(), "6".to_string(), 3, d("18.00")),
        (unique.clone(), "2".to_string(), 4, d("10.00")),
        (latest.clone(), "2".to_string(), 3, d("14.00")),
    ];
    assert_eq!(got, want);
    assert_eq!(amount(&summary.amount), d("48.75"));
    assert_eq!(summary.lines[3].aggregation_property, "user");

    // The period closes on April 1; its invoice stays a draft for the
    // grace period (an hour), and usage of March that comes meanwhile
    // counts. An April event belongs to April.
    advance(&mut c, at(2024, 4, 1, 0) + chrono::Duration::minutes(30)).await;
    let draft = invoices(&mut c, &s.id).await;
    assert_eq!(draft.len(), 2);
    assert_eq!(draft[1].status, sub::InvoiceStatus::Draft as i32);
    assert_eq!(amount(&draft[1].amount), d("58.75"));
    let r = record(
        &mut c,
        &s.id,
        vec![
            event("s3", sum, "2", at(2024, 3, 31, 23), None),
            event("s4", sum, "1", at(2024, 4, 1, 0) + chrono::Duration::minutes(10), None),
        ],
    )
    .await;
    assert_eq!(r.accepted, 2);
    advance(&mut c, at(2024, 4, 1, 2)).await;
    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 2);
    let april = &all[1];
    assert_eq!(april.status, sub::InvoiceStatus::Paid as i32);
    let lines: Vec<Line> = april
        .lines
        .iter()
        .map(|l| {
            (
                l.product_id.clone(),
                l.kind,
                l.quantity.clone(),
                amount(&l.amount),
                time(&l.period_start),
                time(&l.period_end),
            )
        })
        .collect();
    let usage = sub::InvoiceLineKind::Usage as i32;
    let march =
        |p: &String, q: &str, a: &str| (p.clone(), usage, q.to_string(), d(a), at(2024, 3, 1, 0), at(2024, 4, 1, 0));
    assert_eq!(
        lines,
        vec![
            march(sum, "9.5", "4.75"),
            march(count, "3", "3.00"),
            march(max, "6", "18.00"),
            march(unique, "2", "10.00"),
            march(latest, "2", "14.00"),
            (
                fee.id.clone(),
                sub::InvoiceLineKind::Subscription as i32,
                "1".to_string(),
                d("10.00"),
                at(2024, 4, 1, 0),
                at(2024, 5, 1, 0)
            ),
        ]
    );
    assert_eq!(amount(&april.amount), d("59.75"), "lines add up to the total");
    // March is closed now: a late event is refused; April's summary has
    // April's event only.
    let r = record(&mut c, &s.id, vec![event("s5", sum, "1", at(2024, 3, 31, 0), None)]).await;
    assert_eq!(r.results[0].reason, "LATE_EVENT");
    let summary = c
        .subscriptions
        .get_usage_summary(sub::GetUsageSummaryRequest { subscription_id: s.id.clone() })
        .await
        .expect("summary")
        .into_inner();
    assert_eq!((summary.lines[0].quantity.as_str(), amount(&summary.amount)), ("1", d("0.50")));
    let err = c
        .subscriptions
        .get_usage_summary(sub::GetUsageSummaryRequest { subscription_id: "sub_nope".into() })
        .await
        .expect_err("no such subscription");
    assert_eq!(err.code(), Code::NotFound);

    // Canceled at the end of April: April's usage is on its own invoice,
    // and usage of April that comes during its grace period still counts.
    cancel_at_end_of_term(&mut c, &s.id).await;
    advance(&mut c, at(2024, 5, 1, 0) + chrono::Duration::minutes(30)).await;
    let r = record(&mut c, &s.id, vec![event("s6", sum, "2", at(2024, 4, 30, 23), None)]).await;
    assert_eq!(r.accepted, 1, "{:?}", r.results);
    advance(&mut c, at(2024, 5, 1, 2)).await;
    let all = invoices(&mut c, &s.id).await;
    let last = all.iter().find(|i| i.billing_reason == "period_close").expect("the last period's invoice");
    assert_eq!(last.status, sub::InvoiceStatus::Paid as i32);
    assert_eq!((time(&last.period_start), time(&last.period_end)), (at(2024, 4, 1, 0), at(2024, 5, 1, 0)));
    assert_eq!((last.lines[0].quantity.as_str(), amount(&last.amount)), ("3", d("1.50")), "1 + 2 late");
}

/// An invoice line as the tests compare it: product, kind, quantity,
/// amount, period.
type Line = (String, i32, String, Decimal, DateTime<Utc>, DateTime<Utc>);

/// MonetizeNow's in-arrears rate: nothing at the start, each period
/// invoiced at its end, and the last one too when the subscription is
/// canceled at the end of its term.
async fn an_in_arrears_rate_is_invoiced_at_each_period_end(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 1, 0)).await;
    let seat = licensed(&mut c, "Seat").await;
    let (offering, rate) =
        plan(&mut c, "arrears", cat::BillingTiming::InArrears, vec![flat_price(&seat.id, "30.00")]).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Arrears").await;
    let s = subscribe(&mut c, &account, &bg, &offering, &rate).await;
    assert!(invoices(&mut c, &s.id).await.is_empty(), "nothing is due at the start");
    advance(&mut c, at(2024, 2, 1, 2)).await;
    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 1);
    let jan = &all[0];
    assert_eq!((amount(&jan.amount), jan.status), (d("30.00"), sub::InvoiceStatus::Paid as i32));
    let line = &jan.lines[0];
    assert_eq!((time(&line.period_start), time(&line.period_end)), (at(2024, 1, 1, 0), at(2024, 2, 1, 0)));
    cancel_at_end_of_term(&mut c, &s.id).await;
    advance(&mut c, at(2024, 3, 1, 2)).await;
    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 2, "February is invoiced when the subscription ends");
    let feb = &all[1];
    assert_eq!((amount(&feb.amount), feb.status), (d("30.00"), sub::InvoiceStatus::Paid as i32));
    assert_eq!(feb.billing_reason, "period_close");
    assert_eq!((time(&feb.period_start), time(&feb.period_end)), (at(2024, 2, 1, 0), at(2024, 3, 1, 0)));
    let got = c.subscriptions.get_subscription(sub::GetSubscriptionRequest { id: s.id.clone() }).await;
    assert_eq!(
        got.expect("get").into_inner().subscription.expect("sub").state,
        sub::SubscriptionState::Canceled as i32
    );
    // Nothing more afterwards.
    advance(&mut c, at(2024, 5, 1, 2)).await;
    assert_eq!(invoices(&mut c, &s.id).await.len(), 2);
}

/// A subscription to usage alone has no invoice at its start; its first
/// period's usage is billed at its end, and usage of that period arriving
/// during the grace period still counts.
async fn usage_alone_counts_late_usage_of_the_first_period(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 1, 0)).await;
    let calls = summed(&mut c, "Calls").await;
    let (offering, rate) =
        plan(&mut c, "usage-only", cat::BillingTiming::InAdvance, vec![per_unit_price(&calls.id, "0.10")]).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Usage only").await;
    let s = subscribe(&mut c, &account, &bg, &offering, &rate).await;
    assert!(invoices(&mut c, &s.id).await.is_empty(), "nothing is due at the start");
    advance(&mut c, at(2024, 1, 20, 0)).await;
    assert_eq!(record(&mut c, &s.id, vec![event("j1", &calls.id, "30", at(2024, 1, 19, 0), None)]).await.accepted, 1);
    advance(&mut c, at(2024, 2, 1, 0) + chrono::Duration::minutes(30)).await;
    let late = record(&mut c, &s.id, vec![event("j2", &calls.id, "20", at(2024, 1, 31, 22), None)]).await;
    assert_eq!(late.accepted, 1, "{:?}", late.results);
    advance(&mut c, at(2024, 2, 1, 2)).await;
    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].lines[0].quantity.as_str(), amount(&all[0].amount)), ("50", d("5.00")));
    assert_eq!(all[0].status, sub::InvoiceStatus::Paid as i32);
}

/// Pauses subscription `id` at once.
async fn pause_now(c: &mut Clients, id: &str) {
    c.subscriptions
        .pause_subscription(sub::PauseSubscriptionRequest {
            id: id.into(),
            timing: sub::PauseTiming::Immediate as i32,
            ..Default::default()
        })
        .await
        .expect("pause now");
}

/// Subscription `id` as stored.
async fn get(c: &mut Clients, id: &str) -> sub::Subscription {
    let r = c.subscriptions.get_subscription(sub::GetSubscriptionRequest { id: id.into() }).await;
    r.expect("get").into_inner().subscription.expect("subscription")
}

/// A line as the tests compare it: product, quantity, fraction, amount.
fn shown(l: &sub::InvoiceLine) -> (String, String, String, Decimal) {
    (l.product_id.clone(), l.quantity.clone(), l.proration_fraction.clone(), amount(&l.amount))
}

/// An in-arrears rate (a seat at 31.00 a month and calls at 0.10 each)
/// and a subscription to it from Jan 1, 2024, paying by card: the
/// subscription, the seat's and the calls' product ids.
async fn in_arrears_subscription(c: &mut Clients, handle: &str) -> (sub::Subscription, String, String) {
    enable(c, at(2024, 1, 1, 0)).await;
    let seat = licensed(c, "Seat").await;
    let calls = summed(c, "Calls").await;
    let prices = vec![flat_price(&seat.id, "31.00"), per_unit_price(&calls.id, "0.10")];
    let (offering, rate) = plan(c, handle, cat::BillingTiming::InArrears, prices).await;
    let (account, bg) = recur_e2e::card_account(c, handle).await;
    (subscribe(c, &account, &bg, &offering, &rate).await, seat.id, calls.id)
}

/// An immediate cancellation ends the period where it is: its usage so far
/// and its in-arrears seat, prorated by the days used (10 of 31), are
/// invoiced as a draft, late usage of that part counted during the grace
/// period, then finalized and charged; nothing is invoiced afterwards.
async fn an_immediate_cancellation_invoices_the_period_so_far(app: &TestApp) {
    let mut c = app.clients("acme");
    let (s, seat, calls) = in_arrears_subscription(&mut c, "cancel-now").await;
    advance(&mut c, at(2024, 1, 11, 15)).await;
    assert_eq!(record(&mut c, &s.id, vec![event("c1", &calls, "30", at(2024, 1, 5, 0), None)]).await.accepted, 1);
    let canceled = c
        .subscriptions
        .cancel_subscription(sub::CancelSubscriptionRequest {
            id: s.id.clone(),
            timing: sub::CancelTiming::Immediate as i32,
            ..Default::default()
        })
        .await
        .expect("cancel now")
        .into_inner();
    assert_eq!(canceled.subscription.expect("sub").state, sub::SubscriptionState::Canceled as i32);
    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 1, "the part of January used");
    let part = &all[0];
    assert_eq!((part.status, part.billing_reason.as_str()), (sub::InvoiceStatus::Draft as i32, "period_close"));
    assert_eq!((time(&part.period_start), time(&part.period_end)), (at(2024, 1, 1, 0), at(2024, 1, 11, 15)));
    let mut lines: Vec<_> = part.lines.iter().map(shown).collect();
    lines.sort();
    let mut want = vec![
        (seat.clone(), "1".to_string(), "0.322581".to_string(), d("10.00")),
        (calls.clone(), "30".to_string(), "1".to_string(), d("3.00")),
    ];
    want.sort();
    assert_eq!(lines, want);
    assert_eq!(amount(&part.amount), d("13.00"));
    // Usage of that part arriving during the grace period counts.
    advance(&mut c, at(2024, 1, 11, 15) + chrono::Duration::minutes(30)).await;
    let late = record(&mut c, &s.id, vec![event("c2", &calls, "20", at(2024, 1, 11, 14), None)]).await;
    assert_eq!(late.accepted, 1, "{:?}", late.results);
    advance(&mut c, at(2024, 1, 11, 17)).await;
    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].status, amount(&all[0].amount)),
        (sub::InvoiceStatus::Paid as i32, d("15.00")),
        "10 + 50 × 0.10"
    );
    assert!(!all[0].number.is_empty());
    advance(&mut c, at(2024, 4, 1, 2)).await;
    assert_eq!(invoices(&mut c, &s.id).await.len(), 1, "nothing after the end");
}

/// An immediate pause credits the unused part of the paid fee and
/// invoices the period's usage so far; that invoice takes the credit.
async fn an_immediate_pause_invoices_the_usage_so_far(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 1, 0)).await;
    let fee = licensed(&mut c, "Fee").await;
    let calls = summed(&mut c, "Calls").await;
    let prices = vec![flat_price(&fee.id, "31.00"), per_unit_price(&calls.id, "0.10")];
    let (offering, rate) = plan(&mut c, "pause-now", cat::BillingTiming::InAdvance, prices).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Pause now").await;
    let s = subscribe(&mut c, &account, &bg, &offering, &rate).await;
    advance(&mut c, at(2024, 1, 11, 12)).await;
    assert_eq!(record(&mut c, &s.id, vec![event("p1", &calls.id, "40", at(2024, 1, 3, 0), None)]).await.accepted, 1);
    pause_now(&mut c, &s.id).await;
    assert_eq!(get(&mut c, &s.id).await.state, sub::SubscriptionState::Paused as i32);
    let all = invoices(&mut c, &s.id).await;
    let reasons: Vec<&str> = all.iter().map(|i| i.billing_reason.as_str()).collect();
    assert!(reasons.contains(&"period_close"), "{reasons:?}");
    let part = all.iter().find(|i| i.billing_reason == "period_close").expect("the usage so far");
    assert_eq!((time(&part.period_start), time(&part.period_end)), (at(2024, 1, 1, 0), at(2024, 1, 11, 12)));
    assert_eq!(
        part.lines.iter().map(shown).collect::<Vec<_>>(),
        vec![(calls.id.clone(), "40".into(), "1".into(), d("4.00"))]
    );
    advance(&mut c, at(2024, 1, 11, 14)).await;
    let all = invoices(&mut c, &s.id).await;
    let part = all.iter().find(|i| i.billing_reason == "period_close").expect("the usage so far");
    // Paid by the credit for the unused 21 days of the fee.
    assert_eq!((part.status, amount(&part.amount)), (sub::InvoiceStatus::Paid as i32, d("4.00")));
    assert_eq!(amount(&part.credit_applied), d("4.00"));
}

/// Dunning's final action that cancels the subscription invoices the
/// usage of the period so far, like a cancellation by the customer.
async fn a_cancellation_by_dunning_invoices_the_usage_so_far(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 1, 0)).await;
    recur_e2e::set_dunning(&mut c, &[2], cat::DunningFinalAction::CancelSubscription).await;
    let fee = licensed(&mut c, "Fee").await;
    let calls = summed(&mut c, "Calls").await;
    let prices = vec![flat_price(&fee.id, "20.00"), per_unit_price(&calls.id, "0.10")];
    let (offering, rate) = plan(&mut c, "unpaid", cat::BillingTiming::InAdvance, prices).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Unpaid").await;
    let s = subscribe(&mut c, &account, &bg, &offering, &rate).await;
    recur_e2e::switch_card(&mut c, &bg, "tok_insufficient_funds").await;
    advance(&mut c, at(2024, 2, 2, 12)).await;
    assert_eq!(record(&mut c, &s.id, vec![event("u1", &calls.id, "10", at(2024, 2, 2, 0), None)]).await.accepted, 1);
    let done = advance(&mut c, at(2024, 2, 4, 0)).await;
    let ended: Vec<_> = done.actions.iter().filter(|a| a.kind == "dunning_ended").collect();
    assert_eq!(ended.len(), 1, "{:?}", done.actions);
    let canceled = get(&mut c, &s.id).await;
    assert_eq!(canceled.state, sub::SubscriptionState::Canceled as i32);
    let all = invoices(&mut c, &s.id).await;
    let part = all.iter().find(|i| i.billing_reason == "period_close").expect("February so far");
    assert_eq!((time(&part.period_start), time(&part.period_end)), (at(2024, 2, 1, 0), time(&canceled.expire_time)));
    assert_eq!(
        part.lines.iter().map(shown).collect::<Vec<_>>(),
        vec![(calls.id.clone(), "10".into(), "1".into(), d("1.00"))]
    );
}

/// A first period shortened by the bill group's billing day bills an
/// in-arrears seat for the days it had (22 of January's 31), then whole
/// months.
async fn a_shortened_first_period_prorates_an_in_arrears_seat(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 10, 0)).await;
    let seat = licensed(&mut c, "Seat").await;
    let (offering, rate) =
        plan(&mut c, "calendar-arrears", cat::BillingTiming::InArrears, vec![flat_price(&seat.id, "31.00")]).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Calendar arrears").await;
    c.accounts
        .update_bill_group(sub::UpdateBillGroupRequest {
            bill_group: Some(sub::BillGroup { id: bg.clone(), billing_day: 1, ..Default::default() }),
            update_mask: Some(recur_e2e::mask(&["billing_day"])),
        })
        .await
        .expect("billing day");
    let s = subscribe(&mut c, &account, &bg, &offering, &rate).await;
    assert_eq!(time(&s.current_period_end), at(2024, 2, 1, 0));
    advance(&mut c, at(2024, 3, 1, 2)).await;
    let all = invoices(&mut c, &s.id).await;
    let got: Vec<_> = all.iter().map(|i| (time(&i.lines[0].period_start), shown(&i.lines[0]))).collect();
    assert_eq!(
        got,
        vec![
            (at(2024, 1, 10, 0), (seat.id.clone(), "1".into(), "0.709677".into(), d("22.00"))),
            (at(2024, 2, 1, 0), (seat.id.clone(), "1".into(), "1".into(), d("31.00"))),
        ]
    );
}

/// An immediate change to a rate with another billing period starts a new
/// period on the day of the change: the old period's usage until then is
/// invoiced at the old contract, the usage after it waits for the new
/// period.
async fn an_immediate_change_of_period_invoices_the_old_periods_usage(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 1, 0)).await;
    let fee = licensed(&mut c, "Fee").await;
    let calls = summed(&mut c, "Calls").await;
    let (offering, monthly) = plan(
        &mut c,
        "change-now",
        cat::BillingTiming::InAdvance,
        vec![flat_price(&fee.id, "31.00"), per_unit_price(&calls.id, "0.10")],
    )
    .await;
    let yearly = c
        .catalog
        .create_rate(cat::CreateRateRequest {
            rate: Some(cat::Rate {
                offering_id: offering.clone(),
                name: "change-now yearly".into(),
                currency_code: "USD".into(),
                billing_period: Some(cat::BillingPeriod { unit: cat::PeriodUnit::Year as i32, count: 1 }),
                timing: cat::BillingTiming::InAdvance as i32,
                prices: vec![flat_price(&fee.id, "310.00"), per_unit_price(&calls.id, "0.05")],
                ..Default::default()
            }),
        })
        .await
        .expect("yearly rate")
        .into_inner()
        .rate
        .expect("rate")
        .id;
    let (account, bg) = recur_e2e::card_account(&mut c, "Change now").await;
    let s = subscribe(&mut c, &account, &bg, &offering, &monthly).await;
    advance(&mut c, at(2024, 1, 11, 12)).await;
    let usage = vec![
        event("m1", &calls.id, "25", at(2024, 1, 5, 0), None),
        // The day of the change belongs to the new period.
        event("m2", &calls.id, "7", at(2024, 1, 11, 6), None),
    ];
    assert_eq!(record(&mut c, &s.id, usage).await.accepted, 2);
    let changed = c
        .subscriptions
        .change_subscription(sub::ChangeSubscriptionRequest {
            id: s.id.clone(),
            change: Some(sub::SubscriptionChange {
                rate: yearly.clone(),
                items: vec![],
                timing: pricing::ChangeTiming::Immediate as i32,
            }),
            cancel_scheduled_change: false,
        })
        .await
        .expect("change now")
        .into_inner();
    let y = changed.subscription.expect("subscription");
    assert_eq!((y.rate_id.as_str(), time(&y.current_period_start)), (yearly.as_str(), at(2024, 1, 11, 0)));
    // The metered product stays on the contract (its quantity is its usage).
    assert!(y.items.iter().any(|i| i.product_id == calls.id && i.quantity == "0"), "{:?}", y.items);
    advance(&mut c, at(2024, 1, 11, 14)).await;
    let all = invoices(&mut c, &s.id).await;
    let part = all.iter().find(|i| i.billing_reason == "period_close").expect("the old period's usage");
    assert_eq!((time(&part.period_start), time(&part.period_end)), (at(2024, 1, 1, 0), at(2024, 1, 11, 0)));
    assert_eq!(
        part.lines.iter().map(shown).collect::<Vec<_>>(),
        vec![(calls.id.clone(), "25".into(), "1".into(), d("2.50"))]
    );
    assert_eq!(part.lines[0].rate_id, monthly, "rated at the old contract");
    assert_eq!(part.status, sub::InvoiceStatus::Paid as i32);
    // The new period so far: the 7 calls of the day of the change.
    let summary = c
        .subscriptions
        .get_usage_summary(sub::GetUsageSummaryRequest { subscription_id: s.id.clone() })
        .await
        .expect("summary")
        .into_inner();
    let line = summary.lines.iter().find(|l| l.product_id == calls.id).expect("calls");
    assert_eq!(line.quantity, "7");
}

/// A PERCENT coupon discounts the usage lines of each invoice it is in
/// force for, as it does the fee on the same invoice: 50% off for two
/// invoices takes half off the start invoice's fee, then half off both
/// January's usage (late usage of the grace period recounted at the same
/// discount) and February's fee, and nothing off the third invoice. A
/// FIXED_AMOUNT coupon smaller than the fee is spent on the fee.
async fn a_percent_coupon_discounts_usage_on_the_invoices_it_is_in_force_for(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 1, 0)).await;
    for (code, kind, percent, amounts) in [
        ("HALF", cat::DiscountType::Percent, "50", vec![]),
        (
            "ONEOFF",
            cat::DiscountType::FixedAmount,
            "",
            vec![recur_proto::common::v1::Money { currency_code: "USD".into(), amount: "1".into() }],
        ),
    ] {
        c.catalog
            .create_coupon(cat::CreateCouponRequest {
                coupon: Some(cat::Coupon {
                    code: code.into(),
                    name: code.into(),
                    discount_type: kind as i32,
                    percent_off: percent.into(),
                    amounts_off: amounts,
                    duration: cat::CouponDuration::Repeating as i32,
                    duration_periods: 2,
                    ..Default::default()
                }),
            })
            .await
            .expect("coupon");
    }
    let fee = licensed(&mut c, "Fee").await;
    let calls = summed(&mut c, "Calls").await;
    let prices = vec![flat_price(&fee.id, "10.00"), per_unit_price(&calls.id, "0.10")];
    let (offering, rate) = plan(&mut c, "coupon-usage", cat::BillingTiming::InAdvance, prices).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Coupon usage").await;
    let s = subscribe_with_coupons(&mut c, (&account, &bg), &offering, &rate, &["HALF", "ONEOFF"]).await;
    advance(&mut c, at(2024, 1, 20, 0)).await;
    assert_eq!(record(&mut c, &s.id, vec![event("h1", &calls.id, "100", at(2024, 1, 15, 0), None)]).await.accepted, 1);
    advance(&mut c, at(2024, 2, 1, 0) + chrono::Duration::minutes(30)).await;
    let late = record(&mut c, &s.id, vec![event("h2", &calls.id, "20", at(2024, 1, 31, 23), None)]).await;
    assert_eq!(late.accepted, 1, "{:?}", late.results);
    advance(&mut c, at(2024, 2, 20, 0)).await;
    assert_eq!(record(&mut c, &s.id, vec![event("h3", &calls.id, "100", at(2024, 2, 15, 0), None)]).await.accepted, 1);
    advance(&mut c, at(2024, 3, 1, 2)).await;
    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 3);
    let by_product = |inv: &sub::Invoice| {
        let mut l: Vec<(String, Decimal, Decimal)> = inv
            .lines
            .iter()
            .map(|l| (l.product_id.clone(), amount(&l.amount_without_tax), amount(&l.discount)))
            .collect();
        l.sort();
        l
    };
    let sorted = |mut v: Vec<(String, Decimal, Decimal)>| {
        v.sort();
        v
    };
    // The start: 10.00, half off, then 1.00 off.
    assert_eq!(by_product(&all[0]), vec![(fee.id.clone(), d("10.00"), d("6.00"))]);
    // February 1: January's 120 calls (12.00) half off; February's fee
    // half off and 1.00 off: the fixed coupon has nothing left for the
    // usage.
    assert_eq!(
        by_product(&all[1]),
        sorted(vec![(fee.id.clone(), d("10.00"), d("6.00")), (calls.id.clone(), d("12.00"), d("6.00"))])
    );
    assert_eq!((amount(&all[1].amount), all[1].status), (d("10.00"), sub::InvoiceStatus::Paid as i32));
    // March 1: both coupons spent.
    assert_eq!(
        by_product(&all[2]),
        sorted(vec![(fee.id.clone(), d("10.00"), d("0.00")), (calls.id.clone(), d("10.00"), d("0.00"))])
    );
    assert_eq!(amount(&all[2].amount), d("20.00"));
}

/// A FIXED_AMOUNT coupon `code` of 5.00 (USD) for `duration`.
async fn fixed_coupon(c: &mut Clients, code: &str, duration: cat::CouponDuration) {
    c.catalog
        .create_coupon(cat::CreateCouponRequest {
            coupon: Some(cat::Coupon {
                code: code.into(),
                name: format!("{code}: 5.00 off"),
                discount_type: cat::DiscountType::FixedAmount as i32,
                amounts_off: vec![recur_proto::common::v1::Money { currency_code: "USD".into(), amount: "5".into() }],
                duration: duration as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("coupon");
}

/// A FIXED_AMOUNT coupon takes its amount off each invoice it is in force
/// for, in-arrears lines included: what the in-advance lines leave of it
/// goes to the usage lines, one after another in the rate's order, and a
/// last period's invoice (no in-advance lines) has the whole amount.
async fn a_fixed_coupon_discounts_usage_with_what_the_fee_leaves(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 1, 0)).await;
    fixed_coupon(&mut c, "FIVE", cat::CouponDuration::Forever).await;
    let fee = licensed(&mut c, "Fee").await;
    let calls = summed(&mut c, "Calls").await;
    let storage = summed(&mut c, "Storage").await;
    let prices =
        vec![flat_price(&fee.id, "2.00"), per_unit_price(&calls.id, "0.10"), per_unit_price(&storage.id, "1.00")];
    let (offering, rate) = plan(&mut c, "fixed-usage", cat::BillingTiming::InAdvance, prices).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Fixed usage").await;
    let s = subscribe_with_coupons(&mut c, (&account, &bg), &offering, &rate, &["FIVE"]).await;
    advance(&mut c, at(2024, 1, 20, 0)).await;
    assert_eq!(record(&mut c, &s.id, vec![event("f1", &calls.id, "20", at(2024, 1, 15, 0), None)]).await.accepted, 1);
    // The renewal's draft is made with 20 calls (2.00, all off: 1.00 of the
    // coupon unused); 30 more come in its grace period and are counted when
    // it is finalized.
    advance(&mut c, at(2024, 2, 1, 0) + chrono::Duration::minutes(30)).await;
    let late = record(&mut c, &s.id, vec![event("f2", &calls.id, "30", at(2024, 1, 31, 23), None)]).await;
    assert_eq!(late.accepted, 1, "{:?}", late.results);
    advance(&mut c, at(2024, 2, 20, 0)).await;
    let feb = vec![
        event("f3", &calls.id, "10", at(2024, 2, 10, 0), None),
        event("f4", &storage.id, "4", at(2024, 2, 11, 0), None),
    ];
    assert_eq!(record(&mut c, &s.id, feb).await.accepted, 2);
    advance(&mut c, at(2024, 3, 1, 2)).await;
    cancel_at_end_of_term(&mut c, &s.id).await;
    advance(&mut c, at(2024, 3, 10, 0)).await;
    assert_eq!(record(&mut c, &s.id, vec![event("f5", &storage.id, "4", at(2024, 3, 5, 0), None)]).await.accepted, 1);
    advance(&mut c, at(2024, 4, 1, 2)).await;
    let all = invoices(&mut c, &s.id).await;
    let shown: Vec<_> = all.iter().map(|i| (i.billing_reason.clone(), i.period_start, i.amount.clone())).collect();
    // The start's 2.00 fee took 2.00 of the 5.00: nothing was due, so there
    // is no start invoice (and the rest is not carried over).
    assert_eq!(all.len(), 3, "Feb 1, Mar 1 and the last period's: {shown:?}");
    let lines = |inv: &sub::Invoice| -> Vec<(String, Decimal, Decimal)> {
        inv.lines.iter().map(|l| (l.product_id.clone(), amount(&l.amount_without_tax), amount(&l.discount))).collect()
    };
    let line = |p: &cat::Product, a: &str, off: &str| (p.id.clone(), d(a), d(off));
    // February 1: the fee takes 2.00 (its line shows, with nothing of it
    // due), January's calls the 3.00 left. The draft's 20 calls (2.00 off)
    // were recounted to 50 (5.00): 3.00 off, what the fee left, so 2.00 is
    // due.
    let mut got = lines(&all[0]);
    got.sort();
    let mut want = vec![line(&fee, "2.00", "2.00"), line(&calls, "5.00", "3.00"), line(&storage, "0.00", "0.00")];
    want.sort();
    assert_eq!(got, want);
    assert_eq!((amount(&all[0].amount), all[0].status), (d("2.00"), sub::InvoiceStatus::Paid as i32));
    // March 1: the fee 2.00, then February's calls (1.00) take 1.00 and
    // its storage (4.00) the last 2.00: exactly 5.00 off, 2.00 due.
    let mut got = lines(&all[1]);
    got.sort();
    let mut want = vec![line(&fee, "2.00", "2.00"), line(&calls, "1.00", "1.00"), line(&storage, "4.00", "2.00")];
    want.sort();
    assert_eq!(got, want);
    assert_eq!((amount(&all[1].discount), amount(&all[1].amount)), (d("5.00"), d("2.00")));
    // The last period's invoice has no fee: March's storage (4.00) takes
    // 4.00 of the whole 5.00 (more than a renewal's fee would leave).
    assert_eq!(all[2].billing_reason, "period_close");
    let storage_line = all[2].lines.iter().find(|l| l.product_id == storage.id).expect("storage line");
    assert_eq!((amount(&storage_line.amount_without_tax), amount(&storage_line.discount)), (d("4.00"), d("4.00")));
    assert_eq!(amount(&all[2].amount), d("0.00"));
}

/// A FIXED_AMOUNT coupon removed while a renewal's draft waits out its
/// grace period: the draft's recounted usage is billed without it, and
/// the draft is finalized and paid (not held up by the coupon it kept a
/// share of).
async fn a_draft_is_finalized_after_its_fixed_coupon_is_removed(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 1, 0)).await;
    fixed_coupon(&mut c, "FIVE", cat::CouponDuration::Forever).await;
    let calls = summed(&mut c, "Calls").await;
    let (offering, rate) =
        plan(&mut c, "fixed-removed", cat::BillingTiming::InAdvance, vec![per_unit_price(&calls.id, "0.10")]).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Fixed removed").await;
    let s = subscribe_with_coupons(&mut c, (&account, &bg), &offering, &rate, &["FIVE"]).await;
    advance(&mut c, at(2024, 1, 20, 0)).await;
    assert_eq!(record(&mut c, &s.id, vec![event("r1", &calls.id, "10", at(2024, 1, 15, 0), None)]).await.accepted, 1);
    advance(&mut c, at(2024, 2, 1, 0) + chrono::Duration::minutes(10)).await;
    let drafts = invoices(&mut c, &s.id).await;
    assert_eq!(drafts.len(), 1);
    assert_eq!(
        (drafts[0].status, amount(&drafts[0].discount)),
        (sub::InvoiceStatus::Draft as i32, d("1.00")),
        "the draft's 10 calls, all off"
    );
    c.subscriptions
        .remove_coupon(sub::RemoveCouponRequest { id: s.id.clone(), coupon_code: "FIVE".into() })
        .await
        .expect("remove the coupon");
    let late = record(&mut c, &s.id, vec![event("r2", &calls.id, "20", at(2024, 1, 31, 23), None)]).await;
    assert_eq!(late.accepted, 1, "{:?}", late.results);
    advance(&mut c, at(2024, 2, 1, 2)).await;
    let all = invoices(&mut c, &s.id).await;
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].status, amount(&all[0].discount), amount(&all[0].amount)),
        (sub::InvoiceStatus::Paid as i32, d("0.00"), d("3.00")),
        "30 calls at 0.10, without the removed coupon"
    );
}

/// The invoice of a period's last part counts as one of a coupon's
/// invoices: a ONCE FIXED_AMOUNT coupon applied mid-period is spent on the
/// usage an immediate pause invoices, and the start invoice of the resumed
/// subscription pays its fee in full.
async fn a_once_coupon_spent_on_a_last_part_is_not_spent_again(app: &TestApp) {
    let mut c = app.clients("acme");
    enable(&mut c, at(2024, 1, 1, 0)).await;
    fixed_coupon(&mut c, "ONCEFIVE", cat::CouponDuration::Once).await;
    let fee = licensed(&mut c, "Fee").await;
    let calls = summed(&mut c, "Calls").await;
    let prices = vec![flat_price(&fee.id, "31.00"), per_unit_price(&calls.id, "0.10")];
    let (offering, rate) = plan(&mut c, "once-last-part", cat::BillingTiming::InAdvance, prices).await;
    let (account, bg) = recur_e2e::card_account(&mut c, "Once last part").await;
    let s = subscribe(&mut c, &account, &bg, &offering, &rate).await;
    advance(&mut c, at(2024, 1, 11, 12)).await;
    c.subscriptions
        .apply_coupon(sub::ApplyCouponRequest { id: s.id.clone(), coupon_code: "ONCEFIVE".into() })
        .await
        .expect("apply the coupon");
    assert_eq!(record(&mut c, &s.id, vec![event("o1", &calls.id, "40", at(2024, 1, 3, 0), None)]).await.accepted, 1);
    pause_now(&mut c, &s.id).await;
    advance(&mut c, at(2024, 1, 20, 0)).await;
    c.subscriptions.resume_subscription(sub::ResumeSubscriptionRequest { id: s.id.clone() }).await.expect("resume");
    let all = invoices(&mut c, &s.id).await;
    let part = all.iter().find(|i| i.billing_reason == "period_close").expect("the usage so far");
    // 40 calls (4.00), all of it off: the coupon's whole amount was there.
    assert_eq!((amount(&part.lines[0].amount_without_tax), amount(&part.discount)), (d("4.00"), d("4.00")));
    // The resumed subscription's first invoice: the coupon was spent.
    let resumed = all
        .iter()
        .filter(|i| i.billing_reason == "subscription_create" && time(&i.period_start) >= at(2024, 1, 20, 0))
        .collect::<Vec<_>>();
    assert_eq!(resumed.len(), 1, "{all:?}");
    assert_eq!(amount(&resumed[0].discount), d("0.00"), "a ONCE coupon discounts one invoice");
}

/// RateUsage prorates a per-period product over part of a whole period it
/// is given (never a METERED one), and refuses a part outside the whole,
/// half a whole period, an unknown coupon and a coupon listed twice.
async fn rate_usage_prorates_a_part_of_a_period(app: &TestApp) {
    let mut c = app.clients("acme");
    let (s, seat, calls) = in_arrears_subscription(&mut c, "rate-part").await;
    let ask = |product: &str, end: DateTime<Utc>| pricing::RateUsageRequest {
        rate_id: s.rate_id.clone(),
        product_id: product.into(),
        quantity: "3".into(),
        period_start: Some(ts(at(2024, 1, 1, 0))),
        period_end: Some(ts(end)),
        full_period_start: Some(ts(at(2024, 1, 1, 0))),
        full_period_end: Some(ts(at(2024, 2, 1, 0))),
        time_zone: "UTC".into(),
        ..Default::default()
    };
    let r = c.pricing.rate_usage(ask(&seat, at(2024, 1, 11, 0))).await.expect("seat").into_inner();
    assert_eq!((amount(&r.amount), r.proration_fraction.as_str()), (d("10.00"), "0.322581"), "31.00 × 10/31");
    let r = c.pricing.rate_usage(ask(&calls, at(2024, 1, 11, 0))).await.expect("calls").into_inner();
    assert_eq!((amount(&r.amount), r.proration_fraction.as_str()), (d("0.30"), "1"), "usage is not prorated");
    let err = c.pricing.rate_usage(ask(&seat, at(2024, 2, 5, 0))).await.expect_err("outside");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(details(&err).fields, vec!["period_start".to_string()], "{err:?}");
    let mut unknown = ask(&calls, at(2024, 1, 11, 0));
    unknown.coupon_codes = vec!["NOPE".into()];
    let err = c.pricing.rate_usage(unknown).await.expect_err("unknown coupon");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(details(&err).fields, vec!["coupon_codes[0]".to_string()], "{err:?}");
    let mut twice = ask(&calls, at(2024, 1, 11, 0));
    twice.coupon_codes = vec!["NOPE".into(), "NOPE".into()];
    let err = c.pricing.rate_usage(twice).await.expect_err("a coupon twice");
    assert_eq!(details(&err).fields, vec!["coupon_codes[1]".to_string()], "{err:?}");
    let mut stray = ask(&calls, at(2024, 1, 11, 0));
    stray.fixed_amounts_left = vec![pricing::CouponAmount {
        code: "NOPE".into(),
        amount: Some(recur_proto::common::v1::Money { currency_code: "USD".into(), amount: "1".into() }),
    }];
    let err = c.pricing.rate_usage(stray).await.expect_err("a fixed amount left of no coupon of the request");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(details(&err).fields, vec!["fixed_amounts_left[0].code".to_string()], "{err:?}");
    let mut half = ask(&seat, at(2024, 1, 11, 0));
    half.full_period_end = None;
    let err = c.pricing.rate_usage(half).await.expect_err("half a whole period");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(details(&err).fields, vec!["full_period_end".to_string()], "{err:?}");
}

recur_e2e::on_both_backends!(
    cancel_now_sqlite,
    cancel_now_postgres,
    an_immediate_cancellation_invoices_the_period_so_far
);
recur_e2e::on_both_backends!(pause_now_sqlite, pause_now_postgres, an_immediate_pause_invoices_the_usage_so_far);
recur_e2e::on_both_backends!(
    shortened_sqlite,
    shortened_postgres,
    a_shortened_first_period_prorates_an_in_arrears_seat
);
recur_e2e::on_both_backends!(
    change_now_sqlite,
    change_now_postgres,
    an_immediate_change_of_period_invoices_the_old_periods_usage
);
recur_e2e::on_both_backends!(unpaid_sqlite, unpaid_postgres, a_cancellation_by_dunning_invoices_the_usage_so_far);
recur_e2e::on_both_backends!(
    coupon_usage_sqlite,
    coupon_usage_postgres,
    a_percent_coupon_discounts_usage_on_the_invoices_it_is_in_force_for
);
recur_e2e::on_both_backends!(
    fixed_coupon_usage_sqlite,
    fixed_coupon_usage_postgres,
    a_fixed_coupon_discounts_usage_with_what_the_fee_leaves
);
recur_e2e::on_both_backends!(
    fixed_coupon_removed_sqlite,
    fixed_coupon_removed_postgres,
    a_draft_is_finalized_after_its_fixed_coupon_is_removed
);
recur_e2e::on_both_backends!(
    once_last_part_sqlite,
    once_last_part_postgres,
    a_once_coupon_spent_on_a_last_part_is_not_spent_again
);
recur_e2e::on_both_backends!(rate_part_sqlite, rate_part_postgres, rate_usage_prorates_a_part_of_a_period);
recur_e2e::on_both_backends!(
    usage_alone_sqlite,
    usage_alone_postgres,
    usage_alone_counts_late_usage_of_the_first_period
);
recur_e2e::on_both_backends!(catalog_sqlite, catalog_postgres, the_catalog_keeps_each_meters_aggregation);
recur_e2e::on_both_backends!(metered_sqlite, metered_postgres, metered_usage_is_billed_in_arrears);
recur_e2e::on_both_backends!(arrears_sqlite, arrears_postgres, an_in_arrears_rate_is_invoiced_at_each_period_end);
