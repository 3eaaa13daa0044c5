//! Recur's sign-up service: multi-step "cart" sessions that collect a
//! customer, a priced cart and a payment method, then finalize into an
//! account, a bill group, contracts, invoices and payments — all made by the
//! services that own them, through their gRPC clients. Sessions live in the
//! signup service's own table with a cache (Redis, or in memory) in front.

pub mod api;
pub mod domain;
pub mod repo;

use std::sync::Arc;

use recur_cache::{MemoryCache, RedisCache, SessionCache};
use recur_proto::signup::v1::signup_service_server::SignupServiceServer;
use recur_server::{ServiceEnv, StartError};
use tonic::service::RoutesBuilder;

pub const SERVICE_NAMES: &[&str] = &["recur.signup.v1.SignupService"];
pub const DEFAULT_ADDR: &str = "127.0.0.1:50065";

/// The session cache the configuration asks for.
pub async fn cache(env: &ServiceEnv) -> Result<Arc<dyn SessionCache>, StartError> {
    match &env.config.redis_url {
        Some(url) => Ok(Arc::new(
            RedisCache::connect(url.expose(), "recur:").await.map_err(|e| StartError::Cache(e.to_string()))?,
        )),
        None => Ok(Arc::new(MemoryCache::default())),
    }
}

pub async fn register(env: ServiceEnv, mut routes: RoutesBuilder) -> Result<RoutesBuilder, StartError> {
    let pool = repo::open_pool(&env.database_url("signup"), env.config.db_max_connections)
        .await
        .map_err(|e| StartError::Storage(format!("signup: {e}")))?;
    env.tasks.spawn(recur_storage::keep_statistics(pool.clone(), "signup"));
    let repo = repo::from_pool(pool);
    let sessions = repo::Sessions::new(repo, cache(&env).await?);
    let clients = api::Clients {
        catalog: recur_client::CatalogClient::new(env.channel(&env.peers.catalog)?),
        pricing: recur_client::PricingClient::new(env.channel(&env.peers.pricing)?),
        payments: recur_client::PaymentClient::new(env.channel(&env.peers.payment)?),
        accounts: recur_client::AccountClient::new(env.channel(&env.peers.subscription)?),
        subscriptions: recur_client::SubscriptionClient::new(env.channel(&env.peers.subscription)?),
    };
    let api =
        api::SignupApi::new(sessions, clients, env.clock.clone(), env.config.call_timeout, env.config.session_ttl);
    routes.add_service(SignupServiceServer::new(api));
    Ok(routes)
}
