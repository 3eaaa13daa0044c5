//! The subscribe use case with its peers replaced (a unit test of the
//! application layer, on a real SQLite store): a first charge the gateway
//! refuses as the caller's mistake, after the subscription was written
//! (its card removed between the check and the charge), voids the invoice
//! and cancels the subscription, visibly, before the error is returned;
//! a declined card makes the subscription PAST_DUE instead. Two runs of
//! the billing clock at once renew each period once and charge each
//! invoice under its own key.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Duration};
use recur_auth::CallContext;
use recur_error::{AppError, AppResult};
use recur_money::Currency;
use recur_storage::testing::TestDatabase;
use recur_subscription::app::accounts::{AccountInput, BillGroupInput};
use recur_subscription::app::subscribe::SubscribeInput;
use recur_subscription::app::{App, Idem};
use recur_subscription::domain::invoice::{PricedItem, PricedOffering, PricedQuote};
use recur_subscription::domain::{CollectionMethod, InvoiceStatus, SubscriptionState};
use recur_subscription::peers::{
    Catalog, ChangePriced, ChangeQuestion, ChargeInput, PaymentOutcome, PaymentStatus, Payments, Policy, Pricing,
    QuoteInput, RateTerms,
};
use recur_subscription::repo;
use rust_decimal::Decimal;

struct FixedPrice;

/// Subscribing asks nothing of the catalog; the billing clock asks for the
/// tenant's policy and the rate's period.
struct NoCatalog;

#[async_trait]
impl Catalog for NoCatalog {
    /// The billing clock asks: UTC, monthly.
    async fn policy(&self, _: &CallContext) -> AppResult<Policy> {
        Ok(Policy {
            time_zone: "UTC".into(),
            proration: recur_subscription::domain::lifecycle::ProrationMode::Day,
            change_at_period_end: false,
            credit_unused_on_cancel: false,
            invoice_due_days: 30,
            grace: Duration::hours(1),
            dunning: Default::default(),
        })
    }

    async fn rate_terms(&self, _: &CallContext, _: &str) -> AppResult<RateTerms> {
        Ok(RateTerms { period: recur_period::Period { unit: recur_period::Unit::Month, count: 1 }, notice_days: 0 })
    }

    async fn coupon_terms(&self, _: &CallContext, _: &str) -> AppResult<Option<(String, i64)>> {
        Err(AppError::internal("not asked"))
    }

    async fn product(&self, _: &CallContext, _: &str) -> AppResult<Option<(String, String)>> {
        Err(AppError::internal("not asked"))
    }

    async fn coupon_code(&self, _: &CallContext, _: &str) -> AppResult<Option<String>> {
        Err(AppError::internal("not asked"))
    }

    /// Nothing is billed in arrears.
    async fn arrears_items(
        &self,
        _: &CallContext,
        _: &str,
    ) -> AppResult<std::sync::Arc<Vec<recur_subscription::domain::usage::ArrearsItem>>> {
        Ok(Default::default())
    }
}

#[async_trait]
impl Pricing for FixedPrice {
    async fn preview_change(&self, _: &CallContext, _: &ChangeQuestion) -> AppResult<ChangePriced> {
        Err(AppError::internal("not asked"))
    }

    async fn rate_usage(
        &self,
        _: &CallContext,
        _: &recur_subscription::peers::UsageQuestion,
    ) -> AppResult<recur_subscription::domain::usage::RatedUsage> {
        Err(AppError::internal("not asked"))
    }

    async fn quote(&self, _: &CallContext, _: &QuoteInput) -> AppResult<PricedQuote> {
        let start = DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
        let amount = Decimal::from_str("100.00").expect("literal");
        Ok(PricedQuote {
            currency: Currency::from_code("USD").expect("usd"),
            start: Some(start),
            start_date: start.date_naive().format("%Y-%m-%d").to_string(),
            amount,
            fixed_left: Vec::new(),
            offerings: vec![PricedOffering {
                offering_id: "offr_1".into(),
                rate_id: "rate_1".into(),
                items: vec![PricedItem {
                    product_id: "prod_1".into(),
                    quantity: Decimal::ONE,
                    amount_without_tax: amount,
                    amount,
                    recurring_amount: amount,
                    ..Default::default()
                }],
                amount,
                recurring_amount: amount,
                period_start: Some(start),
                period_end: Some(start + Duration::days(30)),
                next_billing_at: Some(start + Duration::days(30)),
                ..Default::default()
            }],
        })
    }
}

