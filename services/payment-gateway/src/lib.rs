//! Recur's payment gateway: where money actually moves. Customers and
//! payment methods live at a provider (the built-in sandbox for now); Recur
//! keeps tokens and a ledger of payments in which a payment is never charged
//! twice and is never assumed settled when the provider's answer is unknown.

pub mod api;
pub mod domain;
pub mod repo;

use std::sync::Arc;

use recur_proto::payment::v1::payment_gateway_service_server::PaymentGatewayServiceServer;
use recur_server::{ServiceEnv, StartError};
use tonic::service::RoutesBuilder;

pub const SERVICE_NAMES: &[&str] = &["recur.payment.v1.PaymentGatewayService"];
pub const DEFAULT_ADDR: &str = "127.0.0.1:50063";

pub async fn register(env: ServiceEnv, mut routes: RoutesBuilder) -> Result<RoutesBuilder, StartError> {
    let repo = repo::open(&env.database_url("payment"), env.config.db_max_connections)
        .await
        .map_err(|e| StartError::Storage(format!("payment: {e}")))?;
    let provider = Arc::new(domain::sandbox::Sandbox::new(env.config.sandbox_latency, env.config.public_url.clone()));
    routes.add_service(PaymentGatewayServiceServer::new(api::PaymentApi::new(repo, provider, env.clock.clone())));
    Ok(routes)
}
