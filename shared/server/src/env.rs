//! What a service needs to start, and the `main` of a standalone service.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use recur_auth::TokenKey;
use recur_client::TracedChannel;
use recur_clock::SharedClock;
use recur_config::{Config, Peers};
use tonic::service::RoutesBuilder;

/// Everything a service is built from: configuration, the clock, the token
/// key, and where its peers are.
#[derive(Clone)]
pub struct ServiceEnv {
    pub config: Arc<Config>,
    pub clock: SharedClock,
    pub key: TokenKey,
    pub peers: Peers,
    /// Base URL of this process's hosted pages (`RECUR_PUBLIC_URL`, else
    /// `http://` + the listen address).
    pub public_url: String,
    /// Work a service runs beside its RPCs (the payment reconciler),
    /// stopped when the process stops serving.
    pub tasks: BackgroundTasks,
    /// The all-in-one's own address and the connector that reaches its
    /// server in memory: a peer at that address is called through it.
    pub in_process: Option<(String, recur_client::memory::MemoryConnector)>,
}

/// Background tasks of a process, aborted together at shutdown.
#[derive(Clone, Default)]
pub struct BackgroundTasks(Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>);

impl BackgroundTasks {
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task).abort_handle();
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(handle);
    }

    pub fn abort_all(&self) {
        for h in self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..) {
            h.abort();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Storage(String),
    #[error("cache: {0}")]
    Cache(String),
    #[error("network: {0}")]
    Network(String),
    #[error("telemetry: {0}")]
    Telemetry(String),
}

impl ServiceEnv {
    /// The environment of a process listening on `addr`.
    pub fn new(config: Config, clock: SharedClock, key: TokenKey, peers: Peers, addr: std::net::SocketAddr) -> Self {
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        ServiceEnv {
            config: Arc::new(config),
            clock,
            key,
            peers,
            public_url,
            tasks: BackgroundTasks::default(),
            in_process: None,
        }
    }

    /// A channel to a peer service (connects lazily).
    pub fn channel(&self, addr: &str) -> Result<TracedChannel, StartError> {
        if let Some((own, connector)) = &self.in_process
            && own == addr
        {
            return Ok(recur_client::channel_in_process(connector.clone(), self.config.call_timeout));
        }
        recur_client::channel(addr, self.config.call_timeout).map_err(|e| StartError::Config(e.to_string()))
    }

    /// Calls to peers at `addr`, this process's own address, go over
    /// in-memory connections to the server that serves what
    /// [`recur_client::memory::memory_transport`] returned beside `connector`.
    pub fn with_in_process(mut self, addr: &str, connector: recur_client::memory::MemoryConnector) -> Self {
        self.in_process = Some((addr.to_string(), connector));
        self
    }

    /// The database a service uses: `RECUR_DATABASE_URL` when set, else its
    /// own SQLite file in the data directory.
    pub fn database_url(&self, service: &str) -> String {
        match &self.config.database_url {
            Some(url) => url.expose().to_string(),
            None => format!("sqlite://{}", self.config.data_dir.join(format!("{service}.db")).display()),
        }
    }
}

/// The whole `main` of a standalone service binary: configuration from the
/// environment, telemetry, the shared key (required), the service's routes,
/// and serving until SIGTERM/SIGINT.
pub async fn run_service<F, Fut>(
    binary: &'static str,
    default_addr: &'static str,
    service_names: &'static [&'static str],
    register: F,
) -> ExitCode
where
    F: FnOnce(ServiceEnv, RoutesBuilder) -> Fut,
    Fut: Future<Output = Result<RoutesBuilder, StartError>>,
{
    let result = async {
        let config = Config::from_env().map_err(|e| StartError::Config(e.to_string()))?;
        let telemetry = recur_telemetry::init(binary, &config).map_err(|e| StartError::Telemetry(e.to_string()))?;
        let secret = config.jwt_secret.clone().ok_or_else(|| {
            StartError::Config("RECUR_JWT_SECRET is required (the key every service verifies tokens with)".into())
        })?;
        let key = TokenKey::new(secret.expose().as_bytes().to_vec());
        let addr = config.listen_addr.clone().unwrap_or_else(|| default_addr.to_string());
        let listener = crate::bind(&addr).await.map_err(|e| StartError::Network(format!("{addr}: {e}")))?;
        let local = listener.local_addr().map_err(|e| StartError::Network(e.to_string()))?;
        let peers = config.peers.clone();
        let env = ServiceEnv::new(config, recur_clock::system(), key.clone(), peers, local);
        let routes = register(env.clone(), RoutesBuilder::default()).await?;
        let options = crate::ServerOptions {
            key,
            clock: env.clock.clone(),
            service_names: service_names.to_vec(),
            max_call_time: std::time::Duration::from_secs(300),
            shutdown_grace: env.config.shutdown_grace,
            rate_limits: crate::rate_limiter(&env.config, env.clock.clone())
                .map_err(|e| StartError::Config(e.to_string()))?,
        };
        let server = crate::spawn(listener, routes.routes(), options, crate::shutdown_signal())
            .map_err(|e| StartError::Network(e.to_string()))?;
        tracing::info!(addr = %server.local_addr(), service = binary, "serving");
        let served = server.wait().await;
        env.tasks.abort_all();
        telemetry.shutdown();
        served.map_err(|e| StartError::Network(e.to_string()))
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{binary}: {e}");
            ExitCode::FAILURE
        }
    }
}
