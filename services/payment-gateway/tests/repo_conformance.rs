//! One conformance suite for the payment ledger's repository (and the
//! sandbox's books), run against SQLite and against Postgres (when
//! `RECUR_TEST_DATABASE_URL` is set): both backends must store, guard,
//! claim, number and refund exactly alike.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use recur_money::{Currency, Money};
use recur_payment::domain::sandbox::{SandboxCharge, SandboxRefund};
use recur_payment::domain::{
    Attempt, Customer, Payment, PaymentEvent, PaymentMethod, PaymentStatus, Refund, RefundStatus,
};
use recur_payment::repo::{self, ChargeStart, RefundResult, Reservation, Stores};
use recur_storage::page::Cursor;
use recur_storage::testing::{TestDatabase, postgres_url};
use rust_decimal::Decimal;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 250_000_000).expect("valid")
}

fn usd(cents: i64) -> Money {
    Money::new(Decimal::new(cents, 2), Currency::from_code("USD").expect("usd"))
}

fn customer(id: &str, at: i64) -> Customer {
    Customer {
        id: id.into(),
        provider: "sandbox".into(),
        provider_customer_id: format!("cus_p_{id}"),
        account_id: "acct_1".into(),
        email: "a@example.com".into(),
        name: "A".into(),
        reference: String::new(),
        default_payment_method_id: None,
        created_at: t(at),
        updated_at: t(at),
    }
}

fn method(id: &str, customer: &str, provider_id: &str, at: i64) -> PaymentMethod {
    PaymentMethod {
        id: id.into(),
        customer_id: customer.into(),
        provider: "sandbox".into(),
        provider_payment_method_id: provider_id.into(),
        name: "visa".into(),
        brand: "visa".into(),
        last4: "4242".into(),
        exp_month: 12,
        exp_year: 2034,
        created_at: t(at),
        removed_at: None,
    }
}

fn payment(id: &str, key: &str, cents: i64, at: i64) -> Payment {
    Payment {
        id: id.into(),
        customer_id: "cus_1".into(),
        payment_method_id: "pm_1".into(),
        amount: usd(cents),
        amount_refunded: usd(0),
        status: PaymentStatus::Processing,
        invoice_id: format!("inv_{id}"),
        description: "Invoice 7".into(),
        provider: "sandbox".into(),
        provider_payment_id: String::new(),
        decline_code: String::new(),
        failure_message: String::new(),
        action_url: String::new(),
        attempt_count: 1,
        metadata: BTreeMap::from([("order".to_string(), "7".to_string())]),
        idempotency_key: key.into(),
        request_hash: format!("hash-{key}"),
        refund_reserved: usd(0),
        return_url: "https://shop.example/back".into(),
        created_at: t(at),
        updated_at: t(at),
    }
}

fn attempt(payment: &str, number: u32, at: i64) -> Attempt {
    Attempt {
        payment_id: payment.into(),
        number,
        started_at: t(at),
        finished_at: None,
        outcome: "pending".into(),
        provider_payment_id: String::new(),
        decline_code: String::new(),
        message: String::new(),
    }
}

fn succeeded(mut p: Payment, at: i64) -> Payment {
    p.status = PaymentStatus::Succeeded;
    p.provider_payment_id = format!("pi_{}", p.id);
    p.updated_at = t(at);
    p
}

fn refund(id: &str, payment: &str, key: &str, cents: i64) -> Refund {
    Refund {
        id: id.into(),
        payment_id: payment.into(),
        amount: usd(cents),
        reason: String::new(),
        status: RefundStatus::Pending,
        provider_refund_id: String::new(),
        failure_message: String::new(),
        idempotency_key: key.into(),
        request_hash: format!("h-{key}"),
        created_at: t(50),
        updated_at: t(50),
    }
}

async fn settle(stores: &Stores, tenant: &str, p: Payment, at: i64) -> Payment {
    let done = succeeded(p, at);
    let mut a = attempt(&done.id, 1, at);
    a.finished_at = Some(t(at));
    a.outcome = "succeeded".into();
    let event = PaymentEvent::for_status(&done, t(at)).expect("an event");
    assert!(
        stores
            .ledger
            .transition(tenant, &done, &[PaymentStatus::Processing], Some(&a), &event, None)
            .await
            .expect("ok")
    );
    done
}