/// A gateway whose check passes and whose charge answers `outcome`.
struct Gateway {
    refuse: bool,
    /// Charges succeed (else they are declined).
    succeed: bool,
    charges: AtomicU32,
    keys: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl Payments for Gateway {
    async fn check_method(&self, _: &CallContext, _: &str, _: &str, _: &str) -> AppResult<()> {
        Ok(())
    }

    async fn payment_events(
        &self,
        _: &CallContext,
        _: i64,
        _: i32,
    ) -> AppResult<Vec<recur_subscription::peers::PaymentEvent>> {
        Ok(Vec::new())
    }

    async fn charge(&self, _: &CallContext, c: &ChargeInput) -> AppResult<PaymentOutcome> {
        self.charges.fetch_add(1, Ordering::SeqCst);
        self.keys.lock().expect("keys").push(c.idempotency_key.clone());
        if self.refuse {
            return Err(AppError::new(tonic::Code::InvalidArgument, "PAYMENT_METHOD_NOT_FOUND", "removed")
                .with_field("payment_method_id", "no such payment method"));
        }
        Ok(PaymentOutcome {
            payment_id: format!("pay_for_{}", c.invoice_id),
            status: if self.succeed { PaymentStatus::Succeeded } else { PaymentStatus::Failed },
            amount: c.amount.amount(),
            decline_code: if self.succeed { String::new() } else { "card_declined".into() },
        })
    }
}

async fn app(refuse: bool) -> (TestDatabase, App, Arc<Gateway>) {
    let (db, app, gateway, _) = app_with(refuse, false).await;
    (db, app, gateway)
}

async fn app_with(refuse: bool, succeed: bool) -> (TestDatabase, App, Arc<Gateway>, Arc<recur_clock::ManualClock>) {
    let db = TestDatabase::sqlite();
    let repo = repo::open(&recur_storage::sqlite_file_url(&db.data_dir(), "subscription"), 2).await.expect("open");
    let gateway = Arc::new(Gateway { refuse, succeed, charges: AtomicU32::new(0), keys: Default::default() });
    let clock = recur_clock::ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).expect("valid"));
    let app = App {
        repo,
        pricing: Arc::new(FixedPrice),
        payments: gateway.clone(),
        catalog: Arc::new(NoCatalog),
        clock: clock.clone(),
        test_clocks: Default::default(),
        peer_key: None,
        lease: recur_subscription::app::renew::LEASE,
    };
    (db, app, gateway, clock)
}

fn ctx() -> CallContext {
    CallContext { tenant_id: "acme".into(), bearer: String::new(), deadline: None, peer_proof: String::new() }
}

async fn subscribe(app: &App) -> (AppResult<recur_subscription::app::subscribe::Subscribed>, String) {
    let idem = Idem::default();
    let (account, _) = app
        .create_account(&ctx(), &AccountInput { account_name: "Acme".into(), ..Default::default() }, &idem)
        .await
        .expect("account");
    let bg = app
        .create_bill_group(
            &ctx(),
            &BillGroupInput {
                account_id: account.id.clone(),
                gateway_customer_id: "cus_1".into(),
                payment_method_id: "pm_1".into(),
                collection_method: Some(CollectionMethod::Automatic),
                ..Default::default()
            },
            &idem,
        )
        .await
        .expect("bill group");
    let input = SubscribeInput {
        account_id: account.id,
        bill_group_id: bg.id,
        offering: "offr_1".into(),
        rate: "rate_1".into(),
        ..Default::default()
    };
    (app.subscribe(&ctx(), &input, &idem).await, "acme".to_string())
}

