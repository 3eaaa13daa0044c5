//! The gRPC server every Recur process runs: the services it is given plus
//! `grpc.health.v1` and server reflection (v1 and v1alpha), behind one tower
//! layer that opens a span per RPC (parented on the caller's W3C trace
//! context), authenticates the bearer token, records the caller's deadline,
//! and applies the tenant's rate limits. Shutdown on SIGTERM/SIGINT stops accepting, reports NOT_SERVING,
//! and lets in-flight calls finish within a grace period.

mod env;
mod layer;
mod oversize;
pub mod ratelimit;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use recur_auth::{CallContext, TokenKey};
use recur_client::memory::{Connection, MemoryIncoming};
use recur_clock::SharedClock;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::StreamExt;
use tonic::service::Routes;
use tonic_health::ServingStatus;

pub use env::{BackgroundTasks, ServiceEnv, StartError, run_service};
pub use layer::{HOSTED_PREFIX, RpcLayer};
pub use ratelimit::RateLimiter;

/// What a server needs besides its services.
pub struct ServerOptions {
    pub key: TokenKey,
    pub clock: SharedClock,
    /// Fully qualified names of the services served, for health status.
    pub service_names: Vec<&'static str>,
    /// Upper bound for any call, whatever deadline the caller sent.
    pub max_call_time: Duration,
    /// How long in-flight calls may take to finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// Per-tenant rate limits (`RateLimiter::off()` for none), as
    /// [`rate_limiter`] builds them from the configuration.
    pub rate_limits: RateLimiter,
}

/// The rate limits `config` asks for: shared through `RECUR_REDIS_URL` when
/// set, else in memory on `clock`. Needs a Tokio runtime (Redis connects
/// lazily, on the first limited call).
pub fn rate_limiter(config: &recur_config::Config, clock: SharedClock) -> std::io::Result<RateLimiter> {
    RateLimiter::new(config.rate_limits, config.redis_url.as_ref().map(|u| u.expose()), clock)
        .map_err(std::io::Error::other)
}

/// Binds `addr` (port 0 picks a free port).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// A server running in the background.
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts a graceful shutdown and waits for it to finish.
    pub async fn shutdown(mut self) -> Result<(), tonic::transport::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.done.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "server task failed");
                Ok(())
            }
        }
    }

    /// Waits until the server stops on its own (after `signal` fired).
    pub async fn wait(self) -> Result<(), tonic::transport::Error> {
        let RunningServer { done, stop, .. } = self;
        let _keep_open = stop;
        match done.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "server task failed");
                Ok(())
            }
        }
    }
}

