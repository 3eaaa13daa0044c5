//! The subscribe use case with its peers replaced (a unit test of the
//! application layer, on a real SQLite store): a first charge the gateway
//! refuses as the caller's mistake, after the subscription was written
//! (its card removed between the check and the charge), voids the invoice
//! and cancels the subscription, visibly, before the error is returned;
//! a declined card makes the subscription PAST_DUE instead.

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

/// Subscribing asks nothing of the catalog.
struct NoCatalog;

#[async_trait]
impl Catalog for NoCatalog {
    async fn policy(&self, _: &CallContext) -> AppResult<Policy> {
        Err(AppError::internal("not asked"))
    }

    async fn rate_terms(&self, _: &CallContext, _: &str) -> AppResult<RateTerms> {
        Err(AppError::internal("not asked"))
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
}

#[async_trait]
impl Pricing for FixedPrice {
    async fn preview_change(&self, _: &CallContext, _: &ChangeQuestion) -> AppResult<ChangePriced> {
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
                ..Default::default()
            }],
        })
    }
}

/// A gateway whose check passes and whose charge answers `outcome`.
struct Gateway {
    refuse: bool,
    charges: AtomicU32,
}

#[async_trait]
impl Payments for Gateway {
    async fn check_method(&self, _: &CallContext, _: &str, _: &str, _: &str) -> AppResult<()> {
        Ok(())
    }

    async fn charge(&self, _: &CallContext, c: &ChargeInput) -> AppResult<PaymentOutcome> {
        self.charges.fetch_add(1, Ordering::SeqCst);
        if self.refuse {
            return Err(AppError::new(tonic::Code::InvalidArgument, "PAYMENT_METHOD_NOT_FOUND", "removed")
                .with_field("payment_method_id", "no such payment method"));
        }
        Ok(PaymentOutcome {
            payment_id: format!("pay_for_{}", c.invoice_id),
            status: PaymentStatus::Failed,
            amount: c.amount.amount(),
            decline_code: "card_declined".into(),
        })
    }
}

async fn app(refuse: bool) -> (TestDatabase, App, Arc<Gateway>) {
    let db = TestDatabase::sqlite();
    let repo = repo::open(&recur_storage::sqlite_file_url(&db.data_dir(), "subscription"), 2).await.expect("open");
    let gateway = Arc::new(Gateway { refuse, charges: AtomicU32::new(0) });
    let app = App {
        repo,
        pricing: Arc::new(FixedPrice),
        payments: gateway.clone(),
        catalog: Arc::new(NoCatalog),
        clock: recur_clock::ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).expect("valid")),
    };
    (db, app, gateway)
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