#[tokio::test]
async fn a_charge_refused_after_the_write_voids_and_cancels() {
    let (db, app, gateway) = app(true).await;
    let (result, tenant) = subscribe(&app).await;
    let err = result.expect_err("refused");
    assert_eq!(err.reason(), "PAYMENT_METHOD_NOT_FOUND");
    assert_eq!(err.violations()[0].field, "bill_group_id", "the bill group's method, named as the caller knows it");
    assert_eq!(gateway.charges.load(Ordering::SeqCst), 1);
    let (events, _) = app.list_events(&tenant, 0, "").await.expect("events");
    let types: Vec<_> = events.iter().map(|e| e.event.type_name()).collect();
    assert!(types.ends_with(&["invoice.voided", "subscription.canceled"]), "{types:?}");
    let sub_id = events
        .iter()
        .find(|e| e.event.type_name() == "subscription.created")
        .expect("created")
        .event
        .resource_id()
        .to_string();
    let sub = app.subscription(&tenant, &sub_id).await.expect("kept, canceled");
    assert_eq!(sub.state, SubscriptionState::Canceled);
    let invoices = app.repo.invoices_of_subscription(&tenant, &sub_id).await.expect("invoices");
    assert_eq!(invoices.iter().map(|i| i.status).collect::<Vec<_>>(), [InvoiceStatus::Void]);
    db.cleanup().await;
}

#[tokio::test]
async fn a_declined_first_charge_makes_the_subscription_past_due() {
    let (db, app, _) = app(false).await;
    let (result, tenant) = subscribe(&app).await;
    let done = result.expect("a decline is an answer, not an error");
    assert_eq!(done.subscription.state, SubscriptionState::PastDue);
    let invoice = done.invoice.expect("invoice");
    assert_eq!((invoice.status, done.payment_id), (InvoiceStatus::Open, format!("pay_for_{}", invoice.id)));
    let (events, _) = app.list_events(&tenant, 0, "").await.expect("events");
    let types: Vec<_> = events.iter().map(|e| e.event.type_name()).collect();
    assert!(types.ends_with(&["invoice.payment_failed", "subscription.past_due"]), "{types:?}");
    db.cleanup().await;
}

#[tokio::test]
async fn two_runs_of_the_clock_renew_each_period_once_and_charge_each_invoice_once() {
    let (db, app, gateway, clock) = app_with(false, true).await;
    let (result, tenant) = subscribe(&app).await;
    let first = result.expect("subscribed");
    assert_eq!(first.subscription.state, SubscriptionState::Active);
    // Three months later, two runs (two replicas) at once, twice over.
    clock.set(first.subscription.current_period_end + Duration::days(90));
    for _ in 0..2 {
        let (a, b) = tokio::join!(app.run_clock("run-a", 10), app.run_clock("run-b", 10));
        a.expect("run a");
        b.expect("run b");
    }
    let invoices = app.repo.invoices_of_subscription(&tenant, &first.subscription.id).await.expect("invoices");
    let mut periods: Vec<_> = invoices.iter().map(|i| (i.period_start, i.period_end)).collect();
    periods.sort();
    let unique: std::collections::BTreeSet<_> = periods.iter().collect();
    assert_eq!(unique.len(), periods.len(), "each period invoiced once: {periods:?}");
    assert!(periods.len() >= 4, "the first invoice and a renewal per missed period: {periods:?}");
    assert!(periods.windows(2).all(|w| w[0].1 == w[1].0), "contiguous: {periods:?}");
    assert!(invoices.iter().all(|i| i.status == InvoiceStatus::Paid), "all finalized and paid");
    // Every charge is under its invoice's key, each invoice charged once.
    let keys = gateway.keys.lock().expect("keys").clone();
    let distinct: std::collections::BTreeSet<_> = keys.iter().collect();
    assert_eq!(distinct.len(), invoices.len(), "{keys:?}");
    assert_eq!(keys.len(), invoices.len(), "no invoice charged twice: {keys:?}");
    for inv in &invoices {
        assert!(keys.contains(&format!("invoice:{}", inv.id)));
    }
    db.cleanup().await;
}