/// Serves `routes` on `listener` until `signal` completes or
/// [`RunningServer::shutdown`] is called.
pub fn spawn(
    listener: TcpListener,
    routes: Routes,
    options: ServerOptions,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<RunningServer> {
    spawn_with_in_process(listener, None, routes, options, signal)
}

/// [`spawn`], also serving the in-memory connections of `in_process` (the
/// all-in-one's calls between its own services) through the same layers.
pub fn spawn_with_in_process(
    listener: TcpListener,
    in_process: Option<MemoryIncoming>,
    routes: Routes,
    options: ServerOptions,
    signal: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<RunningServer> {
    let local_addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(recur_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(std::io::Error::other)?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(recur_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(std::io::Error::other)?;
    let routes = routes.add_service(health_service).add_service(reflection_v1).add_service(reflection_v1alpha);

    if options.rate_limits.kind() != "off" {
        tracing::info!(store = options.rate_limits.kind(), "rate limits on");
    }
    let layer = RpcLayer::with_rate_limits(options.key, options.clock, options.rate_limits);
    // HTTP/1.1 too, for the hosted pages browsers open (gRPC stays HTTP/2).
    let server = tonic::transport::Server::builder()
        .accept_http1(true)
        .timeout(options.max_call_time)
        .layer(layer)
        .add_routes(routes);

    let sockets = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        conn.map(|stream| {
            // Small unary messages must not wait for Nagle's algorithm.
            let _ = stream.set_nodelay(true);
            Connection::Socket(stream)
        })
    });
    let incoming: std::pin::Pin<Box<dyn tokio_stream::Stream<Item = std::io::Result<Connection<_>>> + Send>> =
        match in_process {
            Some(memory) => Box::pin(sockets.merge(memory.into_stream().map(|pipe| Ok(Connection::Memory(pipe))))),
            None => Box::pin(sockets),
        };

    let grace = options.shutdown_grace;
    let names = options.service_names;
    let done = tokio::spawn(async move {
        for name in &names {
            health_reporter.set_service_status(*name, ServingStatus::Serving).await;
        }
        health_reporter.set_service_status("", ServingStatus::Serving).await;

        let (draining_tx, draining_rx) = oneshot::channel::<()>();
        let reporter = health_reporter.clone();
        let shutdown = async move {
            tokio::select! {
                () = signal => {}
                _ = stop_rx => {}
            }
            tracing::info!("shutting down: no new connections, in-flight calls finish");
            for name in &names {
                reporter.set_service_status(*name, ServingStatus::NotServing).await;
            }
            reporter.set_service_status("", ServingStatus::NotServing).await;
            let _ = draining_tx.send(());
        };
        let serve = server.serve_with_incoming_shutdown(incoming, shutdown);
        tokio::pin!(serve);
        let grace_expired = async move {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = &mut serve => r,
            () = grace_expired => {
                tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace expired; abandoning in-flight calls");
                Ok(())
            }
        }
    });
    Ok(RunningServer { local_addr, stop: Some(stop_tx), done })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

/// The authenticated caller of a request (set by [`RpcLayer`]).
pub fn caller<T>(req: &tonic::Request<T>) -> Result<CallContext, tonic::Status> {
    req.extensions()
        .get::<CallContext>()
        .cloned()
        .ok_or_else(|| recur_error::AppError::unauthenticated("no authenticated caller").into())
}

/// The `idempotency-key` metadata entry, if the caller sent one.
pub fn idempotency_key<T>(req: &tonic::Request<T>) -> Option<String> {
    req.metadata()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_string)
}

/// Checks an idempotency key that will be stored like a field (on
/// `idempotency_key`): at most 255 bytes, and nothing that looks like a card
/// number.
pub fn check_idempotency_key(v: &mut recur_error::Violations, key: &str) {
    v.check(key.len() <= 255, "idempotency_key", "at most 255 characters");
    v.check(!recur_proto::cards::contains_card_number(key), "idempotency_key", "looks like a card number");
}

/// The `idempotency-key` metadata entry of a request whose key is stored,
/// refused (INVALID_ARGUMENT) as [`check_idempotency_key`] says.
pub fn checked_idempotency_key<T>(req: &tonic::Request<T>) -> Result<Option<String>, recur_error::AppError> {
    let key = idempotency_key(req);
    if let Some(k) = &key {
        let mut v = recur_error::Violations::new();
        check_idempotency_key(&mut v, k);
        v.finish()?;
    }
    Ok(key)
}

/// Refuses a request holding a card number in any field (strings, map keys
/// and values, nested and repeated messages, integers), naming the field,
/// before anything of it is logged or stored. `type_name` is the message's
/// full proto name, e.g. `recur.payment.v1.ChargeRequest`.
pub fn refuse_card_numbers<M: prost::Message>(message: &M, type_name: &str) -> Result<(), recur_error::AppError> {
    match recur_proto::cards::find_in_message(type_name, message) {
        Some(field) => Err(recur_error::AppError::new(
            tonic::Code::InvalidArgument,
            "CARD_NUMBER_REFUSED",
            format!(
                "{field} looks like a card number (13-19 digits passing the Luhn check); card numbers are never \
                 accepted: collect cards with the payment provider and send its token"
            ),
        )
        .with_field(field, "looks like a card number")),
        None => Ok(()),
    }
}

/// A stable fingerprint of a request message, to tell a retried request
/// (same key, same fingerprint) from a reused key (same key, other request).
/// Maps are generated as ordered maps, so equal messages encode equally.
pub fn fingerprint<M: prost::Message>(message: &M) -> String {
    use sha2::{Digest, Sha256};
    recur_proto::cards::digest_text(&Sha256::digest(message.encode_to_vec()))
}
