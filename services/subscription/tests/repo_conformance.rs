//! The subscription stores' conformance suite: one test per behaviour, each
//! run on SQLite and on Postgres (when `RECUR_TEST_DATABASE_URL` is set), so
//! a failure names the behaviour and the backend that broke it.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use recur_money::Currency;
use recur_storage::testing::{TestDatabase, postgres_url};
use recur_subscription::domain::*;
use recur_subscription::repo::{self, Idem, SubscriptionRepo};
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
        items: vec![Item { product_id: "prod_1".into(), quantity: d("2.5") }],
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
        period_start: Some(sub.current_period_start),
        period_end: Some(sub.current_period_end),
        issued_at: Some(t(2)),
        due_at: Some(t(2)),
        paid_at: None,
        payment_ids: vec![],
        created_at: t(2),
        updated_at: t(2),
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
    repo.insert_subscription("acme", &sub, Some(&inv), NO_KEY, &[]).await.expect("insert");
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

async fn invoice_numbers_count_per_tenant_without_gaps(repo: &dyn SubscriptionRepo) {
    for tenant in ["acme", "globex"] {
        seed(repo, tenant, "acct_1", "bg_1").await;
    }
    for (tenant, n) in [("acme", 1), ("globex", 2), ("acme", 3)] {
        let sub = subscription(&format!("sub_{n}"), "acct_1", "bg_1");
        let inv = invoice(&format!("inv_{n}"), &sub, &["10.00"]);
        repo.insert_subscription(tenant, &sub, Some(&inv), NO_KEY, &[]).await.expect("insert");
    }
    let number = |tenant: &'static str, id: &'static str| async move {
        repo.get_invoice(tenant, id).await.expect("get").expect("invoice").number
    };
    assert_eq!(number("acme", "inv_1").await, "INV-000001");
    assert_eq!(number("globex", "inv_2").await, "INV-000001");
    assert_eq!(number("acme", "inv_3").await, "INV-000002");
}

async fn a_subscription_is_found_by_its_idempotency_key(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    let key = Idem { key: Some("order-1"), hash: "h1" };
    let sub = subscription("sub_1", "acct_1", "bg_1");
    repo.insert_subscription("acme", &sub, None, key, &[]).await.expect("insert");
    let found = repo.subscription_by_key("acme", "order-1").await.expect("by key").expect("found");
    assert_eq!((found.value.id.as_str(), found.request_hash.as_str(), found.created), ("sub_1", "h1", false));
    let again = repo.insert_subscription("acme", &subscription("sub_2", "acct_1", "bg_1"), None, key, &[]).await;
    assert_eq!(again.expect("replay").value.id, "sub_1", "a repeated key writes nothing");
    assert_eq!(repo.get_subscription("acme", "sub_2").await.expect("get"), None);
    assert!(repo.subscription_by_key("globex", "order-1").await.expect("other").is_none());
}

async fn a_state_change_writes_its_event(repo: &dyn SubscriptionRepo) {
    seed(repo, "acme", "acct_1", "bg_1").await;
    repo.insert_subscription("acme", &subscription("sub_1", "acct_1", "bg_1"), None, NO_KEY, &[])
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
    repo.insert_subscription("acme", &sub, Some(&invoice("inv_1", &sub, &["10.00"])), NO_KEY, &[])
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
    repo.insert_subscription("acme", &sub, Some(&inv), NO_KEY, &[]).await.expect("insert");
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
    an_account_with_its_contacts_round_trips,
    a_repeated_idempotency_key_returns_the_first_account,
    custom_ids_are_unique_per_tenant,
    accounts_page_in_creation_order,
    accounts_are_found_by_custom_id_or_any_case_of_an_email,
    a_bill_group_round_trips,
    a_subscription_with_its_first_invoice_round_trips,
    invoice_numbers_count_per_tenant_without_gaps,
    a_subscription_is_found_by_its_idempotency_key,
    a_state_change_writes_its_event,
    void_and_cancel_undoes_a_first_invoice,
    a_payment_is_recorded_on_its_invoice,
    event_sequences_are_per_tenant_and_gap_free,
);