async fn suite(stores: Stores) {
    let r = &stores.ledger;
    // Customers and their idempotency keys.
    let c = r.insert_customer("acme", &customer("cus_1", 0), Some("k1")).await.expect("insert");
    assert_eq!(c, customer("cus_1", 0));
    let again = r.insert_customer("acme", &customer("cus_other", 1), Some("k1")).await.expect("same key");
    assert_eq!(again.id, "cus_1", "the key's customer, nothing new");
    assert_eq!(r.get_customer_by_key("acme", "k1").await.expect("get").map(|c| c.id), Some("cus_1".into()));
    assert!(r.get_customer("globex", "cus_1").await.expect("get").is_none(), "tenants are apart");

    // Payment methods: upsert, default, removal.
    let pm1 = r.insert_payment_method("acme", &method("pm_1", "cus_1", "pp_1", 1)).await.expect("pm");
    let pm2 = r.insert_payment_method("acme", &method("pm_2", "cus_1", "pp_2", 2)).await.expect("pm");
    let dup = r.insert_payment_method("acme", &method("pm_dup", "cus_1", "pp_1", 3)).await.expect("pm");
    assert_eq!(dup.id, pm1.id, "the same provider method is the same method");
    r.set_default_payment_method("acme", "cus_1", "pm_1").await.expect("default");
    let (cus, m) = r.charge_context("acme", "cus_1", None).await.expect("ctx").expect("found");
    assert_eq!((cus.id.as_str(), m.map(|m| m.id)), ("cus_1", Some("pm_1".to_string())));
    let (_, m) = r.charge_context("acme", "cus_1", Some("pm_2")).await.expect("ctx").expect("found");
    assert_eq!(m.map(|m| m.id), Some(pm2.id.clone()));
    assert!(r.charge_context("acme", "cus_1", Some("pm_x")).await.expect("ctx").expect("found").1.is_none());
    assert!(r.charge_context("acme", "cus_x", None).await.expect("ctx").is_none());
    let after = r.remove_payment_method("acme", "cus_1", "pm_1", t(4)).await.expect("remove").expect("removed");
    assert_eq!(after.default_payment_method_id.as_deref(), Some("pm_2"), "the newest remaining one");
    assert!(r.remove_payment_method("acme", "cus_1", "pm_1", t(5)).await.expect("remove").is_none(), "once");
    let (cus, methods) = r.customer_with_methods("acme", "cus_1").await.expect("list").expect("found");
    assert_eq!(cus.id, "cus_1");
    assert_eq!(methods.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["pm_2"], "the active methods only");
    r.insert_customer("acme", &customer("cus_bare", 1), None).await.expect("customer");
    let (bare, none) = r.customer_with_methods("acme", "cus_bare").await.expect("list").expect("found");
    assert_eq!((bare.id.as_str(), none.len()), ("cus_bare", 0), "a customer without methods");
    assert!(r.customer_with_methods("acme", "cus_x").await.expect("list").is_none(), "no such customer");
    assert!(r.get_payment_method("acme", "pm_1").await.expect("get").expect("kept").removed_at.is_some());
    assert!(r.charge_context("acme", "cus_1", Some("pm_1")).await.expect("ctx").expect("found").1.is_none());
    let restored = r.insert_payment_method("acme", &method("pm_new", "cus_1", "pp_1", 6)).await.expect("pm");
    assert_eq!((restored.id.as_str(), restored.removed_at), ("pm_1", None), "re-added: restored");

    // Payments: one per key, with the first attempt.
    let p1 = payment("pay_1", "key-1", 10_000, 10);
    assert!(r.begin_payment("acme", &p1, &attempt("pay_1", 1, 10), t(40)).await.expect("begin").is_none());
    let clash = r.begin_payment("acme", &payment("pay_9", "key-1", 10_000, 11), &attempt("pay_9", 1, 11), t(41)).await;
    assert_eq!(clash.expect("begin").map(|p| p.id), Some("pay_1".into()), "the key's payment");
    assert!(r.get_payment("acme", "pay_9").await.expect("get").is_none(), "nothing inserted");
    r.insert_customer("globex", &customer("cus_1", 0), None).await.expect("globex's own customer");
    assert!(
        r.begin_payment("globex", &payment("pay_g", "key-1", 5, 12), &attempt("pay_g", 1, 12), t(42))
            .await
            .expect("begin")
            .is_none(),
        "keys are per tenant"
    );
    let stored = r.get_payment("acme", "pay_1").await.expect("get").expect("stored");
    assert_eq!(stored, p1, "every field round-trips");
    assert_eq!(r.list_attempts("acme", "pay_1").await.expect("attempts"), vec![attempt("pay_1", 1, 10)]);

    // Due for a check at 40: claimed once, then leased.
    assert!(r.claim_due_payments(t(39), t(100), 10).await.expect("claim").is_empty());
    let due = r.claim_due_payments(t(40), t(100), 10).await.expect("claim");
    assert_eq!(due.iter().map(|(tn, p)| (tn.as_str(), p.id.as_str())).collect::<Vec<_>>(), [("acme", "pay_1")]);
    assert!(r.claim_due_payments(t(41), t(100), 10).await.expect("claim").iter().all(|(_, p)| p.id != "pay_1"));

    // Settling: guarded by the status it comes from, with its event.
    let done = settle(&stores, "acme", p1.clone(), 20).await;
    let again = PaymentEvent::for_status(&done, t(21)).expect("event");
    assert!(
        !r.transition("acme", &done, &[PaymentStatus::Processing], None, &again, None).await.expect("ok"),
        "settled once"
    );
    let got = r.get_payment("acme", "pay_1").await.expect("get").expect("p");
    assert_eq!((got.status, got.provider_payment_id.as_str()), (PaymentStatus::Succeeded, "pi_pay_1"));
    assert_eq!(r.list_attempts("acme", "pay_1").await.expect("a")[0].outcome, "succeeded");
    assert_eq!(
        r.get_payment_by_provider_id("acme", "pi_pay_1").await.expect("get").map(|p| p.id),
        Some("pay_1".into())
    );
    assert!(
        r.claim_due_payments(t(1000), t(2000), 10).await.expect("claim").iter().all(|(_, p)| p.id != "pay_1"),
        "settled: never due"
    );

    // An attempt that never answered ends unknown when the next starts.
    let p2 = payment("pay_2", "key-2", 500, 30);
    r.begin_payment("acme", &p2, &attempt("pay_2", 1, 30), t(60)).await.expect("begin");
    r.start_attempt("acme", &attempt("pay_2", 2, 70)).await.expect("start");
    let attempts = r.list_attempts("acme", "pay_2").await.expect("attempts");
    assert_eq!(
        attempts.iter().map(|a| (a.number, a.outcome.as_str())).collect::<Vec<_>>(),
        [(1, "unknown"), (2, "pending")]
    );
    assert_eq!(r.get_payment("acme", "pay_2").await.expect("g").expect("p").attempt_count, 2);
    let mut unknown = attempt("pay_2", 2, 70);
    unknown.outcome = "unknown".into();
    unknown.finished_at = Some(t(71));
    r.record_attempt("acme", &unknown, Some(t(90))).await.expect("record");
    assert_eq!(r.claim_due_payments(t(90), t(200), 10).await.expect("claim").len(), 1, "due again at 90");

    // Lists: filters and keyset pages.
    let page = r.list_payments("acme", None, None, None, None, 1).await.expect("list");
    assert_eq!(page.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["pay_1"]);
    let cursor = Cursor::time(page[0].created_at, page[0].id.clone());
    let next = r.list_payments("acme", None, None, None, Some(&cursor), 5).await.expect("list");
    assert_eq!(next.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["pay_2"]);
    assert_eq!(r.list_payments("acme", None, None, Some("succeeded"), None, 5).await.expect("list").len(), 1);
    assert_eq!(r.list_payments("acme", None, Some("inv_pay_2"), None, None, 5).await.expect("list").len(), 1);
    assert_eq!(r.list_payments("acme", Some("cus_x"), None, None, None, 5).await.expect("list").len(), 0);

    // Refunds: held, confirmed, released, never above the capture.
    let res =
        r.reserve_refund("acme", &refund("rfnd_1", "pay_1", "r1", 0), Some(usd(3_000)), t(80)).await.expect("reserve");
    let Reservation::Reserved { refund: r1, payment: held } = res else { panic!("{res:?}") };
    assert_eq!((r1.amount, held.refund_reserved, held.refundable()), (usd(3_000), usd(3_000), usd(7_000)));
    assert!(matches!(
        r.reserve_refund("acme", &refund("rfnd_2", "pay_1", "r2", 0), Some(usd(7_001)), t(80)).await.expect("r"),
        Reservation::Exceeds { refundable } if refundable == usd(7_000)
    ));
    assert!(matches!(
        r.reserve_refund("acme", &refund("rfnd_3", "pay_1", "r1", 0), Some(usd(1)), t(80)).await.expect("r"),
        Reservation::Existing(existing) if existing.id == "rfnd_1"
    ));
    let eur = Money::new(Decimal::ONE, Currency::from_code("EUR").expect("eur"));
    assert!(matches!(
        r.reserve_refund("acme", &refund("rfnd_4", "pay_1", "r4", 0), Some(eur), t(80)).await.expect("r"),
        Reservation::CurrencyMismatch(_)
    ));
    assert!(matches!(
        r.reserve_refund("acme", &refund("rfnd_5", "pay_2", "r5", 0), None, t(80)).await.expect("r"),
        Reservation::NotRefundable(PaymentStatus::Processing)
    ));
    assert!(matches!(
        r.reserve_refund("acme", &refund("rfnd_6", "pay_x", "r6", 0), None, t(80)).await.expect("r"),
        Reservation::NoPayment
    ));
    let ok = RefundResult {
        status: RefundStatus::Succeeded,
        provider_refund_id: "re_1".into(),
        failure_message: String::new(),
        next_check_at: None,
    };
    let (r1, p) = r.finish_refund("acme", "rfnd_1", &ok, t(81)).await.expect("finish").expect("found");
    assert_eq!(
        (r1.status, p.status, p.amount_refunded, p.refund_reserved),
        (RefundStatus::Succeeded, PaymentStatus::PartiallyRefunded, usd(3_000), usd(0))
    );
    let (r1, _) = r.finish_refund("acme", "rfnd_1", &ok, t(82)).await.expect("finish").expect("found");
    assert_eq!(r1.updated_at, t(81), "finished once");
    // The rest, failed at the provider: released.
    let Reservation::Reserved { refund: rest, .. } =
        r.reserve_refund("acme", &refund("rfnd_7", "pay_1", "r7", 0), None, t(83)).await.expect("reserve")
    else {
        panic!("the rest is refundable")
    };
    assert_eq!(rest.amount, usd(7_000));
    assert_eq!(r.claim_due_refunds(t(83), t(300), 10).await.expect("claim").len(), 1, "pending: due");
    let no = RefundResult {
        status: RefundStatus::Failed,
        provider_refund_id: String::new(),
        failure_message: "no".into(),
        next_check_at: None,
    };
    let (failed, p) = r.finish_refund("acme", "rfnd_7", &no, t(84)).await.expect("finish").expect("found");
    assert_eq!((failed.status, p.refund_reserved, p.refundable()), (RefundStatus::Failed, usd(0), usd(7_000)));
    let Reservation::Reserved { .. } =
        r.reserve_refund("acme", &refund("rfnd_8", "pay_1", "r8", 0), None, t(85)).await.expect("reserve")
    else {
        panic!("refundable again")
    };
    let (_, p) = r.finish_refund("acme", "rfnd_8", &ok, t(86)).await.expect("finish").expect("found");
    assert_eq!((p.status, p.amount_refunded), (PaymentStatus::Refunded, usd(10_000)));
    assert_eq!(r.list_refunds("acme", "pay_1").await.expect("list").len(), 3);
    assert_eq!(r.get_refund_by_key("acme", "r8").await.expect("get").map(|r| r.id), Some("rfnd_8".into()));

    // Events: numbered on first listing, in commit order, per tenant.
    let first = r.list_events("acme", 0, 10).await.expect("events");
    assert_eq!(
        first.iter().map(|e| (e.sequence, e.kind.as_str())).collect::<Vec<_>>(),
        [(1, "payment.succeeded"), (2, "payment.refunded"), (3, "payment.refunded")]
    );
    assert_eq!(first[0].payment.status, PaymentStatus::Succeeded, "the payment as it was then");
    assert_eq!(first[2].payment.status, PaymentStatus::Refunded);
    let p3 = payment("pay_3", "key-3", 100, 90);
    r.begin_payment("acme", &p3, &attempt("pay_3", 1, 90), t(120)).await.expect("begin");
    settle(&stores, "acme", p3, 91).await;
    let later = r.list_events("acme", 3, 10).await.expect("events");
    assert_eq!(later.iter().map(|e| (e.sequence, e.payment.id.as_str())).collect::<Vec<_>>(), [(4, "pay_3")]);
    assert_eq!(r.list_events("acme", 0, 2).await.expect("events").len(), 2, "pages");
    assert!(r.list_events("globex", 0, 10).await.expect("events").is_empty());

    // Webhook deliveries are remembered.
    assert_eq!(r.record_webhook("acme", "stripe", "evt_1", "payment", "pay_1", t(95)).await.expect("rec"), None);
    assert_eq!(
        r.record_webhook("acme", "stripe", "evt_1", "payment", "", t(96)).await.expect("rec"),
        Some("pay_1".into())
    );

    // The sandbox's books.
    let s = &stores.sandbox;
    let charge = SandboxCharge {
        idempotency_key: "acme:pay_1".into(),
        provider_payment_id: "pi_1".into(),
        provider_payment_method_id: "pm_x__tok_visa".into(),
        amount_minor: 10_000,
        currency: "USD".into(),
        status: "succeeded".into(),
        decline_code: String::new(),
        message: String::new(),
        refunded_minor: 0,
        created_at: t(1),
    };
    assert_eq!(s.record_charge(&charge).await.expect("record"), charge);
    let other = SandboxCharge { provider_payment_id: "pi_2".into(), ..charge.clone() };
    assert_eq!(s.record_charge(&other).await.expect("record").provider_payment_id, "pi_1", "one charge per key");
    assert_eq!(
        s.refund("re-k1", "pi_1", 6_000, t(2)).await.expect("refund"),
        s.refund("re-k1", "pi_1", 6_000, t(3)).await.expect("again")
    );
    assert_eq!(
        s.refund("re-k2", "pi_1", 4_001, t(4)).await.expect("refund"),
        SandboxRefund::TooLarge { refundable_minor: 4_000 }
    );
    assert!(matches!(s.refund("re-k3", "pi_1", 4_000, t(5)).await.expect("refund"), SandboxRefund::Refunded { .. }));
    assert_eq!(s.get_charge("pi_1").await.expect("get").map(|c| c.refunded_minor), Some(10_000));
    assert_eq!(s.refund("re-k4", "pi_nope", 1, t(6)).await.expect("refund"), SandboxRefund::UnknownCharge);
    let tds = SandboxCharge {
        idempotency_key: "acme:pay_3ds".into(),
        provider_payment_id: "pi_3".into(),
        status: "requires_action".into(),
        ..charge.clone()
    };
    s.record_charge(&tds).await.expect("record");
    assert_eq!(s.refund("re-k5", "pi_3", 1, t(7)).await.expect("refund"), SandboxRefund::NotRefundable);
    let done = s.complete_charge("pi_3", "succeeded", "", "").await.expect("complete").expect("found");
    assert_eq!(done.status, "succeeded");
    let once = s.complete_charge("pi_3", "failed", "x", "y").await.expect("complete").expect("found");
    assert_eq!(once.status, "succeeded", "completed once");
}

