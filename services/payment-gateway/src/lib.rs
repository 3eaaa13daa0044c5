//! Recur's payment gateway: where money actually moves. Customers and
//! payment methods live at a provider (the built-in sandbox, or Stripe);
//! Recur keeps tokens and a ledger of payments in which a payment is never
//! charged twice, never refunded beyond what was captured, and never assumed
//! settled when the provider's answer is unknown.

pub mod api;
pub mod domain;
pub mod gateway;
pub mod hosted;
pub mod providers;
pub mod repo;

use std::sync::Arc;

use recur_proto::payment::v1::payment_gateway_service_server::PaymentGatewayServiceServer;
use recur_server::{ServiceEnv, StartError};
use tonic::service::RoutesBuilder;

pub const SERVICE_NAMES: &[&str] = &["recur.payment.v1.PaymentGatewayService"];
pub const DEFAULT_ADDR: &str = "127.0.0.1:50063";

/// Builds the gateway from the environment: its database (ledger and the
/// sandbox's books), the providers of each tenant, and the page signer.
pub async fn gateway(env: &ServiceEnv) -> Result<Arc<gateway::Gateway>, StartError> {
    let stores = repo::open(&env.database_url("payment"), env.config.db_max_connections)
        .await
        .map_err(|e| StartError::Storage(format!("payment: {e}")))?;
    // Young ledger tables grow fast; keep their statistics (and so the
    // plans of every connection) in step until autovacuum takes over.
    env.tasks.spawn(recur_storage::keep_statistics(stores.pool.clone(), "payment"));
    let sandbox: Arc<dyn domain::provider::Provider> =
        Arc::new(domain::sandbox::Sandbox::new(env.config.sandbox_latency, stores.sandbox, env.clock.clone()));
    let providers = match &env.config.payment_providers {
        None => providers::Providers::sandbox_only(sandbox),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| StartError::Config(format!("RECUR_PAYMENT_PROVIDERS {}: {e}", path.display())))?;
            providers::Providers::from_text(&text, sandbox)
                .map_err(|e| StartError::Config(format!("RECUR_PAYMENT_PROVIDERS {}: {e}", path.display())))?
        }
    };
    Ok(Arc::new(gateway::Gateway {
        repo: stores.ledger,
        providers,
        clock: env.clock.clone(),
        settings: gateway::Settings {
            reconcile_after: env.config.reconcile_after,
            public_url: env.public_url.clone(),
            page_key: domain::pages::page_key(&env.key),
        },
    }))
}

pub async fn register(env: ServiceEnv, mut routes: RoutesBuilder) -> Result<RoutesBuilder, StartError> {
    let gateway = gateway(&env).await?;
    routes.add_service(PaymentGatewayServiceServer::new(api::PaymentApi::new(gateway.clone())));
    let interval = env.config.reconcile_interval;
    if !interval.is_zero() {
        let g = gateway.clone();
        env.tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match g.reconcile_once().await {
                    Ok(r) if r.payments_checked + r.refunds_checked > 0 => {
                        tracing::info!(
                            checked = r.payments_checked,
                            settled = r.payments_settled,
                            refunds = r.refunds_checked,
                            "reconciler pass"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e.message(), "reconciler pass failed"),
                }
            }
        });
    }
    // The hosted pages share the gRPC port (HTTP/1.1 for browsers).
    let router = routes.routes().into_axum_router().merge(hosted::router(gateway));
    Ok(RoutesBuilder::from(router))
}
