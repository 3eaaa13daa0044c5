//! The subscription service from outside, over gRPC, on both backends: the
//! three defects of issue 13's section 1. A create that fails leaves nothing
//! behind (and its retry makes one subscription); every contract keeps its
//! billing anchor; event sequences are a tenant's own, gap-free.

use recur_e2e::{Clients, TestApp, create_monthly_plan, details, on_both_backends};
use recur_proto::payment::v1 as pay;
use recur_proto::pricing::v1 as pricing;
use recur_proto::subscription::v1 as sub;
use tonic::Code;

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

async fn card(c: &mut Clients, customer: &str) -> String {
    recur_e2e::attach_card_as(c, customer, "tok_visa", true).await
}

async fn bill_group(c: &mut Clients, account_id: &str, customer: &str, pm: &str) -> String {
    c.accounts
        .create_bill_group(sub::CreateBillGroupRequest {
            bill_group: Some(sub::BillGroup {
                account_id: account_id.into(),
                gateway_customer_id: customer.into(),
                payment_method_id: pm.into(),
                collection_method: sub::CollectionMethod::Automatic as i32,
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

fn subscribe(account_id: &str, bill_group_id: &str, plan: &recur_e2e::Plan) -> sub::CreateSubscriptionRequest {
    sub::CreateSubscriptionRequest {
        account_id: account_id.into(),
        bill_group_id: bill_group_id.into(),
        offering: plan.offering_id.clone(),
        rate: plan.rate_id.clone(),
        ..Default::default()
    }
}

async fn event_types(c: &mut Clients) -> Vec<String> {
    let events = c.events.list_events(sub::ListEventsRequest { page_size: 200, ..Default::default() }).await;
    events.expect("events").into_inner().events.into_iter().map(|e| e.r#type).collect()
}

/// A bill group whose card was removed (in the billing portal) since it was
/// made: CreateSubscription used to leave an ACTIVE subscription with an
/// OPEN invoice and their events behind when the charge was refused.
async fn a_refused_create_leaves_nothing_behind(app: &TestApp) {
    let mut c = app.clients("acme");
    let plan = create_monthly_plan(&mut c, "100", None).await;
    let account_id = account(&mut c, "Acme Inc").await;
    let customer = c
        .payments
        .create_customer(pay::CreateCustomerRequest { email: "pat@acme.example".into(), ..Default::default() })
        .await
        .expect("customer")
        .into_inner()
        .customer
        .expect("customer")
        .id;
    let pm = card(&mut c, &customer).await;
    let bg = bill_group(&mut c, &account_id, &customer, &pm).await;

    // The customer removes the card in the portal (a real HTTP form post).
    let portal = c
        .payments
        .create_portal_session(pay::CreatePortalSessionRequest { customer_id: customer.clone(), ..Default::default() })
        .await
        .expect("portal")
        .into_inner()
        .url;
    let removed = recur_e2e::http_client()
        .post(format!("{portal}/remove"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("payment_method_id={pm}"))
        .send()
        .await
        .expect("remove");
    assert!(removed.status().is_redirection() || removed.status().is_success(), "{}", removed.status());

    let before = event_types(&mut c).await.len();
    let mut keyed = tonic::Request::new(subscribe(&account_id, &bg, &plan));
    keyed.metadata_mut().insert("idempotency-key", "order-1".parse().expect("ascii"));
    let err = c.subscriptions.create_subscription(keyed).await.expect_err("the card is gone");
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let d = details(&err);
    assert_eq!((d.reason.as_str(), d.fields), ("PAYMENT_METHOD_NOT_FOUND", vec!["bill_group_id".to_string()]));
    assert_eq!(app.count_rows("subscription", "subscriptions").await, 0, "a subscription was left");
    assert_eq!(app.count_rows("subscription", "invoices").await, 0, "an invoice was left");
    assert_eq!(app.count_rows("payment", "payments").await, 0, "a payment was made");
    assert_eq!(event_types(&mut c).await.len(), before, "events were left");

    // With a new card on a new bill group, the create (retried twice under
    // one key) makes one subscription and one charge.
    let pm2 = card(&mut c, &customer).await;
    let bg2 = bill_group(&mut c, &account_id, &customer, &pm2).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut keyed = tonic::Request::new(subscribe(&account_id, &bg2, &plan));
        keyed.metadata_mut().insert("idempotency-key", "order-2".parse().expect("ascii"));
        let done = c.subscriptions.create_subscription(keyed).await.expect("create").into_inner();
        let s = done.subscription.expect("subscription");
        assert_eq!(s.state, sub::SubscriptionState::Active as i32);
        ids.push((s.id, done.payment_id));
    }
    assert_eq!(ids[0], ids[1], "a retry returns the same subscription and payment");
    assert_eq!(app.count_rows("subscription", "subscriptions").await, 1);
    assert_eq!(app.count_rows("payment", "payments").await, 1, "one charge");
}

on_both_backends!(nothing_left_behind_sqlite, nothing_left_behind_postgres, a_refused_create_leaves_nothing_behind);

/// A contract that starts on Jan 31 keeps day 31: pricing, told the anchor,
/// renews Jan 31 → Feb 28 → Mar 31 (it used to answer Mar 28).
async fn contracts_keep_their_billing_anchor(app: &TestApp) {
    let mut c = app.clients("acme");
    let plan = create_monthly_plan(&mut c, "100", None).await;
    let account_id = account(&mut c, "Acme Inc").await;
    let bg = c
        .accounts
        .create_bill_group(sub::CreateBillGroupRequest {
            bill_group: Some(sub::BillGroup {
                account_id: account_id.clone(),
                collection_method: sub::CollectionMethod::Remittance as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("bill group")
        .into_inner()
        .bill_group
        .expect("bill group")
        .id;
    let s = c
        .subscriptions
        .create_subscription(sub::CreateSubscriptionRequest {
            start_date: "2023-01-31".into(),
            ..subscribe(&account_id, &bg, &plan)
        })
        .await
        .expect("create")
        .into_inner()
        .subscription
        .expect("subscription");
    let anchor = s.billing_anchor.expect("an anchor");
    assert_eq!((anchor.day, anchor.month), (31, 0));
    let got = c
        .subscriptions
        .get_subscription(sub::GetSubscriptionRequest { id: s.id.clone() })
        .await
        .expect("get")
        .into_inner()
        .subscription
        .expect("subscription");
    assert_eq!(got.billing_anchor, Some(anchor), "kept");

    // What pricing makes of it: the period after Jan 31..Feb 28 ends Mar 31.
    let ts = |day: &str| {
        let t = chrono::DateTime::parse_from_rfc3339(&format!("{day}T00:00:00Z")).expect("time");
        prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
    };
    let preview = c
        .pricing
        .preview_change(pricing::PreviewChangeRequest {
            current: Some(pricing::ContractState {
                offering_id: plan.offering_id.clone(),
                rate_id: plan.rate_id.clone(),
                period_start: Some(ts("2023-01-31")),
                period_end: Some(ts("2023-02-28")),
                billing_anchor: Some(anchor),
                ..Default::default()
            }),
            change: Some(pricing::ContractChange {
                timing: pricing::ChangeTiming::EndOfTerm as i32,
                ..Default::default()
            }),
            change_time: Some(ts("2023-02-10")),
            time_zone: "UTC".into(),
            ..Default::default()
        })
        .await
        .expect("preview")
        .into_inner();
    assert_eq!(preview.new_period_end, Some(ts("2023-03-31")));
}

on_both_backends!(anchors_sqlite, anchors_postgres, contracts_keep_their_billing_anchor);

/// `Event.sequence` was one counter for every tenant: a tenant could watch
/// another's activity. Now each tenant counts its own, from 1, without gaps.
async fn event_sequences_are_a_tenants_own(app: &TestApp) {
    let mut acme = app.clients("acme");
    let mut globex = app.clients("globex");
    for i in 0..3 {
        account(&mut acme, &format!("Acme {i}")).await;
        account(&mut globex, &format!("Globex {i}")).await;
        account(&mut globex, &format!("Globex {i}b")).await;
    }
    for (c, n) in [(&mut acme, 3), (&mut globex, 6)] {
        let events = c.events.list_events(sub::ListEventsRequest::default()).await.expect("events").into_inner().events;
        assert_eq!(events.iter().map(|e| e.sequence).collect::<Vec<_>>(), (1..=n).collect::<Vec<i64>>());
    }
    // Paging resumes after a sequence.
    let page = acme
        .events
        .list_events(sub::ListEventsRequest { page_size: 2, ..Default::default() })
        .await
        .expect("page")
        .into_inner();
    let rest = acme
        .events
        .list_events(sub::ListEventsRequest { page_token: page.next_page_token, ..Default::default() })
        .await
        .expect("rest")
        .into_inner();
    assert_eq!(rest.events.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3]);
}

on_both_backends!(sequences_sqlite, sequences_postgres, event_sequences_are_a_tenants_own);

/// A contract agreed before it starts (`pending`), activated later: its
/// first period starts at activation, its first invoice is collected then,
/// once, however often (and however concurrently) activation is retried.
async fn a_pending_subscription_is_activated_once(app: &TestApp) {
    let mut c = app.clients("acme");
    let plan = create_monthly_plan(&mut c, "100", None).await;
    let account_id = account(&mut c, "Acme Inc").await;
    let (customer, pm) = recur_e2e::customer_with_card(&mut c).await;
    let bg = bill_group(&mut c, &account_id, &customer, &pm).await;
    let pending = c
        .subscriptions
        .create_subscription(sub::CreateSubscriptionRequest { pending: true, ..subscribe(&account_id, &bg, &plan) })
        .await
        .expect("create")
        .into_inner();
    let s = pending.subscription.expect("subscription");
    assert_eq!(s.state, sub::SubscriptionState::Pending as i32);
    assert!(pending.invoice.is_none(), "nothing is invoiced before it starts");
    assert_eq!(app.count_rows("payment", "payments").await, 0);

    // Ten concurrent activations under one key, each answered with the one
    // activation; then ten without a key, each refused.
    let keyed = |c: &mut Clients| {
        let mut r = tonic::Request::new(sub::ActivateSubscriptionRequest { id: s.id.clone() });
        r.metadata_mut().insert("idempotency-key", "activate-1".parse().expect("ascii"));
        let mut c = c.subscriptions.clone();
        async move { c.activate_subscription(r).await }
    };
    let bare = |c: &mut Clients| {
        let mut c = c.subscriptions.clone();
        let id = s.id.clone();
        async move { c.activate_subscription(sub::ActivateSubscriptionRequest { id }).await }
    };
    let calls: Vec<_> = (0..10).map(|_| tokio::spawn(keyed(&mut c))).collect();
    let mut ok = Vec::new();
    for call in calls {
        ok.push(call.await.expect("join").expect("a keyed activation").into_inner());
    }
    let calls: Vec<_> = (0..10).map(|_| tokio::spawn(bare(&mut c))).collect();
    for call in calls {
        let err = call.await.expect("join").expect_err("already active");
        assert_eq!((err.code(), details(&err).reason.as_str()), (Code::FailedPrecondition, "SUBSCRIPTION_ACTIVE"));
    }
    let first = &ok[0];
    let active = first.subscription.clone().expect("subscription");
    assert_eq!(active.state, sub::SubscriptionState::Active as i32);
    let invoice = first.invoice.clone().expect("first invoice");
    assert_eq!(invoice.status, sub::InvoiceStatus::Paid as i32);
    assert!(ok.iter().all(|r| r.payment_id == first.payment_id), "every success names the one payment");
    assert_eq!(app.count_rows("payment", "payments").await, 1, "one charge");
    assert_eq!(app.count_rows("subscription", "invoices").await, 1, "one invoice");

    // A later retry under the key answers the same.
    let again = keyed(&mut c).await.expect("retry").into_inner();
    assert_eq!(again.payment_id, first.payment_id);
    let types = event_types(&mut c).await;
    assert_eq!(types.iter().filter(|t| *t == "subscription.activated").count(), 1, "{types:?}");

    // Unknown and foreign ids are alike NOT_FOUND.
    for (mut c, id) in
        [(app.clients("acme"), "sub_0000000000000000".to_string()), (app.clients("globex"), s.id.clone())]
    {
        let err =
            c.subscriptions.activate_subscription(sub::ActivateSubscriptionRequest { id }).await.expect_err("none");
        assert_eq!((err.code(), details(&err).reason.as_str()), (Code::NotFound, "SUBSCRIPTION_NOT_FOUND"));
    }
}

on_both_backends!(activation_sqlite, activation_postgres, a_pending_subscription_is_activated_once);

/// The all-in-one's services call each other in memory by default and over
/// the listen address's TCP with `RECUR_IN_PROCESS_CALLS=off`: the same
/// create (pricing's quote, the gateway's check and charge) and the same
/// refusal from a peer either way.
#[tokio::test]
async fn calls_between_services_work_in_memory_and_over_tcp() {
    for mode in ["on", "off"] {
        let app = TestApp::spawn_with(recur_e2e::Backend::SqliteMemory, &[("RECUR_IN_PROCESS_CALLS", mode)])
            .await
            .expect("sqlite app");
        let mut c = app.clients("acme");
        let plan = create_monthly_plan(&mut c, "100", None).await;
        let account_id = account(&mut c, "Acme Inc").await;
        let (customer, pm) = recur_e2e::customer_with_card(&mut c).await;
        let bg = bill_group(&mut c, &account_id, &customer, &pm).await;
        let created =
            c.subscriptions.create_subscription(subscribe(&account_id, &bg, &plan)).await.expect(mode).into_inner();
        let invoice = created.invoice.expect("first invoice");
        assert_eq!(invoice.status, sub::InvoiceStatus::Paid as i32, "in-process calls {mode}");
        assert_eq!(app.count_rows("payment", "payments").await, 1, "in-process calls {mode}");

        // A peer's refusal reaches the caller as the peer gave it.
        let err = c
            .subscriptions
            .create_subscription(sub::CreateSubscriptionRequest {
                offering: "no-such-offering".into(),
                ..subscribe(&account_id, &bg, &plan)
            })
            .await
            .expect_err("unknown offering");
        assert_eq!(err.code(), Code::InvalidArgument, "in-process calls {mode}: {err:?}");
    }
}

/// Every id-like text column of the subscription service's and the
/// gateway's Postgres schemas compares byte by byte (`COLLATE "C"`): a
/// column added without it would be compared by locale, and compared with
/// a "C" column it would make Postgres refuse the query.
#[tokio::test]
async fn id_like_columns_compare_byte_by_byte_on_postgres() {
    let Some(app) = TestApp::spawn(recur_e2e::Backend::PostgresRedis).await else { return };
    for service in ["subscription", "payment"] {
        let columns = app
            .lines(
                service,
                "SELECT table_name || '.' || column_name FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND data_type = 'text' \
                 AND (column_name IN ('id', 'state', 'status', 'idempotency_key', 'code', 'currency', 'number', \
                 'kind') OR column_name LIKE '%\\_id') AND collation_name IS DISTINCT FROM 'C' ORDER BY 1",
            )
            .await;
        assert!(columns.is_empty(), "{service}: id-like columns under the database's collation: {columns:?}");
        let collated = app
            .scalar(
                service,
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND collation_name = 'C'",
            )
            .await;
        assert!(collated > 10, "{service}: the migration ran ({collated} columns)");
    }
}
