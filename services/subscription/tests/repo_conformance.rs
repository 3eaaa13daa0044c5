//! The subscription stores' conformance suite: one test per behaviour, each
//! run on SQLite and on Postgres (when `RECUR_TEST_DATABASE_URL` is set), so
//! a failure names the behaviour and the backend that broke it.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use recur_money::Currency;
use recur_storage::testing::{TestDatabase, postgres_url};
use recur_subscription::domain::*;
use recur_subscription::repo::{
    self, Change, Idem, MutationKey, SubscriptionOrder, SubscriptionQuery, SubscriptionRepo, TimeColumn,
};
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).expect("literal")
}

fn t(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + n, 123_456_000).expect("valid")
}

const NO_KEY: Idem<'static> = Idem { key: None, hash: "h" };

fn account(id: &str, custom_id: Option<&str>, at: i64) -> Account {
    Account {
        id: id.into(),
        custom_id: custom_id.map(Into::into),
        account_name: format!("Account {id}"),
        currency: "USD".into(),
        time_zone: "America/New_York".into(),
        billing_address: Address { line1: "1 Main St".into(), country: "US".into(), ..Default::default() },
        tags: vec!["vip".into()],
        notes: "note".into(),
        metadata: [("k".to_string(), "v".to_string())].into(),
        tax_exempt: false,
        created_at: t(at),
        updated_at: t(at),
    }
}

fn contact(id: &str, account_id: &str, email: &str) -> Contact {
    Contact {
        id: id.into(),
        account_id: account_id.into(),
        name: "Jo Doe".into(),
        first_name: "Jo".into(),
        last_name: "Doe".into(),
        title: String::new(),
        email: email.into(),
        phone: String::new(),
        address: Address::default(),
        primary: true,
        created_at: t(0),
        updated_at: t(0),
    }
}

fn bill_group(id: &str, account_id: &str) -> BillGroup {
    BillGroup {
        id: id.into(),
        account_id: account_id.into(),
        name: "Main".into(),
        auto_email_invoice: true,
        collect_automatically: true,
        payment_method_id: "pm_1".into(),
        gateway_customer_id: "cus_1".into(),
        billing_day: 15,
        collection_method: CollectionMethod::Automatic,
        currency: "USD".into(),
        contact_id: String::new(),
        created_at: t(1),
        updated_at: t(1),
    }
}

fn subscription(id: &str, account_id: &str, bg: &str) -> Subscription {
    Subscription {
        id: id.into(),
        custom_id: None,
        account_id: account_id.into(),
        bill_group_id: bg.into(),
        offering_id: "offr_1".into(),
        rate_id: "rate_1".into(),
        state: SubscriptionState::Active,
        items: vec![Item { product_id: "prod_1".into(), quantity: d("2.5"), custom_price: None }],
        coupon_codes: vec!["SAVE10".into()],
        currency: Currency::from_code("USD").expect("usd"),
        recurring_amount: d("100.00"),
        start_date: NaiveDate::from_ymd_opt(2027, 1, 31).expect("date"),
        billing_anchor: BillingAnchor { day: 31, month: 0 },
        metadata: Default::default(),
        cancel_at_period_end: false,
        current_period_start: t(0),
        current_period_end: t(0) + Duration::days(28),
        trial_start: None,
        trial_end: None,
        next_billing_at: Some(t(0) + Duration::days(28)),
        activated_at: Some(t(0)),
        canceled_at: None,
        expires_at: None,
        quote_id: String::new(),
        scheduled_change: None,
        paused_at: None,
        resume_at: None,
        cancel_reason: String::new(),
        cancel_comment: String::new(),
        previous_billing_at: None,
        parked_reason: String::new(),
        version: 0,
        created_at: t(2),
        updated_at: t(2),
    }
}

fn invoice(id: &str, sub: &Subscription, amounts: &[&str]) -> Invoice {
    let lines = amounts
        .iter()
        .enumerate()
        .map(|(i, a)| InvoiceLine {
            id: format!("{id}_l{i}"),
            kind: LineKind::Subscription,
            description: format!("line {i}"),
            subscription_id: sub.id.clone(),
            offering_id: sub.offering_id.clone(),
            rate_id: sub.rate_id.clone(),
            product_id: "prod_1".into(),
            period_start: Some(sub.current_period_start),
            period_end: Some(sub.current_period_end),
            quantity: d("2.5"),
            unit_amount: "40.0012".into(),
            proration_fraction: "1".into(),
            tiers: vec![TierLine {
                index: 0,
                quantity: "2.5".into(),
                unit_amount: "40".into(),
                flat_amount: "0".into(),
                amount: a.to_string(),
            }],
            amount_without_tax: d(a),
            discount: Decimal::ZERO,
            tax: Decimal::ZERO,
            tax_rate: String::new(),
            amount: d(a),
        })
        .collect();
    let mut inv = Invoice {
        id: id.into(),
        number: String::new(),
        account_id: sub.account_id.clone(),
        bill_group_id: sub.bill_group_id.clone(),
        subscription_id: sub.id.clone(),
        status: InvoiceStatus::Open,
        currency: sub.currency,
        lines,
        amount_without_tax: Decimal::ZERO,
        discount: Decimal::ZERO,
        tax: Decimal::ZERO,
        amount: Decimal::ZERO,
        amount_paid: Decimal::ZERO,
        credit_applied: Decimal::ZERO,
        period_start: Some(sub.current_period_start),
        period_end: Some(sub.current_period_end),
        issued_at: Some(t(2)),
        due_at: Some(t(2)),
        paid_at: None,
        payment_ids: vec![],
        created_at: t(2),
        updated_at: t(2),
        reason: InvoiceReason::SubscriptionCreate,
        next_action_at: None,
        attempt_count: 0,
        first_failed_at: None,
        collection_paused: String::new(),
        usage_coupon_left: None,
    };
    inv.total_lines();
    inv
}

fn created(account_id: &str) -> Event {
    Event::new(SubscriptionEvent::AccountCreated { account_id: account_id.into(), account_name: "A".into() }, t(0))
}

/// An account `acct` with a bill group `bg` in `tenant`.
async fn seed(repo: &dyn SubscriptionRepo, tenant: &str, acct: &str, bg: &str) {
    repo.insert_account(tenant, &account(acct, None, 0), &[], NO_KEY, &created(acct)).await.expect("account");
    let e = Event::new(SubscriptionEvent::BillGroupCreated { bill_group_id: bg.into(), account_id: acct.into() }, t(1));
    repo.insert_bill_group(tenant, &bill_group(bg, acct), NO_KEY, &e).await.expect("bill group");
}

async fn an_account_with_its_contacts_round_trips(repo: &dyn SubscriptionRepo) {
    let a = account("acct_1", Some("crm-1"), 0);
    let contacts = [contact("cont_1", "acct_1", "Jo@Acme.example")];
    let stored = repo.insert_account("acme", &a, &contacts, NO_KEY, &created("acct_1")).await.expect("insert");
    assert!(stored.created);
    assert_eq!(repo.get_account("acme", "acct_1").await.expect("get"), Some((a, contacts.to_vec())));
}

async fn an_account_is_read_alone_without_its_contacts(repo: &dyn SubscriptionRepo) {
    let a = account("acct_1", None, 0);
    let contacts = [contact("cont_1", "acct_1", "jo@acme.example")];
    repo.insert_account("acme", &a, &contacts, NO_KEY, &created("acct_1")).await.expect("insert");
    assert_eq!(repo.get_account_alone("acme", "acct_1").await.expect("get"), Some(a));
    assert_eq!(repo.get_account_alone("other", "acct_1").await.expect("get"), None, "another tenant's is none");
    assert_eq!(repo.get_account_alone("acme", "acct_9").await.expect("get"), None);
}

async fn a_create_reads_its_key_account_and_bill_group_at_once(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let found = repo.create_context("acme", Some("order-1"), "acct_1", "bg_1").await.expect("context");
    assert!(!found.replayed, "the key made nothing yet");
    assert_eq!(found.account, repo.get_account_alone("acme", "acct_1").await.expect("account"));
    assert_eq!(found.bill_group, repo.get_bill_group("acme", "bg_1").await.expect("bill group"));
    assert!(found.account.is_some() && found.bill_group.is_some());

    let key = Idem { key: Some("order-1"), hash: "h1" };
    repo.insert_subscription("acme", &subscription("sub_1", "acct_1", "bg_1"), None, key, &[], &[])
        .await
        .expect("insert");
    assert!(repo.create_context("acme", Some("order-1"), "acct_1", "bg_1").await.expect("context").replayed);
    assert!(!repo.create_context("acme", None, "acct_1", "bg_1").await.expect("context").replayed, "no key");

    let missing = repo.create_context("acme", Some("order-2"), "acct_9", "bg_9").await.expect("context");
    assert_eq!(missing, recur_subscription::repo::CreateContext::default(), "nothing found is none");
    let other = repo.create_context("globex", Some("order-1"), "acct_1", "bg_1").await.expect("context");
    assert_eq!(other, recur_subscription::repo::CreateContext::default(), "another tenant's is none");
}

async fn a_repeated_idempotency_key_returns_the_first_account(repo: &dyn SubscriptionRepo) {
    let key = Idem { key: Some("k1"), hash: "first" };
    repo.insert_account("acme", &account("acct_1", None, 0), &[], key, &created("acct_1")).await.expect("first");
    let again = repo
        .insert_account(
            "acme",
            &account("acct_2", None, 0),
            &[],
            Idem { key: Some("k1"), hash: "second" },
            &created("acct_2"),
        )
        .await
        .expect("second");
    assert!(!again.created);
    assert_eq!((again.value.0.id.as_str(), again.request_hash.as_str()), ("acct_1", "first"));
    assert_eq!(repo.get_account("acme", "acct_2").await.expect("get"), None, "nothing written");
    // The same key in another tenant is another key.
    let other = repo.insert_account("globex", &account("acct_3", None, 0), &[], key, &created("acct_3")).await;
    assert!(other.expect("another tenant").created);
}

async fn custom_ids_are_unique_per_tenant(repo: &dyn SubscriptionRepo) {
    repo.insert_account("acme", &account("acct_1", Some("crm-1"), 0), &[], NO_KEY, &created("acct_1"))
        .await
        .expect("first");
    let dup = repo.insert_account("acme", &account("acct_2", Some("crm-1"), 0), &[], NO_KEY, &created("acct_2")).await;
    assert!(dup.is_err_and(|e| e.is_unique()), "a second account with the custom id");
    repo.insert_account("globex", &account("acct_3", Some("crm-1"), 0), &[], NO_KEY, &created("acct_3"))
        .await
        .expect("another tenant's custom ids are its own");
}

