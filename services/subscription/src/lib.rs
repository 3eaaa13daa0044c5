//! Recur's subscription service: accounts and their contacts, bill groups,
//! contracts (subscriptions), invoices and events. It prices through the
//! pricing service, collects through the payment gateway, and asks the
//! catalog for the tenant's time zone and coupon codes.
//!
//! # Shape
//!
//! - [`api`]: one file per gRPC service (accounts, subscriptions, invoices,
//!   events, clock) and `wire.rs`, the conversions between wire and domain
//!   types. A handler decodes its request, calls the application layer and
//!   encodes the answer; no business rule lives there.
//! - [`app`]: the use cases (create an account or bill group, subscribe,
//!   collect an invoice, list events), each a function over the repository
//!   and the peers, with `now` from the tenant's clock (`app::clock`: the
//!   injected clock, or the tenant's test clock), and the billing clock
//!   (`app::renew`) that renews, finalizes and collects what falls due,
//!   run in the background here and by AdvanceClock for test-mode tenants.
//! - [`domain`]: the rules, with no I/O and no wire or SQL types: the records,
//!   the subscription state machine, billing anchors, invoices made from a
//!   priced offering, and the typed events every change writes.
//! - [`peers`]: the pricing service and the payment gateway behind small
//!   traits, so the use cases can be tested without a network.
//! - [`repo`]: one trait per aggregate (accounts, subscriptions, invoices,
//!   events) with a Postgres and a SQLite implementation, row types in
//!   `repo/rows.rs`, and the conformance suite in `tests/repo_conformance.rs`
//!   run on both.

pub mod api;
pub mod app;
pub mod domain;
pub mod peers;
pub mod repo;

use std::sync::Arc;

use recur_proto::subscription::v1::{
    account_service_server::AccountServiceServer, clock_service_server::ClockServiceServer,
    event_service_server::EventServiceServer, invoice_service_server::InvoiceServiceServer,
    subscription_service_server::SubscriptionServiceServer,
};
use recur_server::{ServiceEnv, StartError};
use tonic::service::RoutesBuilder;

pub const SERVICE_NAMES: &[&str] = &[
    "recur.subscription.v1.AccountService",
    "recur.subscription.v1.SubscriptionService",
    "recur.subscription.v1.InvoiceService",
    "recur.subscription.v1.EventService",
    "recur.subscription.v1.ClockService",
];
pub const DEFAULT_ADDR: &str = "127.0.0.1:50064";

pub async fn register(env: ServiceEnv, mut routes: RoutesBuilder) -> Result<RoutesBuilder, StartError> {
    let pool = repo::open_pool(&env.database_url("subscription"), env.config.db_max_connections)
        .await
        .map_err(|e| StartError::Storage(format!("subscription: {e}")))?;
    env.tasks.spawn(recur_storage::keep_statistics(pool.clone(), "subscription"));
    let repo = repo::from_pool(pool);
    let timeout = env.config.call_timeout;
    let pricing = peers::grpc::GrpcPricing {
        client: recur_client::PricingClient::new(env.channel(&env.peers.pricing)?),
        timeout,
    };
    let payments = peers::grpc::GrpcPayments {
        client: recur_client::PaymentClient::new(env.channel(&env.peers.payment)?),
        timeout,
    };
    let catalog =
        peers::grpc::GrpcCatalog::new(recur_client::CatalogClient::new(env.channel(&env.peers.catalog)?), timeout);
    let app = app::App {
        repo,
        pricing: Arc::new(pricing),
        payments: Arc::new(payments),
        catalog: Arc::new(catalog),
        clock: env.clock.clone(),
        test_clocks: Default::default(),
        peer_key: Some(env.key.clone()),
        lease: chrono::Duration::from_std(env.config.billing_clock_lease).unwrap_or(app::renew::LEASE),
    };
    app.refresh_test_clocks().await.map_err(|e| StartError::Storage(format!("subscription: {}", e.message())))?;
    let app = Arc::new(app);
    spawn_billing_clock(&env, app.clone());
    let api = api::SubscriptionApi::new(app);
    routes
        .add_service(AccountServiceServer::new(api.clone()))
        .add_service(SubscriptionServiceServer::new(api.clone()))
        .add_service(InvoiceServiceServer::new(api.clone()))
        .add_service(EventServiceServer::new(api.clone()))
        .add_service(ClockServiceServer::new(api));
    Ok(routes)
}

/// The billing clock in the background: every interval, one pass over
/// what is due (renewals, then invoices to finalize and collect), and the
/// test clocks reloaded, so replicas see another's AdvanceClock.
fn spawn_billing_clock(env: &ServiceEnv, app: Arc<app::App>) {
    let interval = env.config.billing_clock_interval;
    if interval.is_zero() {
        return;
    }
    let batch = env.config.billing_clock_batch;
    // Leases name the process that holds them.
    let owner = recur_id::new_id(recur_id::Kind::Event);
    env.tasks.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = app.refresh_test_clocks().await {
                tracing::warn!(error = %e.message(), "test clocks not reloaded");
            }
            // A full batch: go on at once, the backlog is not done.
            loop {
                match app.run_clock(&owner, batch).await {
                    Ok(done) if !done.is_empty() => {
                        tracing::info!(actions = done.len(), "billing clock pass");
                        if done.len() < batch as usize {
                            break;
                        }
                    }
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e.message(), "billing clock pass failed");
                        break;
                    }
                }
            }
        }
    });
}