/// A charge's first step: the context read and the payment begun at once.
async fn start_charge_suite(stores: Stores) {
    let r = &stores.ledger;
    let sandbox = ["sandbox", "sandbox"];
    r.insert_customer("acme", &customer("cus_1", 0), None).await.expect("customer");
    r.insert_customer("acme", &customer("cus_2", 0), None).await.expect("customer");
    r.insert_payment_method("acme", &method("pm_1", "cus_1", "pp_1", 1)).await.expect("pm");
    r.insert_payment_method("acme", &method("pm_2", "cus_1", "pp_2", 2)).await.expect("pm");
    let mut stripe = method("pm_s", "cus_1", "pp_s", 3);
    stripe.provider = "stripe".into();
    r.insert_payment_method("acme", &stripe).await.expect("pm");
    r.set_default_payment_method("acme", "cus_1", "pm_1").await.expect("default");

    // The template's method and provider are filled from what is found.
    let mut asked = payment("pay_1", "key-1", 2_500, 10);
    asked.payment_method_id = String::new();
    asked.provider = String::new();
    let start = |p: Payment, pm: Option<&'static str>, providers: [&'static str; 2]| async move {
        let a = attempt(&p.id, 1, 10);
        r.start_charge("acme", &p, pm, &a, t(40), &providers).await.expect("start")
    };
    match start(asked.clone(), None, sandbox).await {
        ChargeStart::Started(c, m) => {
            assert_eq!((c.id.as_str(), m.id.as_str(), m.provider_payment_method_id.as_str()), ("cus_1", "pm_1", "pp_1"))
        }
        other => panic!("expected a start, got {other:?}"),
    }
    let stored = r.get_payment("acme", "pay_1").await.expect("get").expect("stored");
    assert_eq!(stored, payment("pay_1", "key-1", 2_500, 10), "the default method, on the sandbox");
    assert_eq!(r.list_attempts("acme", "pay_1").await.expect("attempts"), vec![attempt("pay_1", 1, 10)]);
    assert_eq!(r.claim_due_payments(t(40), t(100), 10).await.expect("claim").len(), 1, "due for a check");

    // The same key: the stored payment, nothing new.
    let again = Payment { id: "pay_x".into(), ..asked.clone() };
    assert_eq!(start(again, Some("pm_2"), sandbox).await, ChargeStart::Existing(stored));
    assert!(r.get_payment("acme", "pay_x").await.expect("get").is_none());

    // A method asked for by id.
    let second = Payment { id: "pay_2".into(), idempotency_key: "key-2".into(), ..asked.clone() };
    match start(second, Some("pm_2"), sandbox).await {
        ChargeStart::Started(_, m) => assert_eq!(m.id, "pm_2"),
        other => panic!("expected a start, got {other:?}"),
    }
    assert_eq!(r.get_payment("acme", "pay_2").await.expect("get").expect("p").payment_method_id, "pm_2");

    // Nothing to charge: nothing written.
    let none = |id: &str| Payment { id: id.into(), idempotency_key: format!("key-{id}"), ..asked.clone() };
    assert_eq!(start(none("pay_3"), Some("pm_nope"), sandbox).await, ChargeStart::NoContext, "unknown method");
    assert_eq!(start(none("pay_4"), Some("pm_s"), sandbox).await, ChargeStart::NoContext, "provider not set up");
    let cus2 = Payment { customer_id: "cus_2".into(), ..none("pay_5") };
    assert_eq!(start(cus2, None, sandbox).await, ChargeStart::NoContext, "no default method");
    let cus9 = Payment { customer_id: "cus_9".into(), ..none("pay_6") };
    assert_eq!(start(cus9, None, sandbox).await, ChargeStart::NoContext, "no such customer");
    r.remove_payment_method("acme", "cus_1", "pm_2", t(11)).await.expect("remove").expect("removed");
    assert_eq!(start(none("pay_7"), Some("pm_2"), sandbox).await, ChargeStart::NoContext, "removed");
    for id in ["pay_3", "pay_4", "pay_5", "pay_6", "pay_7"] {
        assert!(r.get_payment("acme", id).await.expect("get").is_none(), "{id} not stored");
    }
    match start(none("pay_8"), Some("pm_s"), ["sandbox", "stripe"]).await {
        ChargeStart::Started(_, m) => assert_eq!(m.provider, "stripe"),
        other => panic!("expected a start, got {other:?}"),
    }
    assert_eq!(r.get_payment("acme", "pay_8").await.expect("get").expect("p").provider, "stripe");
}