async fn accounts_page_in_creation_order(repo: &dyn SubscriptionRepo) {
    for (i, id) in ["acct_c", "acct_a", "acct_b"].iter().enumerate() {
        repo.insert_account("acme", &account(id, None, i as i64), &[], NO_KEY, &created(id)).await.expect("insert");
    }
    let first = repo.list_accounts("acme", None, 2).await.expect("page 1");
    let ids: Vec<_> = first.iter().map(|(a, _)| a.id.as_str()).collect();
    assert_eq!(ids, ["acct_c", "acct_a"]);
    let last = &first[1].0;
    let after = recur_storage::page::Cursor::time(last.created_at, last.id.clone());
    let rest = repo.list_accounts("acme", Some(&after), 2).await.expect("page 2");
    assert_eq!(rest.iter().map(|(a, _)| a.id.as_str()).collect::<Vec<_>>(), ["acct_b"]);
    assert!(repo.list_accounts("globex", None, 10).await.expect("other").is_empty());
}

async fn accounts_are_found_by_custom_id_or_any_case_of_an_email(repo: &dyn SubscriptionRepo) {
    let contacts = [contact("cont_1", "acct_1", "Jo@Acme.example")];
    repo.insert_account("acme", &account("acct_1", Some("crm-1"), 0), &contacts, NO_KEY, &created("acct_1"))
        .await
        .expect("insert");
    assert_eq!(repo.find_account("acme", Some("crm-1"), None).await.expect("by id").as_deref(), Some("acct_1"));
    assert_eq!(
        repo.find_account("acme", None, Some("jo@acme.EXAMPLE")).await.expect("by email").as_deref(),
        Some("acct_1")
    );
    assert_eq!(repo.find_account("globex", Some("crm-1"), None).await.expect("other tenant"), None);
}

async fn a_bill_group_round_trips(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    assert_eq!(repo.get_bill_group("acme", "bg_1").await.expect("get"), Some(bill_group("bg_1", "acct_1")));
    assert_eq!(repo.get_bill_group("globex", "bg_1").await.expect("other"), None);
}

async fn a_subscription_with_its_first_invoice_round_trips(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let sub = subscription("sub_1", "acct_1", "bg_1");
    let inv = invoice("inv_1", &sub, &["33.33", "33.34"]);
    repo.insert_subscription("acme", &sub, Some(&inv), NO_KEY, &[], &[]).await.expect("insert");
    let got = repo.get_subscription("acme", "sub_1").await.expect("get").expect("stored");
    assert_eq!(got, sub);
    assert_eq!(got.billing_anchor, BillingAnchor { day: 31, month: 0 }, "the anchor is kept");
    let invoices = repo.invoices_of_subscription("acme", "sub_1").await.expect("invoices");
    assert_eq!(invoices.len(), 1);
    let stored = &invoices[0];
    assert_eq!(stored.number, "INV-000001");
    assert_eq!(stored.lines, inv.lines, "lines in order, exactly");
    assert_eq!(stored.amount, d("66.67"));
    assert_eq!(repo.get_invoice("acme", "inv_1").await.expect("get"), Some(stored.clone()));
    assert_eq!(repo.get_subscription("globex", "sub_1").await.expect("other"), None);
}

async fn an_invoice_keeps_what_fixed_coupons_left_for_its_usage(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    for (id, left) in [
        ("inv_some", Some(vec![("FIVE".to_string(), d("3.00")), ("ZERO".to_string(), d("0"))])),
        ("inv_none", Some(Vec::new())),
        ("inv_whole", None),
    ] {
        let sub = subscription(&format!("sub_{id}"), "acct_1", "bg_1");
        let mut inv = invoice(id, &sub, &["10.00"]);
        inv.usage_coupon_left = left.clone();
        repo.insert_subscription("acme", &sub, Some(&inv), NO_KEY, &[], &[]).await.expect("insert");
        let got = repo.get_invoice("acme", id).await.expect("get").expect("stored");
        assert_eq!(got.usage_coupon_left, left, "{id}");
    }
}

async fn invoice_numbers_count_per_tenant_without_gaps(repo: &dyn SubscriptionRepo) {
    for tenant in ["acme", "globex"] {
        seed(repo, tenant, "acct_1", "bg_1").await;
    }
    for (tenant, n) in [("acme", 1), ("globex", 2), ("acme", 3)] {
        let sub = subscription(&format!("sub_{n}"), "acct_1", "bg_1");
        let inv = invoice(&format!("inv_{n}"), &sub, &["10.00"]);
        repo.insert_subscription(tenant, &sub, Some(&inv), NO_KEY, &[], &[]).await.expect("insert");
    }
    let number = |tenant: &'static str, id: &'static str| async move {
        repo.get_invoice(tenant, id).await.expect("get").expect("invoice").number
    };
    assert_eq!(number("acme", "inv_1").await, "INV-000001");
    assert_eq!(number("globex", "inv_2").await, "INV-000001");
    assert_eq!(number("acme", "inv_3").await, "INV-000002");
}

async fn concurrent_invoices_are_numbered_in_one_run_without_gaps(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let subs: Vec<_> = (0..12).map(|n| subscription(&format!("sub_{n}"), "acct_1", "bg_1")).collect();
    let invoices: Vec<_> = subs.iter().enumerate().map(|(n, s)| invoice(&format!("inv_{n}"), s, &["10.00"])).collect();
    let writes =
        subs.iter().zip(&invoices).map(|(s, i)| repo.insert_subscription("acme", s, Some(i), NO_KEY, &[], &[]));
    for w in futures::future::join_all(writes).await {
        w.expect("insert");
    }
    let mut numbers = Vec::new();
    for i in &invoices {
        let n = repo.invoice_number("acme", &i.id).await.expect("number");
        assert_eq!(repo.get_invoice("acme", &i.id).await.expect("get").expect("invoice").number, n);
        numbers.push(n);
    }
    numbers.sort();
    let expected: Vec<String> = (1..=12).map(|n| format!("INV-{n:06}")).collect();
    assert_eq!(numbers, expected, "each written invoice numbered once, none skipped");
    repo.number_invoices("acme").await.expect("nothing left to number");
    let last = subscription("sub_last", "acct_1", "bg_1");
    let inv = invoice("inv_last", &last, &["10.00"]);
    repo.insert_subscription("acme", &last, Some(&inv), NO_KEY, &[], &[]).await.expect("insert");
    assert_eq!(
        repo.invoice_number("acme", "inv_last").await.expect("number"),
        "INV-000013",
        "an idle run moves nothing"
    );
}

async fn a_subscription_is_found_by_its_idempotency_key(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let key = Idem { key: Some("order-1"), hash: "h1" };
    let sub = subscription("sub_1", "acct_1", "bg_1");
    repo.insert_subscription("acme", &sub, None, key, &[], &[]).await.expect("insert");
    let found = repo.subscription_by_key("acme", "order-1").await.expect("by key").expect("found");
    assert_eq!((found.value.id.as_str(), found.request_hash.as_str(), found.created), ("sub_1", "h1", false));
    let again = repo.insert_subscription("acme", &subscription("sub_2", "acct_1", "bg_1"), None, key, &[], &[]).await;
    assert_eq!(again.expect("replay").value.id, "sub_1", "a repeated key writes nothing");
    assert_eq!(repo.get_subscription("acme", "sub_2").await.expect("get"), None);
    assert!(repo.subscription_by_key("globex", "order-1").await.expect("other").is_none());
}

async fn a_state_change_writes_its_event(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    repo.insert_subscription("acme", &subscription("sub_1", "acct_1", "bg_1"), None, NO_KEY, &[], &[])
        .await
        .expect("insert");
    let e = Event::new(
        SubscriptionEvent::SubscriptionPastDue { subscription_id: "sub_1".into(), invoice_id: "inv_1".into() },
        t(5),
    );
    repo.set_subscription_state("acme", "sub_1", SubscriptionState::PastDue, t(5), &e).await.expect("set");
    let got = repo.get_subscription("acme", "sub_1").await.expect("get").expect("stored");
    assert_eq!((got.state, got.updated_at), (SubscriptionState::PastDue, t(5)));
    let events = repo.list_events("acme", 0, 10).await.expect("events");
    assert_eq!(events.last().map(|e| e.event.clone()), Some(e.event));
}

async fn void_and_cancel_undoes_a_first_invoice(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let sub = subscription("sub_1", "acct_1", "bg_1");
    repo.insert_subscription("acme", &sub, Some(&invoice("inv_1", &sub, &["10.00"])), NO_KEY, &[], &[])
        .await
        .expect("insert");
    let events = [
        Event::new(SubscriptionEvent::InvoiceVoided { invoice_id: "inv_1".into(), reason: "r".into() }, t(9)),
        Event::new(
            SubscriptionEvent::SubscriptionCanceled { subscription_id: "sub_1".into(), reason: "r".into() },
            t(9),
        ),
    ];
    repo.void_and_cancel("acme", "sub_1", "inv_1", t(9), &events).await.expect("undo");
    let got = repo.get_subscription("acme", "sub_1").await.expect("get").expect("stored");
    assert_eq!((got.state, got.canceled_at), (SubscriptionState::Canceled, Some(t(9))));
    assert_eq!(repo.get_invoice("acme", "inv_1").await.expect("get").expect("inv").status, InvoiceStatus::Void);
    let types: Vec<_> =
        repo.list_events("acme", 0, 10).await.expect("events").iter().map(|e| e.event.type_name()).collect();
    assert!(types.ends_with(&["invoice.voided", "subscription.canceled"]), "{types:?}");
}

async fn a_payment_is_recorded_on_its_invoice(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let sub = subscription("sub_1", "acct_1", "bg_1");
    let mut inv = invoice("inv_1", &sub, &["10.00"]);
    repo.insert_subscription("acme", &sub, Some(&inv), NO_KEY, &[], &[]).await.expect("insert");
    inv.status = InvoiceStatus::Paid;
    inv.amount_paid = d("10.00");
    inv.paid_at = Some(t(3));
    inv.payment_ids = vec!["pay_1".into()];
    inv.updated_at = t(3);
    let paid =
        Event::new(SubscriptionEvent::InvoicePaid { invoice_id: "inv_1".into(), payment_id: "pay_1".into() }, t(3));
    repo.record_payment("acme", &inv, std::slice::from_ref(&paid)).await.expect("record");
    let got = repo.get_invoice("acme", "inv_1").await.expect("get").expect("inv");
    assert_eq!(
        (got.status, got.amount_paid, got.amount_due(), got.payment_ids),
        (InvoiceStatus::Paid, d("10.00"), d("0"), vec!["pay_1".to_string()])
    );
}

async fn event_sequences_are_per_tenant_and_gap_free(repo: &dyn SubscriptionRepo) {
    // Two tenants write in turn: each sees 1, 2, 3 of its own.
    for i in 0..3 {
        for tenant in ["acme", "globex"] {
            let id = format!("acct_{tenant}_{i}");
            repo.insert_account(tenant, &account(&id, None, i), &[], NO_KEY, &created(&id)).await.expect("insert");
        }
    }
    for tenant in ["acme", "globex"] {
        let events = repo.list_events(tenant, 0, 10).await.expect("events");
        assert_eq!(events.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1, 2, 3], "{tenant}");
        assert!(
            events.iter().all(|e| e.event.resource_id().starts_with(&format!("acct_{tenant}_"))),
            "{tenant} sees only its own"
        );
    }
    // Resuming after a sequence gives what follows, numbered on.
    repo.insert_account("acme", &account("acct_late", None, 9), &[], NO_KEY, &created("acct_late"))
        .await
        .expect("insert");
    let rest = repo.list_events("acme", 2, 10).await.expect("events");
    assert_eq!(rest.iter().map(|e| e.sequence).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(rest[1].event.resource_id(), "acct_late");
}

