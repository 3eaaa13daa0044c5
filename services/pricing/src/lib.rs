//! Recur's pricing service: a stateless engine that owns every amount Recur
//! shows or charges, reading the catalog through the catalog service (behind
//! a cache; see [`catalog`] for the staleness bound).

pub mod api;
pub mod catalog;
pub mod domain;

use std::sync::Arc;

use recur_proto::pricing::v1::pricing_service_server::PricingServiceServer;
use recur_server::{ServiceEnv, StartError};
use tonic::service::RoutesBuilder;

pub const SERVICE_NAMES: &[&str] = &["recur.pricing.v1.PricingService"];
pub const DEFAULT_ADDR: &str = "127.0.0.1:50062";

pub async fn register(env: ServiceEnv, mut routes: RoutesBuilder) -> Result<RoutesBuilder, StartError> {
    let channel = env.channel(&env.peers.catalog)?;
    let catalog = catalog::GrpcCatalog::new(recur_client::CatalogClient::new(channel), env.config.call_timeout);
    let catalog = catalog::CachedCatalog::new(Arc::new(catalog), env.config.pricing_cache_ttl);
    let tax = Arc::new(domain::tax::BuiltInTax);
    routes.add_service(PricingServiceServer::new(api::PricingApi::new(Arc::new(catalog), tax, env.clock.clone())));
    Ok(routes)
}
