//! Recur's catalog service: what a tenant sells and at what price (products,
//! offerings, rates), and the tenant's settings. Every sign-up and renewal is
//! priced from here.

pub mod api;
pub mod domain;
pub mod repo;

use recur_proto::catalog::v1::catalog_service_server::CatalogServiceServer;
use recur_server::{ServiceEnv, StartError};
use tonic::service::RoutesBuilder;

/// Fully qualified gRPC service names this crate serves.
pub const SERVICE_NAMES: &[&str] = &["recur.catalog.v1.CatalogService"];

/// Default address of the standalone catalog service.
pub const DEFAULT_ADDR: &str = "127.0.0.1:50061";

/// Opens the catalog's database (running its migrations) and adds the
/// service to `routes`.
pub async fn register(env: ServiceEnv, mut routes: RoutesBuilder) -> Result<RoutesBuilder, StartError> {
    let url = env.database_url("catalog");
    let pool = repo::open_pool(&url, env.config.db_max_connections)
        .await
        .map_err(|e| StartError::Storage(format!("catalog: {e}")))?;
    env.tasks.spawn(recur_storage::keep_statistics(pool.clone(), "catalog"));
    let repo = repo::from_pool(pool);
    let repo = std::sync::Arc::new(repo::cache::CachedRepo::new(repo, env.config.catalog_cache_ttl));
    routes.add_service(CatalogServiceServer::new(api::CatalogApi::new(repo, env.clock.clone())));
    Ok(routes)
}

/// The demo catalog shipped with Recur (`services/catalog/demo/catalog.yaml`).
pub const DEMO_CATALOG: &str = include_str!("../demo/catalog.yaml");