fn updated(account_id: &str, fields: &[&str]) -> Event {
    let changed_fields = fields.iter().map(|f| f.to_string()).collect();
    Event::new(SubscriptionEvent::AccountUpdated { account_id: account_id.into(), changed_fields }, t(9))
}

/// The types of `tenant`'s events, in order.
async fn event_types(repo: &dyn SubscriptionRepo, tenant: &str) -> Vec<String> {
    let events = repo.list_events(tenant, 0, 100).await.expect("events");
    events.iter().map(|e| e.event.type_name().to_string()).collect()
}

async fn an_account_update_writes_its_fields_and_its_event(repo: &dyn SubscriptionRepo) {
    let contacts = [contact("cont_1", "acct_1", "jo@acme.example")];
    repo.insert_account("acme", &account("acct_1", None, 0), &contacts, NO_KEY, &created("acct_1"))
        .await
        .expect("insert");
    let apply = |a: &Account| {
        let mut next = a.clone();
        next.account_name = "Acme Corp".into();
        next.custom_id = Some("crm-9".into());
        next.tags = vec!["gold".into(), "eu".into()];
        next.updated_at = t(9);
        Some((next, updated(&a.id, &["account_name", "custom_id", "tags"])))
    };
    let (a, c) = repo.update_account("acme", "acct_1", &apply).await.expect("update").expect("found");
    assert_eq!((a.account_name.as_str(), a.custom_id.as_deref(), a.updated_at), ("Acme Corp", Some("crm-9"), t(9)));
    assert_eq!(c, contacts.to_vec(), "the contacts come with it");
    assert_eq!(repo.get_account("acme", "acct_1").await.expect("get"), Some((a, contacts.to_vec())));
    assert_eq!(event_types(repo, "acme").await, ["account.created", "account.updated"]);
    let events = repo.list_events("acme", 1, 10).await.expect("events");
    assert_eq!(
        events[0].event,
        SubscriptionEvent::AccountUpdated {
            account_id: "acct_1".into(),
            changed_fields: vec!["account_name".into(), "custom_id".into(), "tags".into()],
        }
    );
}

async fn an_update_that_changes_nothing_writes_nothing(repo: &dyn SubscriptionRepo) {
    let a = account("acct_1", None, 0);
    repo.insert_account("acme", &a, &[], NO_KEY, &created("acct_1")).await.expect("insert");
    let (same, _) = repo.update_account("acme", "acct_1", &|_| None).await.expect("update").expect("found");
    assert_eq!(same, a);
    assert_eq!(event_types(repo, "acme").await, ["account.created"]);
}

async fn updates_of_another_tenants_records_find_none(repo: &dyn SubscriptionRepo) {
    seed(repo, "globex", "acct_1", "bg_1").await;
    let c = contact("cont_1", "acct_1", "jo@globex.example");
    repo.insert_contact("globex", &c, NO_KEY, &contact_created(&c)).await.expect("contact").expect("account");
    let touch = |a: &Account| Some((a.clone(), updated(&a.id, &["notes"])));
    assert_eq!(repo.update_account("acme", "acct_1", &touch).await.expect("account"), None);
    assert_eq!(repo.update_account("acme", "acct_none", &touch).await.expect("account"), None);
    let touch = |c: &Contact| Some((c.clone(), contact_created(c)));
    assert_eq!(repo.update_contact("acme", "cont_1", &touch).await.expect("contact"), None);
    let touch = |b: &BillGroup| Some((b.clone(), updated(&b.id, &["name"])));
    assert_eq!(repo.update_bill_group("acme", "bg_1", &touch).await.expect("bill group"), None);
    assert_eq!(repo.get_contact("acme", "cont_1").await.expect("get"), None);
    let other = contact("cont_2", "acct_1", "pat@acme.example");
    assert_eq!(repo.insert_contact("acme", &other, NO_KEY, &contact_created(&other)).await.expect("insert"), None);
    assert!(repo.list_bill_groups("acme", "acct_1", None, 10).await.expect("list").is_empty());
    assert!(event_types(repo, "acme").await.is_empty(), "nothing written");
}

async fn an_updated_custom_id_stays_unique_per_tenant(repo: &dyn SubscriptionRepo) {
    repo.insert_account("acme", &account("acct_1", Some("crm-1"), 0), &[], NO_KEY, &created("acct_1"))
        .await
        .expect("first");
    repo.insert_account("acme", &account("acct_2", None, 1), &[], NO_KEY, &created("acct_2")).await.expect("second");
    let take = |a: &Account| {
        let mut next = a.clone();
        next.custom_id = Some("crm-1".into());
        Some((next, updated(&a.id, &["custom_id"])))
    };
    let dup = repo.update_account("acme", "acct_2", &take).await;
    assert!(dup.is_err_and(|e| e.is_unique()), "a second account with the custom id");
    assert_eq!(repo.get_account("acme", "acct_2").await.expect("get").expect("found").0.custom_id, None);
    assert_eq!(event_types(repo, "acme").await, ["account.created", "account.created"], "no event of a refused update");
}

async fn concurrent_updates_of_one_account_keep_each_others_fields(repo: &dyn SubscriptionRepo) {
    repo.insert_account("acme", &account("acct_1", None, 0), &[], NO_KEY, &created("acct_1")).await.expect("insert");
    let add = |key: &'static str| {
        move |a: &Account| {
            let mut next = a.clone();
            next.metadata.insert(key.into(), "x".into());
            Some((next, updated(&a.id, &["metadata"])))
        }
    };
    let (f1, f2, f3, f4) = (add("a"), add("b"), add("c"), add("d"));
    let (r1, r2, r3, r4) = tokio::join!(
        repo.update_account("acme", "acct_1", &f1),
        repo.update_account("acme", "acct_1", &f2),
        repo.update_account("acme", "acct_1", &f3),
        repo.update_account("acme", "acct_1", &f4),
    );
    for r in [r1, r2, r3, r4] {
        r.expect("update").expect("found");
    }
    let (a, _) = repo.get_account("acme", "acct_1").await.expect("get").expect("found");
    let keys: Vec<&str> = a.metadata.keys().map(String::as_str).collect();
    assert_eq!(keys, ["a", "b", "c", "d", "k"], "no update lost another's key");
    assert_eq!(event_types(repo, "acme").await.len(), 5);
}

async fn accounts_are_listed_by_tag_in_pages(repo: &dyn SubscriptionRepo) {
    for (i, (id, tags)) in
        [("acct_1", &["vip", "eu"][..]), ("acct_2", &["eu"][..]), ("acct_3", &["eu", "eu"][..]), ("acct_4", &[][..])]
            .iter()
            .enumerate()
    {
        let mut a = account(id, None, i as i64);
        a.tags = tags.iter().map(|t| t.to_string()).collect();
        repo.insert_account("acme", &a, &[], NO_KEY, &created(id)).await.expect("insert");
    }
    let ids = |rows: &[(Account, Vec<Contact>)]| rows.iter().map(|(a, _)| a.id.clone()).collect::<Vec<_>>();
    let first = repo.list_accounts_tagged("acme", "eu", None, 2).await.expect("page 1");
    assert_eq!(ids(&first), ["acct_1", "acct_2"]);
    let after = recur_storage::page::Cursor::time(first[1].0.created_at, first[1].0.id.clone());
    let rest = repo.list_accounts_tagged("acme", "eu", Some(&after), 2).await.expect("page 2");
    assert_eq!(ids(&rest), ["acct_3"], "a tag given twice lists its account once");
    // An update moves the account in and out of the tag.
    let retag = |a: &Account| {
        let mut next = a.clone();
        next.tags = vec!["vip".into()];
        Some((next, updated(&a.id, &["tags"])))
    };
    repo.update_account("acme", "acct_4", &retag).await.expect("update").expect("found");
    repo.update_account("acme", "acct_2", &retag).await.expect("update").expect("found");
    let vip = repo.list_accounts_tagged("acme", "vip", None, 10).await.expect("vip");
    assert_eq!(ids(&vip), ["acct_1", "acct_2", "acct_4"]);
    assert_eq!(ids(&repo.list_accounts_tagged("acme", "eu", None, 10).await.expect("eu")), ["acct_1", "acct_3"]);
    assert!(repo.list_accounts_tagged("globex", "eu", None, 10).await.expect("other").is_empty());
    assert!(repo.list_accounts_tagged("acme", "EU", None, 10).await.expect("case").is_empty(), "tags match exactly");
}

fn contact_created(c: &Contact) -> Event {
    Event::new(SubscriptionEvent::ContactCreated { contact_id: c.id.clone(), account_id: c.account_id.clone() }, t(5))
}

async fn a_primary_contact_unsets_the_others(repo: &dyn SubscriptionRepo) {
    let first = contact("cont_1", "acct_1", "jo@acme.example");
    repo.insert_account("acme", &account("acct_1", None, 0), std::slice::from_ref(&first), NO_KEY, &created("acct_1"))
        .await
        .expect("insert");
    let mut second = contact("cont_2", "acct_1", "pat@acme.example");
    second.primary = false;
    second.created_at = t(5);
    second.updated_at = t(5);
    let stored = repo.insert_contact("acme", &second, NO_KEY, &contact_created(&second)).await.expect("insert");
    assert!(stored.expect("account").created);
    let primaries = |cs: &[Contact]| cs.iter().map(|c| (c.id.clone(), c.primary)).collect::<Vec<_>>();
    let (_, cs) = repo.get_account("acme", "acct_1").await.expect("get").expect("found");
    assert_eq!(primaries(&cs), [("cont_1".to_string(), true), ("cont_2".to_string(), false)]);
    assert_eq!(repo.get_contact("acme", "cont_2").await.expect("get"), Some(second.clone()));
    let mut third = contact("cont_3", "acct_1", "sam@acme.example");
    third.created_at = t(6);
    third.updated_at = t(6);
    repo.insert_contact("acme", &third, NO_KEY, &contact_created(&third)).await.expect("insert").expect("account");
    let (_, cs) = repo.get_account("acme", "acct_1").await.expect("get").expect("found");
    assert_eq!(primaries(&cs), [("cont_1".into(), false), ("cont_2".into(), false), ("cont_3".into(), true)]);
    // Made primary by an update, the second one is the only primary.
    let promote = |c: &Contact| {
        let mut next = c.clone();
        next.primary = true;
        next.updated_at = t(7);
        let changed_fields = vec!["primary".to_string()];
        let e = SubscriptionEvent::ContactUpdated {
            contact_id: c.id.clone(),
            account_id: c.account_id.clone(),
            changed_fields,
        };
        Some((next, Event::new(e, t(7))))
    };
    let c = repo.update_contact("acme", "cont_2", &promote).await.expect("update").expect("found");
    assert!(c.primary);
    let (_, cs) = repo.get_account("acme", "acct_1").await.expect("get").expect("found");
    assert_eq!(primaries(&cs), [("cont_1".into(), false), ("cont_2".into(), true), ("cont_3".into(), false)]);
    assert_eq!(
        event_types(repo, "acme").await,
        ["account.created", "contact.created", "contact.created", "contact.updated"]
    );
}

