//! Recur's subscription service: accounts and their contacts, bill groups,
//! contracts (subscriptions), invoices and events. It prices through the
//! pricing service and collects through the payment gateway.

pub mod api;
pub mod domain;
pub mod repo;

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
    let repo = repo::open(&env.database_url("subscription"), env.config.db_max_connections)
        .await
        .map_err(|e| StartError::Storage(format!("subscription: {e}")))?;
    let pricing = recur_client::PricingClient::new(env.channel(&env.peers.pricing)?);
    let payments = recur_client::PaymentClient::new(env.channel(&env.peers.payment)?);
    let api = api::SubscriptionApi::new(repo, pricing, payments, env.clock.clone(), env.config.call_timeout);
    routes
        .add_service(AccountServiceServer::new(api.clone()))
        .add_service(SubscriptionServiceServer::new(api.clone()))
        .add_service(InvoiceServiceServer::new(api.clone()))
        .add_service(EventServiceServer::new(api.clone()))
        .add_service(ClockServiceServer::new(api));
    Ok(routes)
}