#[tokio::test]
async fn start_charge_on_sqlite() {
    let db = TestDatabase::sqlite();
    let url = recur_storage::sqlite_file_url(&db.data_dir(), "payment");
    start_charge_suite(repo::open(&url, 4).await.expect("open")).await;
    db.cleanup().await;
}

#[tokio::test]
async fn start_charge_on_postgres() {
    let Some(admin) = postgres_url() else {
        eprintln!("RECUR_TEST_DATABASE_URL unset: Postgres run skipped");
        return;
    };
    let db = TestDatabase::postgres(&admin).await.expect("database");
    start_charge_suite(repo::open(db.url().expect("url"), 4).await.expect("open")).await;
    db.cleanup().await;
}

#[tokio::test]
async fn conformance_on_sqlite() {
    let db = TestDatabase::sqlite();
    let url = recur_storage::sqlite_file_url(&db.data_dir(), "payment");
    suite(repo::open(&url, 4).await.expect("open")).await;
    db.cleanup().await;
}

#[tokio::test]
async fn conformance_on_postgres() {
    let Some(admin) = postgres_url() else {
        eprintln!("RECUR_TEST_DATABASE_URL unset: Postgres run skipped");
        return;
    };
    let db = TestDatabase::postgres(&admin).await.expect("database");
    suite(repo::open(db.url().expect("url"), 4).await.expect("open")).await;
    db.cleanup().await;
}