async fn a_repeated_idempotency_key_returns_the_first_contact(repo: &dyn SubscriptionRepo) {
    repo.insert_account("acme", &account("acct_1", None, 0), &[], NO_KEY, &created("acct_1")).await.expect("insert");
    let key = Idem { key: Some("k1"), hash: "first" };
    let c1 = contact("cont_1", "acct_1", "jo@acme.example");
    repo.insert_contact("acme", &c1, key, &contact_created(&c1)).await.expect("first").expect("account");
    let c2 = contact("cont_2", "acct_1", "pat@acme.example");
    let again = repo
        .insert_contact("acme", &c2, Idem { key: Some("k1"), hash: "second" }, &contact_created(&c2))
        .await
        .expect("second")
        .expect("stored");
    assert!(!again.created);
    assert_eq!((again.value, again.request_hash.as_str()), (c1, "first"));
    assert_eq!(repo.get_contact("acme", "cont_2").await.expect("get"), None, "nothing written");
    assert_eq!(event_types(repo, "acme").await, ["account.created", "contact.created"]);
}

async fn a_bill_group_update_writes_its_fields_and_its_event(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let apply = |b: &BillGroup| {
        let mut next = b.clone();
        next.collection_method = CollectionMethod::Remittance;
        next.billing_day = 3;
        next.auto_email_invoice = false;
        next.updated_at = t(9);
        let changed_fields = vec!["collection_method".into(), "billing_day".into(), "auto_email_invoice".into()];
        let e = SubscriptionEvent::BillGroupUpdated {
            bill_group_id: b.id.clone(),
            account_id: b.account_id.clone(),
            changed_fields,
        };
        Some((next, Event::new(e, t(9))))
    };
    let bg = repo.update_bill_group("acme", "bg_1", &apply).await.expect("update").expect("found");
    assert_eq!((bg.collection_method, bg.billing_day, bg.auto_email_invoice), (CollectionMethod::Remittance, 3, false));
    assert_eq!(repo.get_bill_group("acme", "bg_1").await.expect("get"), Some(bg));
    assert_eq!(event_types(repo, "acme").await, ["account.created", "bill_group.created", "bill_group.updated"]);
}

async fn bill_groups_of_an_account_page_in_creation_order(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    repo.insert_account("acme", &account("acct_2", None, 0), &[], NO_KEY, &created("acct_2")).await.expect("insert");
    for (i, (id, acct)) in [("bg_c", "acct_1"), ("bg_a", "acct_1"), ("bg_x", "acct_2")].iter().enumerate() {
        let mut bg = bill_group(id, acct);
        bg.created_at = t(2 + i as i64);
        let e = Event::new(
            SubscriptionEvent::BillGroupCreated { bill_group_id: bg.id.clone(), account_id: (*acct).into() },
            t(2),
        );
        repo.insert_bill_group("acme", &bg, NO_KEY, &e).await.expect("bill group");
    }
    let first = repo.list_bill_groups("acme", "acct_1", None, 2).await.expect("page 1");
    assert_eq!(first.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["bg_1", "bg_c"]);
    let after = recur_storage::page::Cursor::time(first[1].created_at, first[1].id.clone());
    let rest = repo.list_bill_groups("acme", "acct_1", Some(&after), 2).await.expect("page 2");
    assert_eq!(rest.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["bg_a"]);
}

async fn subscriptions_list_by_every_filter_in_keyset_pages(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    for i in 0..5 {
        let mut s = subscription(&format!("sub_{i}"), "acct_1", "bg_1");
        s.created_at = t(10 + i);
        s.state = if i % 2 == 0 { SubscriptionState::Active } else { SubscriptionState::Pending };
        s.items = vec![Item {
            product_id: if i < 3 { "prod_a".into() } else { "prod_b".into() },
            quantity: d("1"),
            custom_price: None,
        }];
        s.coupon_codes = if i == 4 { vec!["SAVE10".into()] } else { vec![] };
        s.metadata = if i == 1 { [("channel".to_string(), "partner".to_string())].into() } else { Default::default() };
        s.activated_at = (i != 3).then(|| t(20 + i));
        repo.insert_subscription("acme", &s, None, NO_KEY, &[], &[]).await.expect("insert");
    }
    let q = |f: &dyn Fn(&mut SubscriptionQuery)| {
        let mut q = SubscriptionQuery {
            states: vec![],
            account_id: None,
            offering_id: None,
            rate_id: None,
            product_id: None,
            coupon_code: None,
            metadata: vec![],
            time_range: None,
            order: SubscriptionOrder::Time(TimeColumn::CreatedAt),
            descending: false,
            after: None,
            limit: 10,
        };
        f(&mut q);
        q
    };
    let ids = |rows: Vec<Subscription>| rows.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let list = |q: SubscriptionQuery| async move { ids(repo.list_subscriptions("acme", &q).await.expect("list")) };
    assert_eq!(list(q(&|_| {})).await, ["sub_0", "sub_1", "sub_2", "sub_3", "sub_4"]);
    assert_eq!(list(q(&|q| q.states = vec![SubscriptionState::Pending])).await, ["sub_1", "sub_3"]);
    assert_eq!(list(q(&|q| q.product_id = Some("prod_b".into()))).await, ["sub_3", "sub_4"]);
    assert_eq!(list(q(&|q| q.coupon_code = Some("SAVE10".into()))).await, ["sub_4"]);
    assert_eq!(list(q(&|q| q.metadata = vec![("channel".into(), "partner".into())])).await, ["sub_1"]);
    assert_eq!(
        list(q(&|q| q.time_range = Some((TimeColumn::CreatedAt, Some(t(11)), Some(t(12)))))).await,
        ["sub_1", "sub_2"]
    );
    assert_eq!(list(q(&|q| q.descending = true)).await, ["sub_4", "sub_3", "sub_2", "sub_1", "sub_0"]);
    // A missing activation sorts last ascending, first descending.
    let by_activation = |desc: bool| {
        q(&move |q| {
            q.order = SubscriptionOrder::Time(TimeColumn::ActivatedAt);
            q.descending = desc;
        })
    };
    assert_eq!(list(by_activation(false)).await.last().map(String::as_str), Some("sub_3"));
    assert_eq!(list(by_activation(true)).await.first().map(String::as_str), Some("sub_3"));
    // Keyset pages of 2 after a cursor.
    let after = recur_storage::page::Cursor::time(t(11), "sub_1");
    assert_eq!(
        list(q(&|q| {
            q.after = Some(after.clone());
            q.limit = 2;
        }))
        .await,
        ["sub_2", "sub_3"]
    );
    let by_id = recur_storage::page::Cursor::text("sub_2", "sub_2");
    assert_eq!(
        list(q(&|q| {
            q.order = SubscriptionOrder::Id;
            q.after = Some(by_id.clone());
        }))
        .await,
        ["sub_3", "sub_4"]
    );
    assert!(repo.list_subscriptions("globex", &q(&|_| {})).await.expect("other").is_empty());
}

async fn invoices_list_by_account_subscription_and_status(repo: &dyn SubscriptionRepo) {
    use repo::InvoiceQuery;
    seed(repo, "acme", "acct_1", "bg_1").await;
    for i in 0..3 {
        let sub = subscription(&format!("sub_{i}"), "acct_1", "bg_1");
        let mut inv = invoice(&format!("inv_{i}"), &sub, &["10.00"]);
        inv.created_at = t(10 + i);
        if i == 2 {
            inv.status = InvoiceStatus::Paid;
        }
        repo.insert_subscription("acme", &sub, Some(&inv), NO_KEY, &[], &[]).await.expect("insert");
    }
    let ids = |rows: Vec<Invoice>| rows.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let all = repo.list_invoices("acme", &InvoiceQuery { limit: 10, ..Default::default() }).await.expect("all");
    assert_eq!(ids(all), ["inv_0", "inv_1", "inv_2"]);
    let paid = InvoiceQuery { status: Some(InvoiceStatus::Paid), limit: 10, ..Default::default() };
    assert_eq!(ids(repo.list_invoices("acme", &paid).await.expect("paid")), ["inv_2"]);
    let of = InvoiceQuery { subscription_id: Some("sub_1".into()), limit: 10, ..Default::default() };
    let found = repo.list_invoices("acme", &of).await.expect("of");
    assert_eq!(found[0].lines.len(), 1, "with its lines");
    let page =
        InvoiceQuery { after: Some(recur_storage::page::Cursor::time(t(10), "inv_0")), limit: 1, ..Default::default() };
    assert_eq!(ids(repo.list_invoices("acme", &page).await.expect("page")), ["inv_1"]);
    let other = InvoiceQuery { account_id: Some("acct_1".into()), limit: 10, ..Default::default() };
    assert!(repo.list_invoices("globex", &other).await.expect("other").is_empty());
}

async fn a_change_is_written_once_over_the_version_it_read(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let mut sub = subscription("sub_1", "acct_1", "bg_1");
    sub.state = SubscriptionState::Pending;
    sub.activated_at = None;
    repo.insert_subscription("acme", &sub, None, NO_KEY, &[], &[]).await.expect("insert");
    let mut active = sub.clone();
    active.state = SubscriptionState::Active;
    active.activated_at = Some(t(7));
    active.current_period_start = t(7);
    active.billing_anchor = BillingAnchor { day: 12, month: 0 };
    active.items = vec![Item { product_id: "prod_9".into(), quantity: Decimal::TWO, custom_price: None }];
    let inv = invoice("inv_1", &active, &["10.00"]);
    let key = Idem { key: Some("act-1"), hash: "h" };
    let event = Event::new(
        SubscriptionEvent::SubscriptionActivated { subscription_id: "sub_1".into(), account_id: "acct_1".into() },
        t(7),
    );
    let change = Change {
        sub: &active,
        action: "activate",
        idem: key,
        invoice: Some(&inv),
        closing: None,
        credits: &[],
        redeem: &[],
        release: &[],
        events: std::slice::from_ref(&event),
        lists_unchanged: false,
    };
    assert!(repo.save_subscription("acme", &change).await.expect("activate"));
    let mut stored = active.clone();
    stored.version = 1;
    assert_eq!(repo.get_subscription("acme", "sub_1").await.expect("get"), Some(stored));
    assert_eq!(
        repo.mutation_by_key("acme", "act-1").await.expect("key"),
        Some(MutationKey { subscription_id: "sub_1".into(), request_hash: "h".into(), invoice_id: "inv_1".into() })
    );
    assert_eq!(repo.invoices_of_subscription("acme", "sub_1").await.expect("invoices").len(), 1);
    // The listing's product filter follows the new items.
    let q = SubscriptionQuery {
        states: vec![],
        account_id: None,
        offering_id: None,
        rate_id: None,
        product_id: Some("prod_9".into()),
        coupon_code: None,
        metadata: vec![],
        time_range: None,
        order: SubscriptionOrder::Id,
        descending: false,
        after: None,
        limit: 10,
    };
    assert_eq!(repo.list_subscriptions("acme", &q).await.expect("list").len(), 1);
    // Written over version 0 again (a change that read it before the
    // first was written): nothing is written.
    let other = Idem { key: Some("act-2"), hash: "h" };
    let inv2 = invoice("inv_2", &active, &["10.00"]);
    let stale = Change {
        sub: &active,
        action: "activate",
        idem: other,
        invoice: Some(&inv2),
        closing: None,
        credits: &[],
        redeem: &[],
        release: &[],
        events: &[],
        lists_unchanged: false,
    };
    assert!(!repo.save_subscription("acme", &stale).await.expect("second"));
    assert_eq!(repo.get_invoice("acme", "inv_2").await.expect("get"), None);
    assert_eq!(repo.mutation_by_key("acme", "act-2").await.expect("key"), None);
    assert_eq!(repo.mutation_by_key("globex", "act-1").await.expect("other tenant"), None);
}

