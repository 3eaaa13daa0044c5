//! The all-in-one process: catalog, pricing, payment gateway, subscription
//! and signup on one port. The services still call each other through their
//! gRPC clients, to this same process's server — over in-memory HTTP/2
//! connections (`RECUR_IN_PROCESS_CALLS`, on by default; off: through the
//! listen address) that pass the same layers as a call from outside — so the
//! all-in-one exercises exactly the contracts of a distributed deployment.

use std::net::SocketAddr;
use std::time::Duration;

use recur_auth::TokenKey;
use recur_clock::SharedClock;
use recur_config::{Config, Peers};
use recur_server::{BackgroundTasks, RunningServer, ServerOptions, ServiceEnv, StartError};
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;

pub const DEFAULT_ADDR: &str = "127.0.0.1:50051";

/// Every gRPC service the all-in-one process serves.
pub fn service_names() -> Vec<&'static str> {
    [
        recur_catalog::SERVICE_NAMES,
        recur_pricing::SERVICE_NAMES,
        recur_payment::SERVICE_NAMES,
        recur_subscription::SERVICE_NAMES,
        recur_signup::SERVICE_NAMES,
    ]
    .concat()
}

pub struct App {
    server: RunningServer,
    tasks: BackgroundTasks,
}

impl App {
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Graceful shutdown: in-flight calls finish.
    pub async fn shutdown(self) {
        if let Err(e) = self.server.shutdown().await {
            tracing::warn!(error = %e, "shutdown");
        }
        self.tasks.abort_all();
    }

    /// Runs until the shutdown signal given to [`start`] fires.
    pub async fn wait(self) {
        if let Err(e) = self.server.wait().await {
            tracing::error!(error = %e, "server stopped");
        }
        self.tasks.abort_all();
    }
}

/// Builds and starts all five services on `listener`.
pub async fn start(
    config: Config,
    clock: SharedClock,
    key: TokenKey,
    listener: TcpListener,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<App, StartError> {
    let addr = listener.local_addr().map_err(|e| StartError::Network(e.to_string()))?;
    let own = addr.to_string();
    let in_process = config.in_process_calls;
    let mut env = ServiceEnv::new(config, clock.clone(), key.clone(), Peers::all_at(&own), addr);
    let mut incoming = None;
    if in_process {
        let (connector, memory) = recur_client::memory::memory_transport();
        env = env.with_in_process(&own, connector);
        incoming = Some(memory);
    }
    let mut routes = RoutesBuilder::default();
    routes = recur_catalog::register(env.clone(), routes).await?;
    routes = recur_pricing::register(env.clone(), routes).await?;
    routes = recur_payment::register(env.clone(), routes).await?;
    routes = recur_subscription::register(env.clone(), routes).await?;
    routes = recur_signup::register(env.clone(), routes).await?;
    let options = ServerOptions {
        key,
        clock,
        service_names: service_names(),
        max_call_time: Duration::from_secs(300),
        shutdown_grace: env.config.shutdown_grace,
        rate_limits: recur_server::rate_limiter(&env.config, env.clock.clone())
            .map_err(|e| StartError::Config(e.to_string()))?,
    };
    let server = recur_server::spawn_with_in_process(listener, incoming, routes.routes(), options, signal)
        .map_err(|e| StartError::Network(e.to_string()))?;
    Ok(App { server, tasks: env.tasks.clone() })
}

/// The signing key: `RECUR_JWT_SECRET`, else the development key in the
/// data directory (created on first start). Returns the key and, for a
/// development key, whether it was just created.
pub fn signing_key(config: &Config) -> Result<(TokenKey, Option<bool>), StartError> {
    match &config.jwt_secret {
        Some(secret) => Ok((TokenKey::new(secret.expose().as_bytes().to_vec()), None)),
        None => {
            let (key, created) = TokenKey::load_or_create_dev_key(&config.data_dir)
                .map_err(|e| StartError::Config(format!("development key in {}: {e}", config.data_dir.display())))?;
            Ok((key, Some(created)))
        }
    }
}

/// A catalog client for `tenant` against `addr`, with a token from `key`.
pub async fn catalog_client(
    addr: &str,
    token: String,
) -> Result<
    recur_proto::catalog::v1::catalog_service_client::CatalogServiceClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, impl tonic::service::Interceptor>,
    >,
    String,
> {
    let uri = if addr.contains("://") { addr.to_string() } else { format!("http://{addr}") };
    let channel = tonic::transport::Endpoint::from_shared(uri)
        .map_err(|e| format!("bad address {addr:?}: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("cannot reach Recur at {addr}: {e}"))?;
    let header: tonic::metadata::MetadataValue<tonic::metadata::Ascii> =
        format!("Bearer {token}").parse().map_err(|_| "token is not a valid header value".to_string())?;
    Ok(recur_proto::catalog::v1::catalog_service_client::CatalogServiceClient::with_interceptor(
        channel,
        move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", header.clone());
            Ok(req)
        },
    ))
}

/// Applies the demo catalog to `tenant` through the catalog service at
/// `addr`, if that tenant's catalog is still empty. Returns how many
/// resources it created (`None` when the catalog was not empty).
pub async fn load_demo_catalog(addr: &str, key: &TokenKey, tenant: &str) -> Result<Option<usize>, String> {
    use recur_proto::catalog::v1 as pb;
    let token = key.mint(tenant, chrono::Utc::now(), chrono::Duration::minutes(5));
    let mut client = catalog_client(addr, token).await?;
    let existing = client
        .list_products(pb::ListProductsRequest { page_size: 1, ..Default::default() })
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    if !existing.products.is_empty() {
        return Ok(None);
    }
    let applied = client
        .apply_catalog(pb::ApplyCatalogRequest {
            document: recur_catalog::DEMO_CATALOG.to_string(),
            format: pb::DocumentFormat::Yaml as i32,
            dry_run: false,
            allow_archive_all: false,
        })
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    Ok(Some(applied.changes.iter().filter(|c| c.action == pb::ChangeAction::Created as i32).count()))
}
