//! How a Recur service calls another: a lazily connected channel whose
//! interceptor writes the current span's W3C trace context into every call,
//! and [`request`], which carries the caller's bearer token and the smaller of
//! the caller's remaining deadline and the default call timeout.

use std::time::{Duration, Instant};

pub mod memory;

use recur_auth::CallContext;
use recur_proto::{
    catalog::v1::catalog_service_client::CatalogServiceClient,
    payment::v1::payment_gateway_service_client::PaymentGatewayServiceClient,
    pricing::v1::pricing_service_client::PricingServiceClient,
    signup::v1::signup_service_client::SignupServiceClient,
    subscription::v1::{
        account_service_client::AccountServiceClient, invoice_service_client::InvoiceServiceClient,
        subscription_service_client::SubscriptionServiceClient,
    },
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// Injects trace context into every outgoing call.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceInterceptor;

impl tonic::service::Interceptor for TraceInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        recur_telemetry::inject_current(req.metadata_mut());
        Ok(req)
    }
}

pub type TracedChannel = InterceptedService<Channel, TraceInterceptor>;

pub type CatalogClient = CatalogServiceClient<TracedChannel>;
pub type PricingClient = PricingServiceClient<TracedChannel>;
pub type PaymentClient = PaymentGatewayServiceClient<TracedChannel>;
pub type AccountClient = AccountServiceClient<TracedChannel>;
pub type SubscriptionClient = SubscriptionServiceClient<TracedChannel>;
pub type InvoiceClient = InvoiceServiceClient<TracedChannel>;
pub type SignupClient = SignupServiceClient<TracedChannel>;

#[derive(Debug)]
pub struct BadAddress(pub String);

impl std::fmt::Display for BadAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad peer address {:?}", self.0)
    }
}

impl std::error::Error for BadAddress {}

/// A channel to `addr` (`host:port` or a URL) that connects on first use and
/// reconnects as needed, so services can start in any order.
pub fn channel(addr: &str, connect_timeout: Duration) -> Result<TracedChannel, BadAddress> {
    let uri = if addr.contains("://") { addr.to_string() } else { format!("http://{addr}") };
    let endpoint = endpoint(Endpoint::from_shared(uri).map_err(|_| BadAddress(addr.to_string()))?, connect_timeout);
    Ok(InterceptedService::new(endpoint.connect_lazy(), TraceInterceptor))
}

/// A channel to a server of this same process, over in-memory connections
/// made by `connector` (see [`memory`]); otherwise like [`channel`].
pub fn channel_in_process(connector: memory::MemoryConnector, connect_timeout: Duration) -> TracedChannel {
    let endpoint = endpoint(Endpoint::from_static("http://in-process"), connect_timeout);
    InterceptedService::new(endpoint.connect_with_connector_lazy(connector), TraceInterceptor)
}

fn endpoint(endpoint: Endpoint, connect_timeout: Duration) -> Endpoint {
    endpoint
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
}

/// A request on behalf of `ctx`: same tenant and token, deadline no later
/// than the caller's, and the caller's peer proof, so the peer does not
/// count the call against the tenant's rate limits a second time.
pub fn request<T>(ctx: &CallContext, message: T, default_timeout: Duration) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    if let Ok(v) = format!("Bearer {}", ctx.bearer).parse() {
        req.metadata_mut().insert("authorization", v);
    }
    if !ctx.peer_proof.is_empty()
        && let Ok(v) = ctx.peer_proof.parse()
    {
        req.metadata_mut().insert(recur_auth::PEER_PROOF_METADATA, v);
    }
    req.set_timeout(call_timeout(ctx.deadline, default_timeout, Instant::now()));
    req
}

/// Adds an `idempotency-key` to a request.
pub fn with_idempotency_key<T>(mut req: tonic::Request<T>, key: &str) -> tonic::Request<T> {
    if let Ok(v) = key.parse() {
        req.metadata_mut().insert("idempotency-key", v);
    }
    req
}

fn call_timeout(deadline: Option<Instant>, default_timeout: Duration, now: Instant) -> Duration {
    match deadline {
        // A deadline already past still gets a minimal budget so the peer
        // answers DEADLINE_EXCEEDED rather than never hearing of the call.
        Some(d) => d.saturating_duration_since(now).min(default_timeout).max(Duration::from_millis(1)),
        None => default_timeout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shorter_deadline_wins() {
        let now = Instant::now();
        let ten = Duration::from_secs(10);
        assert_eq!(call_timeout(None, ten, now), ten);
        assert_eq!(call_timeout(Some(now + Duration::from_secs(2)), ten, now), Duration::from_secs(2));
        assert_eq!(call_timeout(Some(now + Duration::from_secs(60)), ten, now), ten);
        assert_eq!(call_timeout(Some(now), ten, now), Duration::from_millis(1));
    }

    #[test]
    fn requests_carry_token_and_timeout() {
        let ctx = CallContext {
            tenant_id: "acme".into(),
            bearer: "tok".into(),
            deadline: None,
            peer_proof: "proof-of-tok".into(),
        };
        let req = with_idempotency_key(request(&ctx, (), Duration::from_secs(3)), "cart_1/account");
        assert_eq!(req.metadata().get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer tok"));
        assert_eq!(
            req.metadata().get(recur_auth::PEER_PROOF_METADATA).and_then(|v| v.to_str().ok()),
            Some("proof-of-tok")
        );
        let unproven = CallContext { peer_proof: String::new(), ..ctx };
        assert!(
            request(&unproven, (), Duration::from_secs(3)).metadata().get(recur_auth::PEER_PROOF_METADATA).is_none()
        );
        assert_eq!(req.metadata().get("grpc-timeout").and_then(|v| v.to_str().ok()), Some("3000000u"));
        assert_eq!(req.metadata().get("idempotency-key").and_then(|v| v.to_str().ok()), Some("cart_1/account"));
    }
}