async fn credit_moves_once_per_source_and_never_below_zero(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let sub = subscription("sub_1", "acct_1", "bg_1");
    repo.insert_subscription("acme", &sub, None, NO_KEY, &[], &[]).await.expect("insert");
    let usd = sub.currency;
    let grant = CreditEntry::new("acct_1", usd, Decimal::new(1250, 2), "invoice:inv_a".into(), t(1));
    let save = |s: Subscription, credits: Vec<CreditEntry>| async move {
        let change = Change {
            sub: &s,
            action: "change",
            idem: NO_KEY,
            invoice: None,
            closing: None,
            credits: &credits,
            redeem: &[],
            release: &[],
            events: &[],
            lists_unchanged: false,
        };
        repo.save_subscription("acme", &change).await
    };
    assert!(save(sub.clone(), vec![grant.clone()]).await.expect("grant"));
    assert_eq!(
        repo.credit_balances("acme", "acct_1").await.expect("balance"),
        vec![("USD".into(), Decimal::new(1250, 2))]
    );
    // The same source again is refused by the database.
    let mut v1 = sub.clone();
    v1.version = 1;
    let mut again = grant.clone();
    again.id = "cred_other".into();
    assert!(save(v1.clone(), vec![again]).await.expect_err("same source").is_unique());
    // Consuming more than there is writes nothing.
    let overdraw = CreditEntry::new("acct_1", usd, Decimal::new(-2000, 2), "invoice:inv_b".into(), t(2));
    assert!(!save(v1.clone(), vec![overdraw]).await.expect("overdraw"));
    assert_eq!(repo.get_subscription("acme", "sub_1").await.expect("get").map(|s| s.version), Some(1));
    let take = CreditEntry::new("acct_1", usd, Decimal::new(-1250, 2), "invoice:inv_c".into(), t(2));
    assert!(save(v1, vec![take]).await.expect("take"));
    assert_eq!(repo.credit_balances("acme", "acct_1").await.expect("balance"), vec![("USD".into(), Decimal::ZERO)]);
    assert!(repo.credit_balances("globex", "acct_1").await.expect("other tenant").is_empty());
}

/// An immediate cancellation's credit note and the DRAFT of its period's
/// usage so far are written with the change, or neither is; the draft's
/// part of the period is invoiced once.
async fn a_change_writes_the_draft_of_the_part_of_the_period_it_ends(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let sub = subscription("sub_1", "acct_1", "bg_1");
    repo.insert_subscription("acme", &sub, None, NO_KEY, &[], &[]).await.expect("insert");
    let mut canceled = sub.clone();
    canceled.state = SubscriptionState::Canceled;
    canceled.expires_at = Some(t(5));
    let credit = invoice("inv_credit", &canceled, &["-10.00"]);
    let mut closing = invoice("inv_close", &canceled, &["3.50"]);
    closing.reason = InvoiceReason::PeriodClose;
    closing.status = InvoiceStatus::Draft;
    closing.period_end = Some(t(5));
    closing.next_action_at = Some(t(6));
    let key = Idem { key: Some("cancel-1"), hash: "h" };
    let change = Change { idem: key, closing: Some(&closing), ..plain(&canceled, "cancel", Some(&credit)) };
    assert!(repo.save_subscription("acme", &change).await.expect("cancel"));
    assert_eq!(repo.get_invoice("acme", "inv_close").await.expect("get"), Some(closing.clone()));
    assert!(repo.get_invoice("acme", "inv_credit").await.expect("get").is_some());
    // The change's answer names its invoice, not the draft.
    assert_eq!(
        repo.mutation_by_key("acme", "cancel-1").await.expect("key").map(|m| m.invoice_id),
        Some("inv_credit".into())
    );
    // The same part of the same period again (another run's): refused, and
    // nothing of that change is written.
    let mut v1 = canceled.clone();
    v1.version = 1;
    let mut twice = closing.clone();
    twice.id = "inv_close_2".into();
    let again = Change { closing: Some(&twice), ..plain(&v1, "cancel", None) };
    assert!(repo.save_subscription("acme", &again).await.expect_err("twice").is_unique());
    assert_eq!(repo.get_invoice("acme", "inv_close_2").await.expect("get"), None);
    assert_eq!(repo.get_subscription("acme", "sub_1").await.expect("get").map(|s| s.version), Some(1));
}

/// A change of `sub` by `action` with no key, credit, coupon or event.
fn plain<'a>(sub: &'a Subscription, action: &'a str, invoice: Option<&'a Invoice>) -> Change<'a> {
    Change {
        sub,
        action,
        idem: NO_KEY,
        invoice,
        closing: None,
        credits: &[],
        redeem: &[],
        release: &[],
        events: &[],
        lists_unchanged: false,
    }
}

fn parked_event(id: &str) -> Event {
    Event::new(
        SubscriptionEvent::SubscriptionParked { subscription_id: id.into(), reason: "R".into(), message: "m".into() },
        t(3),
    )
}

/// A renewal of `sub` (read at its version) to `[start, end)` with a cycle
/// invoice `inv_id`.
async fn renew(
    repo: &dyn SubscriptionRepo,
    sub: &Subscription,
    inv_id: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<bool, recur_storage::StorageError> {
    let mut next = sub.clone();
    next.current_period_start = start;
    next.current_period_end = end;
    next.next_billing_at = Some(end);
    let mut inv = invoice(inv_id, &next, &["10.00"]);
    inv.reason = InvoiceReason::SubscriptionCycle;
    inv.status = InvoiceStatus::Draft;
    inv.next_action_at = Some(start + Duration::hours(1));
    let change = plain(&next, "renew", Some(&inv));
    repo.save_subscription("acme", &change).await
}

fn due(tenant: Option<&'static str>, owner: &'static str, wall: i64) -> repo::DueQuery<'static> {
    repo::DueQuery { tenant, due: t(100), owner, wall_now: t(wall), lease_until: t(wall + 60), limit: 10 }
}

async fn due_subscriptions_are_leased_to_one_run_until_the_lease_ends(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    for (id, at) in [("sub_a", 10), ("sub_b", 20), ("sub_later", 1000), ("sub_parked", 5)] {
        let mut s = subscription(id, "acct_1", "bg_1");
        s.next_billing_at = Some(t(at));
        repo.insert_subscription("acme", &s, None, NO_KEY, &[], &[]).await.expect("insert");
    }
    assert!(
        repo.park_subscription("acme", "sub_parked", 0, "R", t(3), &parked_event("sub_parked")).await.expect("park")
    );
    let ids = |v: Vec<(String, String)>| v.into_iter().map(|(_, id)| id).collect::<Vec<_>>();
    let first = repo.claim_due(&due(None, "run-a", 0)).await.expect("claim");
    assert_eq!(ids(first), vec!["sub_a", "sub_b"], "due, not parked, not later");
    assert!(repo.claim_due(&due(None, "run-b", 30)).await.expect("claim").is_empty(), "leased to run-a");
    // run-a died: its lease ends and another run takes the work.
    assert_eq!(ids(repo.claim_due(&due(None, "run-b", 61)).await.expect("claim")), vec!["sub_a", "sub_b"]);
    let a = ("acme".to_string(), "sub_a".to_string());
    repo.release_leases("run-a", std::slice::from_ref(&a)).await.expect("not run-a's any more");
    assert_eq!(ids(repo.claim_due(&due(None, "run-c", 62)).await.expect("claim")), Vec::<String>::new());
    // run-b gives up both of its leases in one statement; another tenant's
    // subscription of the same id is not touched.
    let b = ("acme".to_string(), "sub_b".to_string());
    repo.release_leases("run-b", &[a, b, ("globex".to_string(), "sub_a".to_string())]).await.expect("release");
    assert_eq!(ids(repo.claim_due(&due(None, "run-c", 62)).await.expect("claim")), vec!["sub_a", "sub_b"]);
    repo.release_leases("run-c", &[]).await.expect("nothing to give up");
}

async fn a_parked_subscription_keeps_its_reason_until_changed(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let s = subscription("sub_1", "acct_1", "bg_1");
    repo.insert_subscription("acme", &s, None, NO_KEY, &[], &[]).await.expect("insert");
    assert!(!repo.park_subscription("acme", "sub_1", 7, "R", t(3), &parked_event("sub_1")).await.expect("stale"));
    assert!(repo.park_subscription("acme", "sub_1", 0, "RATE_GONE", t(3), &parked_event("sub_1")).await.expect("park"));
    let parked = repo.get_subscription("acme", "sub_1").await.expect("get").expect("sub");
    assert_eq!((parked.parked_reason.as_str(), parked.version), ("RATE_GONE", 1));
    assert!(event_types(repo, "acme").await.contains(&"subscription.parked".to_string()));
    assert_eq!(repo.next_due("acme").await.expect("next"), None, "the clock leaves it alone");
    let mut cleared = parked.clone();
    cleared.parked_reason.clear();
    let change = plain(&cleared, "change", None);
    assert!(repo.save_subscription("acme", &change).await.expect("change"));
    assert_eq!(repo.next_due("acme").await.expect("next"), s.next_billing_at);
}

