//! ListSubscriptions and ListInvoices over gRPC, on both backends: every
//! filter (states, account, offering, rate, product, coupon by code or id,
//! metadata, a date field within a datetime or date range), sorts either
//! way, keyset pages that stay correct while rows are added, bad input
//! named, and another tenant's rows never listed.

use std::collections::BTreeSet;

use recur_e2e::{Clients, TestApp, create_monthly_plan, details, on_both_backends};
use recur_proto::common::v1 as common;
use recur_proto::subscription::v1 as sub;
use tonic::Code;

async fn list(c: &mut Clients, r: sub::ListSubscriptionsRequest) -> Vec<String> {
    let page = c.subscriptions.list_subscriptions(r).await.expect("list").into_inner();
    page.subscriptions.into_iter().map(|s| s.id).collect()
}

async fn every_page(c: &mut Clients, mut r: sub::ListSubscriptionsRequest) -> Vec<String> {
    let mut ids = Vec::new();
    loop {
        let page = c.subscriptions.list_subscriptions(r.clone()).await.expect("page").into_inner();
        ids.extend(page.subscriptions.into_iter().map(|s| s.id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        r.page_token = page.next_page_token;
    }
}

async fn lists(app: &TestApp) {
    let mut c = app.clients("acme");
    let plan = create_monthly_plan(&mut c, "100", None).await;
    let coupon = recur_e2e::percent_coupon(&mut c, "SAVE10", "10").await;
    let (a1, bg1) = recur_e2e::remittance_account(&mut c, "Acme One").await;
    let (a2, bg2) = recur_e2e::remittance_account(&mut c, "Acme Two").await;
    let before = chrono::Utc::now();
    let mut made = Vec::new();
    // Five subscriptions: two pending, one with the coupon, two tagged.
    for (i, (account, bg)) in [(&a1, &bg1), (&a1, &bg1), (&a2, &bg2), (&a2, &bg2), (&a2, &bg2)].into_iter().enumerate()
    {
        let s = c
            .subscriptions
            .create_subscription(sub::CreateSubscriptionRequest {
                account_id: account.clone(),
                bill_group_id: bg.clone(),
                offering: plan.offering_id.clone(),
                rate: plan.rate_id.clone(),
                pending: i < 2,
                coupon_codes: if i == 2 { vec!["SAVE10".into()] } else { vec![] },
                metadata: if i >= 3 {
                    [("channel".to_string(), "partner".to_string())].into()
                } else {
                    Default::default()
                },
                ..Default::default()
            })
            .await
            .expect("create")
            .into_inner()
            .subscription
            .expect("subscription");
        made.push(s.id);
    }
    let after = chrono::Utc::now();
    let all: BTreeSet<String> = made.iter().cloned().collect();
    let set = |ids: Vec<String>| ids.into_iter().collect::<BTreeSet<_>>();
    let req = sub::ListSubscriptionsRequest::default;

    assert_eq!(set(list(&mut c, req()).await), all);
    let pending =
        list(&mut c, sub::ListSubscriptionsRequest { states: vec![sub::SubscriptionState::Pending as i32], ..req() })
            .await;
    assert_eq!(set(pending), set(made[..2].to_vec()));
    let both = vec![sub::SubscriptionState::Pending as i32, sub::SubscriptionState::Active as i32];
    assert_eq!(set(list(&mut c, sub::ListSubscriptionsRequest { states: both, ..req() }).await), all);
    assert_eq!(
        set(list(&mut c, sub::ListSubscriptionsRequest { account_id: a1.clone(), ..req() }).await),
        set(made[..2].to_vec())
    );
    for r in [
        sub::ListSubscriptionsRequest { offering_id: plan.offering_id.clone(), ..req() },
        sub::ListSubscriptionsRequest { rate_id: plan.rate_id.clone(), ..req() },
        sub::ListSubscriptionsRequest { product_id: plan.product_id.clone(), ..req() },
    ] {
        assert_eq!(set(list(&mut c, r).await), all);
    }
    assert!(
        list(&mut c, sub::ListSubscriptionsRequest { product_id: "prod_none00000000000".into(), ..req() })
            .await
            .is_empty()
    );
    for code_or_id in ["SAVE10".to_string(), coupon.id.clone()] {
        let got = list(&mut c, sub::ListSubscriptionsRequest { coupon: code_or_id.clone(), ..req() }).await;
        assert_eq!(got, vec![made[2].clone()], "coupon {code_or_id}");
    }
    let tagged =
        sub::ListSubscriptionsRequest { metadata: [("channel".to_string(), "partner".to_string())].into(), ..req() };
    assert_eq!(set(list(&mut c, tagged).await), set(made[3..].to_vec()));

    // A datetime range, and the same as dates (today, in the tenant's zone).
    let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    };
    let created = |start_time, end_time| sub::ListSubscriptionsRequest {
        date_field: sub::SubscriptionDateField::CreateTime as i32,
        start_time,
        end_time,
        ..req()
    };
    let window =
        created(Some(ts(before - chrono::Duration::seconds(1))), Some(ts(after + chrono::Duration::seconds(1))));
    assert_eq!(set(list(&mut c, window).await), all);
    assert!(list(&mut c, created(Some(ts(after + chrono::Duration::seconds(60))), None)).await.is_empty());
    let today = chrono::Utc::now().date_naive();
    let by_date = |from: chrono::NaiveDate, to: chrono::NaiveDate| sub::ListSubscriptionsRequest {
        date_field: sub::SubscriptionDateField::CreateTime as i32,
        start_date: from.format("%Y-%m-%d").to_string(),
        end_date: to.format("%Y-%m-%d").to_string(),
        ..req()
    };
    // The tenant's zone is UTC unless set: a day's window may straddle a
    // date change while the test runs, so take yesterday through tomorrow.
    let (y, t) = (today.pred_opt().expect("date"), today.succ_opt().expect("date"));
    assert_eq!(set(list(&mut c, by_date(y, t)).await), all);
    let (far, farther) = (today + chrono::Duration::days(10), today + chrono::Duration::days(11));
    assert!(list(&mut c, by_date(far, farther)).await.is_empty());

    // Sorted by id either way; pages of 2 cover everything once, also when a
    // row is added between pages.
    let by_id = |direction: common::SortDirection| sub::ListSubscriptionsRequest {
        sort: sub::SubscriptionSort::Id as i32,
        direction: direction as i32,
        ..req()
    };
    let mut sorted: Vec<String> = all.iter().cloned().collect();
    assert_eq!(list(&mut c, by_id(common::SortDirection::Asc)).await, sorted);
    sorted.reverse();
    assert_eq!(list(&mut c, by_id(common::SortDirection::Desc)).await, sorted);
    let first = c
        .subscriptions
        .list_subscriptions(sub::ListSubscriptionsRequest { page_size: 2, ..req() })
        .await
        .expect("page")
        .into_inner();
    assert_eq!(first.subscriptions.len(), 2);
    let late = c
        .subscriptions
        .create_subscription(sub::CreateSubscriptionRequest {
            account_id: a1.clone(),
            bill_group_id: bg1.clone(),
            offering: plan.offering_id.clone(),
            rate: plan.rate_id.clone(),
            ..Default::default()
        })
        .await
        .expect("late")
        .into_inner()
        .subscription
        .expect("late");
    let mut seen: Vec<String> = first.subscriptions.into_iter().map(|s| s.id).collect();
    seen.extend(
        every_page(&mut c, sub::ListSubscriptionsRequest { page_size: 2, page_token: first.next_page_token, ..req() })
            .await,
    );
    assert_eq!(seen.len(), 6, "no row twice, none lost: {seen:?}");
    assert_eq!(seen.last(), Some(&late.id), "the newest comes last in creation order");
    for direction in [common::SortDirection::Asc, common::SortDirection::Desc] {
        for sort in [
            sub::SubscriptionSort::UpdateTime,
            sub::SubscriptionSort::ActivateTime,
            sub::SubscriptionSort::NextBillingTime,
        ] {
            let r =
                sub::ListSubscriptionsRequest { page_size: 2, sort: sort as i32, direction: direction as i32, ..req() };
            let got = every_page(&mut c, r).await;
            assert_eq!(got.len(), 6, "{sort:?} {direction:?}: {got:?}");
            assert_eq!(set(got), set(seen.clone()));
        }
    }

    // Bad input, named.
    for (r, field) in [
        (sub::ListSubscriptionsRequest { states: vec![99], ..req() }, "states[0]"),
        (sub::ListSubscriptionsRequest { start_date: "2024-02-30".into(), date_field: 1, ..req() }, "start_date"),
        (sub::ListSubscriptionsRequest { start_date: "2024-02-01".into(), ..req() }, "date_field"),
        (sub::ListSubscriptionsRequest { page_token: "garbage".into(), ..req() }, "page_token"),
        (sub::ListSubscriptionsRequest { sort: 42, ..req() }, "sort"),
        (sub::ListSubscriptionsRequest { page_size: -1, ..req() }, "page_size"),
    ] {
        let err = c.subscriptions.list_subscriptions(r).await.expect_err(field);
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(details(&err).fields, vec![field.to_string()]);
    }

    // Another tenant lists nothing of these.
    let mut globex = app.clients("globex");
    assert!(list(&mut globex, req()).await.is_empty());
    assert!(list(&mut globex, sub::ListSubscriptionsRequest { account_id: a1.clone(), ..req() }).await.is_empty());

    // Invoices: the active subscriptions' first invoices, by subscription,
    // account and status.
    let invoices = |r: sub::ListInvoicesRequest| {
        let mut c = app.clients("acme");
        async move { c.invoices.list_invoices(r).await.expect("invoices").into_inner().invoices }
    };
    assert_eq!(invoices(sub::ListInvoicesRequest::default()).await.len(), 4, "one per active subscription");
    let of = invoices(sub::ListInvoicesRequest { subscription_id: made[2].clone(), ..Default::default() }).await;
    assert_eq!(of.len(), 1);
    assert_eq!(of[0].subscription_id, made[2]);
    assert_eq!(invoices(sub::ListInvoicesRequest { account_id: a2.clone(), ..Default::default() }).await.len(), 3);
    assert_eq!(
        invoices(sub::ListInvoicesRequest { status: sub::InvoiceStatus::Open as i32, ..Default::default() })
            .await
            .len(),
        4
    );
    assert!(
        invoices(sub::ListInvoicesRequest { status: sub::InvoiceStatus::Paid as i32, ..Default::default() })
            .await
            .is_empty()
    );
    let paged = c
        .invoices
        .list_invoices(sub::ListInvoicesRequest { page_size: 3, ..Default::default() })
        .await
        .expect("page")
        .into_inner();
    assert_eq!(paged.invoices.len(), 3);
    let rest = c
        .invoices
        .list_invoices(sub::ListInvoicesRequest { page_token: paged.next_page_token, ..Default::default() })
        .await
        .expect("rest")
        .into_inner();
    assert_eq!(rest.invoices.len(), 1);
    let err = c
        .invoices
        .list_invoices(sub::ListInvoicesRequest { status: 77, ..Default::default() })
        .await
        .expect_err("status");
    assert_eq!(details(&err).fields, vec!["status"]);
    assert!(
        globex
            .invoices
            .list_invoices(sub::ListInvoicesRequest::default())
            .await
            .expect("other")
            .into_inner()
            .invoices
            .is_empty()
    );
}

on_both_backends!(lists_sqlite, lists_postgres, lists);