async fn a_period_is_invoiced_once_by_the_database(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let s = subscription("sub_1", "acct_1", "bg_1");
    repo.insert_subscription("acme", &s, None, NO_KEY, &[], &[]).await.expect("insert");
    let (start, end) = (s.current_period_end, s.current_period_end + Duration::days(31));
    assert!(renew(repo, &s, "inv_c1", start, end).await.expect("renew"));
    // Another run that read the same version: refused by the version.
    assert!(!renew(repo, &s, "inv_c2", start, end).await.expect("stale"));
    // Even over the current version, the same period is not invoiced twice.
    let mut v1 = s.clone();
    v1.version = 1;
    let twice = renew(repo, &v1, "inv_c3", start, end).await.expect_err("the same period again");
    assert!(twice.is_unique(), "{twice:?}");
    assert_eq!(repo.invoices_of_subscription("acme", "sub_1").await.expect("invoices").len(), 1);
    let stored = repo.get_invoice("acme", "inv_c1").await.expect("get").expect("invoice");
    assert_eq!((stored.reason, stored.status), (InvoiceReason::SubscriptionCycle, InvoiceStatus::Draft));
    assert_eq!(stored.number, "", "a draft has no number yet");
    assert_eq!(stored.next_action_at, Some(start + Duration::hours(1)));
    let ids = repo.invoices_due(Some("acme"), start + Duration::hours(1), 10).await.expect("due");
    assert_eq!(ids, vec![("acme".to_string(), "inv_c1".to_string())]);
    assert!(repo.invoices_due(Some("acme"), start, 10).await.expect("due").is_empty(), "not before the grace");
    assert_eq!(repo.next_due("acme").await.expect("next"), Some(start + Duration::hours(1)));
    // One run takes it; another that read the same time does not.
    let grace = start + Duration::hours(1);
    assert!(!repo.take_invoice("acme", "inv_c1", start, t(999)).await.expect("not that time"));
    assert!(repo.take_invoice("acme", "inv_c1", grace, grace + Duration::seconds(60)).await.expect("take"));
    assert!(!repo.take_invoice("acme", "inv_c1", grace, grace + Duration::seconds(60)).await.expect("taken"));
    assert!(repo.invoices_due(Some("acme"), grace, 10).await.expect("due").is_empty(), "leased");
    assert_eq!(repo.next_due("acme").await.expect("next"), Some(grace + Duration::seconds(60)));
    // The next period is a new one.
    assert!(renew(repo, &v1, "inv_c4", end, end + Duration::days(30)).await.expect("next period"));
}

async fn a_pass_claims_its_due_invoices_in_one_statement(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let mut subs = Vec::new();
    for id in ["sub_1", "sub_2", "sub_3"] {
        let s = subscription(id, "acct_1", "bg_1");
        repo.insert_subscription("acme", &s, None, NO_KEY, &[], &[]).await.expect("insert");
        subs.push(s);
    }
    // Drafts due an hour after their periods start: two now, one later.
    let start = subs[0].current_period_end;
    let end = start + Duration::days(31);
    assert!(renew(repo, &subs[0], "inv_a", start, end).await.expect("renew"));
    assert!(renew(repo, &subs[1], "inv_b", start + Duration::minutes(5), end).await.expect("renew"));
    assert!(renew(repo, &subs[2], "inv_later", start + Duration::days(2), end).await.expect("renew"));
    let now = start + Duration::hours(2);
    let until = now + Duration::seconds(60);
    let claimed = repo.claim_invoices(now, until, 10).await.expect("claim");
    let due = |inv: &str, at: DateTime<Utc>| ("acme".to_string(), inv.to_string(), at);
    assert_eq!(
        claimed,
        vec![due("inv_a", start + Duration::hours(1)), due("inv_b", start + Duration::minutes(65))],
        "earliest first, each with the time it was due"
    );
    let stored = repo.get_invoice("acme", "inv_a").await.expect("get").expect("invoice");
    assert_eq!(stored.next_action_at, Some(until), "taken until the lease ends");
    assert!(repo.claim_invoices(now, until, 10).await.expect("claim").is_empty(), "taken");
    // The run died: when its lease ends another run takes them again.
    let again = repo.claim_invoices(until, until + Duration::seconds(60), 1).await.expect("claim");
    assert_eq!(again, vec![due("inv_a", until)]);
}

async fn renewals_written_together_undo_only_the_one_that_fails(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let mut subs = Vec::new();
    for id in ["sub_1", "sub_2", "sub_3"] {
        let s = subscription(id, "acct_1", "bg_1");
        repo.insert_subscription("acme", &s, None, NO_KEY, &[], &[]).await.expect("insert");
        subs.push(s);
    }
    let (start, end) = (subs[0].current_period_end, subs[0].current_period_end + Duration::days(31));
    // sub_3's period is invoiced already (by another run).
    assert!(renew(repo, &subs[2], "inv_other_run", start, end).await.expect("renew"));
    let next = |s: &Subscription, version: i64| {
        let mut n = s.clone();
        n.version = version;
        n.current_period_start = start;
        n.current_period_end = end;
        n.next_billing_at = Some(end);
        n
    };
    let drafts = |n: &Subscription, id: &str| {
        let mut inv = invoice(id, n, &["10.00"]);
        inv.reason = InvoiceReason::SubscriptionCycle;
        inv.status = InvoiceStatus::Draft;
        inv
    };
    // sub_1 renews; sub_2 was read at a version that moved on; sub_3's
    // period has its invoice.
    let (n1, n2, n3) = (next(&subs[0], 0), next(&subs[1], 7), next(&subs[2], 1));
    let (i1, i2, i3) = (drafts(&n1, "inv_1"), drafts(&n2, "inv_2"), drafts(&n3, "inv_3"));
    let events = [Event::new(
        SubscriptionEvent::SubscriptionRenewed {
            subscription_id: "sub_1".into(),
            period_start: String::new(),
            period_end: String::new(),
            invoice_id: "inv_1".into(),
        },
        start,
    )];
    let mut c1 = plain(&n1, "renew", Some(&i1));
    c1.events = &events;
    let changes = [c1, plain(&n2, "renew", Some(&i2)), plain(&n3, "renew", Some(&i3))];
    let saved = repo.save_subscriptions("acme", &changes).await.expect("one transaction");
    assert!(matches!(saved[0], Ok(true)), "{:?}", saved[0]);
    assert!(matches!(saved[1], Ok(false)), "{:?}", saved[1]);
    assert!(saved[2].as_ref().is_err_and(|e| e.is_unique()), "{:?}", saved[2]);
    let got = repo.get_subscription("acme", "sub_1").await.expect("get").expect("sub");
    assert_eq!((got.version, got.current_period_end), (1, end));
    assert!(repo.get_invoice("acme", "inv_1").await.expect("get").is_some());
    assert!(event_types(repo, "acme").await.contains(&"subscription.renewed".to_string()));
    for (id, version) in [("sub_2", 0), ("sub_3", 1)] {
        let got = repo.get_subscription("acme", id).await.expect("get").expect("sub");
        assert_eq!(got.version, version, "{id} is as it was");
    }
    assert!(repo.get_invoice("acme", "inv_2").await.expect("get").is_none());
    assert!(repo.get_invoice("acme", "inv_3").await.expect("get").is_none());
    assert!(repo.save_subscriptions("acme", &[]).await.expect("nothing").is_empty());
}

async fn one_off_charges_are_billed_by_one_renewal(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let s = subscription("sub_1", "acct_1", "bg_1");
    repo.insert_subscription("acme", &s, None, NO_KEY, &[], &[]).await.expect("insert");
    let charge = PendingCharge {
        id: "pch_1".into(),
        account_id: "acct_1".into(),
        subscription_id: "sub_1".into(),
        product_id: "prod_1".into(),
        description: "Setup".into(),
        quantity: Decimal::ONE,
        unit_amount: "5".into(),
        amount: d("5.00"),
        currency: s.currency,
        created_at: t(3),
    };
    repo.insert_pending_charge("acme", &charge, NO_KEY).await.expect("charge");
    let both = ["sub_1".to_string(), "sub_none".to_string()];
    let waiting = repo.pending_charges_of("acme", &both).await.expect("pending of many");
    assert_eq!(waiting.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["pch_1"], "read with others");
    assert!(repo.pending_charges_of("globex", &both).await.expect("other tenant").is_empty());
    let mut next = s.clone();
    next.current_period_start = s.current_period_end;
    next.current_period_end = s.current_period_end + Duration::days(31);
    let mut inv = invoice("inv_c1", &next, &["10.00"]);
    inv.reason = InvoiceReason::SubscriptionCycle;
    inv.lines.push(InvoiceLine { id: "pch_1".into(), kind: LineKind::OneOff, ..inv.lines[0].clone() });
    inv.total_lines();
    let change = plain(&next, "renew", Some(&inv));
    assert!(repo.save_subscription("acme", &change).await.expect("renew"));
    assert!(repo.pending_charges("acme", "sub_1").await.expect("pending").is_empty(), "billed");
    assert!(repo.pending_charges_of("acme", &both).await.expect("pending of many").is_empty(), "billed");
}

async fn coupons_count_the_periods_they_discounted(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let s = subscription("sub_1", "acct_1", "bg_1");
    let first = invoice("inv_1", &s, &["90.00"]);
    let redeem = [repo::Redemption { code: "SAVE10".into(), max_redemptions: 0 }];
    repo.insert_subscription("acme", &s, Some(&first), NO_KEY, &redeem, &[]).await.expect("insert");
    assert_eq!(repo.coupon_periods("acme", "sub_1").await.expect("periods"), vec![("SAVE10".to_string(), 1)]);
    let (start, end) = (s.current_period_end, s.current_period_end + Duration::days(31));
    assert!(renew(repo, &s, "inv_c1", start, end).await.expect("renew"));
    assert_eq!(repo.coupon_periods("acme", "sub_1").await.expect("periods"), vec![("SAVE10".to_string(), 2)]);
    // The invoice of a period's last part counts too; a one-off charge's
    // (or a change's) does not.
    let mut last = invoice("inv_close", &s, &["4.00"]);
    last.reason = InvoiceReason::PeriodClose;
    let mut one_off = invoice("inv_one_off", &s, &["1.00"]);
    one_off.reason = InvoiceReason::Manual;
    for inv in [&last, &one_off] {
        repo.insert_invoice_once("acme", inv, NO_KEY, &[]).await.expect("insert");
    }
    assert_eq!(repo.coupon_periods("acme", "sub_1").await.expect("periods"), vec![("SAVE10".to_string(), 3)]);
    assert!(repo.coupon_periods("globex", "sub_1").await.expect("other tenant").is_empty());
    // Read with other subscriptions' at once: the same count, by subscription.
    let s2 = subscription("sub_2", "acct_1", "bg_1");
    repo.insert_subscription("acme", &s2, Some(&invoice("inv_2", &s2, &["9.00"])), NO_KEY, &redeem, &[])
        .await
        .expect("second");
    let ids = ["sub_1".to_string(), "sub_2".to_string(), "sub_none".to_string()];
    assert_eq!(
        repo.coupon_periods_of("acme", &ids).await.expect("periods of many"),
        vec![("sub_1".to_string(), "SAVE10".to_string(), 3), ("sub_2".to_string(), "SAVE10".to_string(), 1)]
    );
    assert!(repo.coupon_periods_of("globex", &ids).await.expect("other tenant").is_empty());
}

async fn test_clocks_start_once_move_forward_only_and_keep_the_tenant_apart(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    seed(repo, "globex", "acct_1", "bg_1").await;
    let mut s = subscription("sub_1", "acct_1", "bg_1");
    s.next_billing_at = Some(t(10));
    repo.insert_subscription("acme", &s, None, NO_KEY, &[], &[]).await.expect("insert");
    repo.insert_subscription("globex", &s, None, NO_KEY, &[], &[]).await.expect("insert");
    assert!(repo.start_test_clock("acme", t(0), t(0)).await.expect("start"));
    assert!(!repo.start_test_clock("acme", t(50), t(0)).await.expect("again"));
    assert!(repo.move_test_clock("acme", t(20), t(1)).await.expect("forward"));
    assert!(!repo.move_test_clock("acme", t(5), t(1)).await.expect("back"));
    assert!(!repo.move_test_clock("globex", t(5), t(1)).await.expect("not in test mode"));
    assert_eq!(repo.test_clocks().await.expect("clocks"), vec![("acme".to_string(), t(20))]);
    // The real clock's runs skip a tenant in test mode; its own runs find it.
    let all = repo.claim_due(&due(None, "run-a", 0)).await.expect("claim");
    assert_eq!(all, vec![("globex".to_string(), "sub_1".to_string())]);
    let own = repo.claim_due(&due(Some("acme"), "test-clock", 0)).await.expect("claim");
    assert_eq!(own, vec![("acme".to_string(), "sub_1".to_string())]);
}

async fn a_declined_payment_keeps_the_invoice_dunning_state(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let sub = subscription("sub_1", "acct_1", "bg_1");
    let mut inv = invoice("inv_1", &sub, &["10.00"]);
    repo.insert_subscription("acme", &sub, Some(&inv), NO_KEY, &[], &[]).await.expect("insert");
    inv.payment_ids = vec!["pay_1".into()];
    inv.attempt_count = 1;
    inv.first_failed_at = Some(t(3));
    inv.next_action_at = Some(t(3) + Duration::days(1));
    inv.updated_at = t(3);
    repo.record_payment("acme", &inv, &[]).await.expect("record");
    let got = repo.get_invoice("acme", "inv_1").await.expect("get").expect("inv");
    assert_eq!(
        (got.attempt_count, got.first_failed_at, got.next_action_at),
        (1, inv.first_failed_at, inv.next_action_at)
    );
    // A hard decline pauses collection, written over what was read.
    let mut paused = got.clone();
    paused.attempt_count = 2;
    paused.collection_paused = "hard_decline".into();
    paused.next_action_at = None;
    paused.updated_at = t(4);
    assert!(repo.update_invoice("acme", &paused, got.status, got.updated_at, &[], &[]).await.expect("update"));
    let again = repo.get_invoice("acme", "inv_1").await.expect("get").expect("inv");
    assert_eq!(
        (again.attempt_count, again.collection_paused.as_str(), again.next_action_at),
        (2, "hard_decline", None)
    );
    assert!(!repo.update_invoice("acme", &paused, got.status, got.updated_at, &[], &[]).await.expect("stale"));
}

fn usage(id: &str, at: i64) -> UsageEvent {
    UsageEvent {
        event_id: id.into(),
        subscription_id: "sub_1".into(),
        product_id: "prod_1".into(),
        quantity: d("2.5"),
        event_time: t(at),
        properties: [("region".to_string(), "eu".to_string())].into_iter().collect(),
        created_at: t(at),
    }
}

async fn a_usage_event_id_is_stored_once_per_tenant(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let first = repo.insert_usage("acme", &[usage("e1", 1), usage("e2", 2)]).await.expect("insert");
    assert_eq!(first.len(), 2);
    let again = repo.insert_usage("acme", &[usage("e2", 3), usage("e3", 3)]).await.expect("again");
    assert_eq!(again, vec!["e3".to_string()], "e2 was seen before");
    assert_eq!(repo.usage_count("acme", "sub_1").await.expect("count"), 3);
    let other = repo.insert_usage("globex", &[usage("e1", 1)]).await.expect("other tenant");
    assert_eq!(other.len(), 1, "event ids are the tenant's own");
    assert!(repo.insert_usage("acme", &[]).await.expect("nothing").is_empty());
}

async fn usage_adds_up_by_each_aggregation_within_the_period(repo: &dyn SubscriptionRepo) {
    use recur_subscription::domain::usage::{Aggregation, Meter};
    seed(repo, "acme", "acct_1", "bg_1").await;
    let ev = |id: &str, q: &str, at: i64, user: Option<&str>| UsageEvent {
        quantity: d(q),
        properties: user.map(|u| ("user".to_string(), u.to_string())).into_iter().collect(),
        ..usage(id, at)
    };
    let events = [
        ev("e1", "2.5", 10, Some("alice")),
        ev("e2", "4", 30, Some("bob")),
        ev("e3", "1.25", 20, Some("alice")),
        ev("e4", "7", 15, None),
        // Outside the period [10, 40): before it, at its end.
        ev("e5", "100", 9, Some("carol")),
        ev("e6", "100", 40, Some("dave")),
    ];
    repo.insert_usage("acme", &events).await.expect("insert");
    repo.insert_usage("globex", &[ev("g1", "50", 20, Some("erin"))]).await.expect("other tenant");
    let mut other = ev("o1", "50", 20, Some("frank"));
    other.product_id = "prod_2".into();
    repo.insert_usage("acme", &[other]).await.expect("other product");
    let of = |aggregation, property: &str| Meter { aggregation, property: property.into() };
    for (meter, want, events) in [
        (of(Aggregation::Sum, ""), "14.75", 4),
        (of(Aggregation::Count, ""), "4", 4),
        (of(Aggregation::Max, ""), "7", 4),
        (of(Aggregation::UniqueCount, "user"), "2", 4),
        (of(Aggregation::Latest, ""), "4", 4),
    ] {
        let got = repo.aggregate_usage("acme", "sub_1", "prod_1", &meter, t(10), t(40)).await.expect("aggregate");
        assert_eq!((got.value(), got.events()), (d(want), events), "{meter:?}");
    }
    let none = repo
        .aggregate_usage("acme", "sub_1", "prod_1", &of(Aggregation::Max, ""), t(41), t(99))
        .await
        .expect("empty period");
    assert_eq!((none.value(), none.events()), (Decimal::ZERO, 0));
}

async fn a_last_periods_usage_is_invoiced_once_by_the_database(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let s = subscription("sub_1", "acct_1", "bg_1");
    repo.insert_subscription("acme", &s, None, NO_KEY, &[], &[]).await.expect("insert");
    let close = |id: &str, version: i64| {
        let mut inv = invoice(id, &s, &["3.00"]);
        inv.reason = InvoiceReason::PeriodClose;
        inv.status = InvoiceStatus::Draft;
        let mut next = s.clone();
        next.version = version;
        next.state = SubscriptionState::Canceled;
        (next, inv)
    };
    let (next, inv) = close("inv_close_1", 0);
    assert!(repo.save_subscription("acme", &plain(&next, "cancel", Some(&inv))).await.expect("close"));
    let (next, inv) = close("inv_close_2", 1);
    let twice = repo.save_subscription("acme", &plain(&next, "cancel", Some(&inv))).await.expect_err("twice");
    assert!(twice.is_unique(), "{twice:?}");
    let stored = repo.get_invoice("acme", "inv_close_1").await.expect("get").expect("invoice");
    assert_eq!(stored.reason, InvoiceReason::PeriodClose);
}

async fn finalizing_a_draft_writes_its_recounted_usage_lines(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let s = subscription("sub_1", "acct_1", "bg_1");
    repo.insert_subscription("acme", &s, None, NO_KEY, &[], &[]).await.expect("insert");
    let mut next = s.clone();
    next.current_period_start = s.current_period_end;
    next.current_period_end = s.current_period_end + Duration::days(31);
    let mut inv = invoice("inv_u1", &next, &["3.00", "10.00"]);
    inv.lines[0].kind = LineKind::Usage;
    inv.reason = InvoiceReason::SubscriptionCycle;
    inv.status = InvoiceStatus::Draft;
    assert!(repo.save_subscription("acme", &plain(&next, "renew", Some(&inv))).await.expect("renew"));
    let mut draft = repo.get_invoice("acme", "inv_u1").await.expect("get").expect("invoice");
    let (was, read_at) = (draft.status, draft.updated_at);
    draft.lines[0].quantity = d("9.5");
    draft.lines[0].amount_without_tax = d("4.75");
    draft.lines[0].discount = d("0.95");
    draft.lines[0].amount = d("3.80");
    // A line that is not usage is never rewritten.
    draft.lines[1].amount = d("99");
    draft.total_lines();
    draft.status = InvoiceStatus::Open;
    draft.updated_at = read_at + Duration::seconds(1);
    assert!(repo.update_invoice("acme", &draft, was, read_at, &[], &[]).await.expect("finalize"));
    let stored = repo.get_invoice("acme", "inv_u1").await.expect("get").expect("invoice");
    let l = &stored.lines[0];
    assert_eq!((l.quantity, l.amount_without_tax, l.discount, l.amount), (d("9.5"), d("4.75"), d("0.95"), d("3.80")));
    assert_eq!(stored.lines[1].amount, d("10.00"));
    assert_eq!(stored.amount, draft.amount, "the total as finalized");
}

async fn subscriptions_accounts_invoices_and_bill_groups_are_read_many_at_once(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let e = Event::new(
        SubscriptionEvent::BillGroupCreated { bill_group_id: "bg_2".into(), account_id: "acct_1".into() },
        t(1),
    );
    repo.insert_bill_group("acme", &bill_group("bg_2", "acct_1"), NO_KEY, &e).await.expect("bg_2");
    let s1 = subscription("sub_1", "acct_1", "bg_1");
    let s2 = subscription("sub_2", "acct_1", "bg_2");
    repo.insert_subscription("acme", &s1, Some(&invoice("inv_1", &s1, &["1.00", "2.00"])), NO_KEY, &[], &[])
        .await
        .expect("sub_1");
    repo.insert_subscription("acme", &s2, Some(&invoice("inv_2", &s2, &["3.00"])), NO_KEY, &[], &[])
        .await
        .expect("sub_2");
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut got = repo.get_invoices("acme", &ids(&["inv_2", "inv_1", "inv_none"])).await.expect("invoices");
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let lines: Vec<(String, Vec<Decimal>)> =
        got.iter().map(|i| (i.id.clone(), i.lines.iter().map(|l| l.amount).collect())).collect();
    assert_eq!(
        lines,
        [("inv_1".to_string(), vec![d("1.00"), d("2.00")]), ("inv_2".to_string(), vec![d("3.00")])],
        "each invoice with its own lines in order; an unknown id left out"
    );
    assert!(repo.get_invoices("globex", &ids(&["inv_1"])).await.expect("other tenant").is_empty());
    let mut groups: Vec<String> = repo
        .get_bill_groups("acme", &ids(&["bg_1", "bg_2", "bg_none"]))
        .await
        .expect("bill groups")
        .into_iter()
        .map(|b| b.id)
        .collect();
    groups.sort();
    assert_eq!(groups, ["bg_1", "bg_2"]);
    assert!(repo.get_bill_groups("globex", &ids(&["bg_1"])).await.expect("other tenant").is_empty());
    let mut subs: Vec<Subscription> =
        repo.get_subscriptions("acme", &ids(&["sub_2", "sub_1", "sub_none"])).await.expect("subscriptions");
    subs.sort_by(|a, b| a.id.cmp(&b.id));
    let one = repo.get_subscription("acme", "sub_1").await.expect("get").expect("sub_1");
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0], one, "as read alone");
    assert!(repo.get_subscriptions("globex", &ids(&["sub_1"])).await.expect("other tenant").is_empty());
    let accounts = repo.get_accounts_alone("acme", &ids(&["acct_1", "acct_none"])).await.expect("accounts");
    let alone = repo.get_account_alone("acme", "acct_1").await.expect("get").expect("acct_1");
    assert_eq!(accounts, vec![alone]);
    assert!(repo.get_accounts_alone("globex", &ids(&["acct_1"])).await.expect("other tenant").is_empty());
}

async fn invoices_written_together_skip_only_the_one_that_changed(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let mut drafts = Vec::new();
    for i in 1..=3 {
        let s = subscription(&format!("sub_{i}"), "acct_1", "bg_1");
        let mut inv = invoice(&format!("inv_{i}"), &s, &["10.00"]);
        inv.status = InvoiceStatus::Draft;
        inv.lines[0].kind = LineKind::Usage;
        repo.insert_subscription("acme", &s, Some(&inv), NO_KEY, &[], &[]).await.expect("insert");
        drafts.push(repo.get_invoice("acme", &inv.id).await.expect("get").expect("invoice"));
    }
    // The second changed since it was read.
    let mut moved = drafts[1].clone();
    moved.updated_at += Duration::seconds(5);
    let read_at = drafts[1].updated_at;
    assert!(repo.update_invoice("acme", &moved, InvoiceStatus::Draft, read_at, &[], &[]).await.expect("moved"));
    let finalized: Vec<(Invoice, Vec<Event>)> = drafts
        .iter()
        .map(|d| {
            let mut f = d.clone();
            f.status = InvoiceStatus::Open;
            f.updated_at = d.updated_at + Duration::seconds(1);
            // Its usage counted again.
            f.lines[0].quantity = Decimal::from(7);
            f.lines[0].amount = Decimal::new(1200, 2);
            let e = Event::new(
                SubscriptionEvent::InvoiceFinalized { invoice_id: d.id.clone(), number: String::new() },
                f.updated_at,
            );
            (f, vec![e])
        })
        .collect();
    let writes: Vec<repo::InvoiceWrite<'_>> = finalized
        .iter()
        .zip(&drafts)
        .map(|((f, e), d)| repo::InvoiceWrite {
            invoice: f,
            was: d.status,
            read_at: d.updated_at,
            credits: &[],
            events: e,
        })
        .collect();
    let written = repo.update_invoices("acme", &writes).await.expect("together");
    assert_eq!(written, [true, false, true]);
    let mut stored = Vec::new();
    for id in ["inv_1", "inv_2", "inv_3"] {
        stored.push(repo.get_invoice("acme", id).await.expect("get").expect("inv"));
    }
    let (one, two, three) = (&stored[0], &stored[1], &stored[2]);
    assert_eq!(
        (one.status, two.status, three.status),
        (InvoiceStatus::Open, InvoiceStatus::Draft, InvoiceStatus::Open)
    );
    assert!(!one.number.is_empty() && !three.number.is_empty() && one.number != three.number, "numbered once written");
    assert!(two.number.is_empty());
    let recounted: Vec<_> = stored.iter().map(|i| (i.lines[0].quantity, i.lines[0].amount)).collect();
    assert_eq!(
        recounted,
        [(d("7"), d("12.00")), (d("2.5"), d("10.00")), (d("7"), d("12.00"))],
        "lines only of what was written"
    );
    let finalized_events: Vec<String> = repo
        .list_events("acme", 0, 100)
        .await
        .expect("events")
        .into_iter()
        .filter(|e| e.event.type_name() == "invoice.finalized")
        .map(|e| e.event.resource_id().to_string())
        .collect();
    assert_eq!(finalized_events, ["inv_1", "inv_3"], "events only of what was written");
}

async fn payments_are_recorded_together_and_past_due_ones_found(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let mut paid = Vec::new();
    for i in 1..=2 {
        let s = subscription(&format!("sub_{i}"), "acct_1", "bg_1");
        let mut inv = invoice(&format!("inv_{i}"), &s, &["10.00"]);
        repo.insert_subscription("acme", &s, Some(&inv), NO_KEY, &[], &[]).await.expect("insert");
        inv.status = InvoiceStatus::Paid;
        inv.amount_paid = d("10.00");
        inv.payment_ids = vec![format!("pay_{i}")];
        paid.push(inv);
    }
    let events: Vec<Vec<Event>> = paid
        .iter()
        .map(|i| {
            vec![Event::new(
                SubscriptionEvent::InvoicePaid { invoice_id: i.id.clone(), payment_id: i.payment_ids[0].clone() },
                t(3),
            )]
        })
        .collect();
    let together: Vec<(&Invoice, &[Event])> = paid.iter().zip(&events).map(|(i, e)| (i, e.as_slice())).collect();
    repo.record_payments("acme", &together).await.expect("record");
    for i in &paid {
        let got = repo.get_invoice("acme", &i.id).await.expect("get").expect("inv");
        assert_eq!(
            (got.status, got.amount_due(), got.payment_ids),
            (InvoiceStatus::Paid, d("0"), i.payment_ids.clone())
        );
    }
    let paid_events = repo.list_events("acme", 0, 100).await.expect("events");
    assert_eq!(paid_events.iter().filter(|e| e.event.type_name() == "invoice.paid").count(), 2);
    let past_due = Event::new(
        SubscriptionEvent::SubscriptionPastDue { subscription_id: "sub_2".into(), invoice_id: "inv_2".into() },
        t(4),
    );
    repo.set_subscription_state("acme", "sub_2", SubscriptionState::PastDue, t(4), &past_due).await.expect("state");
    let ids = vec!["sub_1".to_string(), "sub_2".to_string(), "sub_none".to_string()];
    assert_eq!(repo.past_due_among("acme", &ids).await.expect("past due"), ["sub_2"]);
    assert!(repo.past_due_among("globex", &ids).await.expect("other tenant").is_empty());
}

async fn a_renewal_that_keeps_its_products_keeps_its_listing_rows(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let mut sub = subscription("sub_1", "acct_1", "bg_1");
    sub.coupon_codes = vec!["SAVE".into()];
    repo.insert_subscription("acme", &sub, None, NO_KEY, &[], &[]).await.expect("insert");
    let by = |product: Option<&str>, coupon: Option<&str>| SubscriptionQuery {
        states: vec![],
        account_id: None,
        offering_id: None,
        rate_id: None,
        product_id: product.map(Into::into),
        coupon_code: coupon.map(Into::into),
        metadata: vec![],
        time_range: None,
        order: SubscriptionOrder::Id,
        descending: false,
        after: None,
        limit: 10,
    };
    let mut renewed = sub.clone();
    renewed.current_period_start = sub.current_period_end;
    renewed.current_period_end = sub.current_period_end + Duration::days(30);
    let mut change = plain(&renewed, "renew", None);
    change.lists_unchanged = true;
    assert!(repo.save_subscription("acme", &change).await.expect("renew"));
    for q in [by(Some("prod_1"), None), by(None, Some("SAVE"))] {
        let found = repo.list_subscriptions("acme", &q).await.expect("list");
        assert_eq!(found.len(), 1, "still listed by its product and coupon: {q:?}");
        assert_eq!(found[0].current_period_start, renewed.current_period_start);
    }
}

async fn sqlite() -> (TestDatabase, Arc<dyn SubscriptionRepo>) {
    let db = TestDatabase::sqlite();
    let repo = repo::open(&recur_storage::sqlite_file_url(&db.data_dir(), "subscription"), 4).await.expect("open");
    (db, repo)
}

async fn postgres() -> Option<(TestDatabase, Arc<dyn SubscriptionRepo>)> {
    let Some(admin) = postgres_url() else {
        eprintln!("RECUR_TEST_DATABASE_URL unset: Postgres conformance run skipped");
        return None;
    };
    let db = TestDatabase::postgres(&admin).await.expect("test database");
    let repo = repo::open(db.url().expect("url"), 4).await.expect("open");
    Some((db, repo))
}

/// `behaviour` on both backends, as `behaviour::sqlite` and
/// `behaviour::postgres`.
macro_rules! on_both {
    ($($behaviour:ident),+ $(,)?) => {$(
        mod $behaviour {
            #[tokio::test]
            async fn sqlite() {
                let (db, repo) = super::sqlite().await;
                super::$behaviour(&*repo).await;
                db.cleanup().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some((db, repo)) = super::postgres().await else { return };
                super::$behaviour(&*repo).await;
                db.cleanup().await;
            }
        }
    )+};
}

on_both!(
    a_renewal_that_keeps_its_products_keeps_its_listing_rows,
    subscriptions_accounts_invoices_and_bill_groups_are_read_many_at_once,
    invoices_written_together_skip_only_the_one_that_changed,
    payments_are_recorded_together_and_past_due_ones_found,
    a_usage_event_id_is_stored_once_per_tenant,
    usage_adds_up_by_each_aggregation_within_the_period,
    a_pass_claims_its_due_invoices_in_one_statement,
    renewals_written_together_undo_only_the_one_that_fails,
    a_last_periods_usage_is_invoiced_once_by_the_database,
    finalizing_a_draft_writes_its_recounted_usage_lines,
    a_declined_payment_keeps_the_invoice_dunning_state,
    due_subscriptions_are_leased_to_one_run_until_the_lease_ends,
    a_parked_subscription_keeps_its_reason_until_changed,
    a_period_is_invoiced_once_by_the_database,
    one_off_charges_are_billed_by_one_renewal,
    coupons_count_the_periods_they_discounted,
    test_clocks_start_once_move_forward_only_and_keep_the_tenant_apart,
    an_account_with_its_contacts_round_trips,
    an_account_is_read_alone_without_its_contacts,
    a_create_reads_its_key_account_and_bill_group_at_once,
    a_repeated_idempotency_key_returns_the_first_account,
    custom_ids_are_unique_per_tenant,
    accounts_page_in_creation_order,
    accounts_are_found_by_custom_id_or_any_case_of_an_email,
    a_bill_group_round_trips,
    a_subscription_with_its_first_invoice_round_trips,
    an_invoice_keeps_what_fixed_coupons_left_for_its_usage,
    invoice_numbers_count_per_tenant_without_gaps,
    concurrent_invoices_are_numbered_in_one_run_without_gaps,
    a_subscription_is_found_by_its_idempotency_key,
    a_state_change_writes_its_event,
    void_and_cancel_undoes_a_first_invoice,
    a_payment_is_recorded_on_its_invoice,
    event_sequences_are_per_tenant_and_gap_free,
    subscriptions_list_by_every_filter_in_keyset_pages,
    invoices_list_by_account_subscription_and_status,
    a_change_is_written_once_over_the_version_it_read,
    a_change_writes_the_draft_of_the_part_of_the_period_it_ends,
    credit_moves_once_per_source_and_never_below_zero,
    an_account_update_writes_its_fields_and_its_event,
    an_update_that_changes_nothing_writes_nothing,
    updates_of_another_tenants_records_find_none,
    an_updated_custom_id_stays_unique_per_tenant,
    concurrent_updates_of_one_account_keep_each_others_fields,
    accounts_are_listed_by_tag_in_pages,
    a_primary_contact_unsets_the_others,
    a_repeated_idempotency_key_returns_the_first_contact,
    a_bill_group_update_writes_its_fields_and_its_event,
    bill_groups_of_an_account_page_in_creation_order,
);
