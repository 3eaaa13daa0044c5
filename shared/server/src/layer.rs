//! The per-RPC tower layer: span, trace context, authentication, deadline,
//! rate limits (see [`crate::ratelimit`]).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::{Request, Response};
use recur_auth::{AuthError, CallContext, Claims, TokenKey};
use recur_clock::SharedClock;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::ratelimit::{self, RateLimiter};

#[derive(Clone)]
pub struct RpcLayer {
    inner: Arc<Shared>,
}

struct Shared {
    key: TokenKey,
    clock: SharedClock,
    /// Tokens already verified: a client sends the same token with every
    /// call, and the signature of the same bytes cannot change. Expiry is
    /// still checked on every call. Kept with each: its peer proof.
    verified: RwLock<HashMap<String, (Claims, String)>>,
    /// Signs peer proofs ([`recur_auth::PEER_CALL_PURPOSE`]).
    peer_key: TokenKey,
    limiter: RateLimiter,
}

const VERIFIED_TOKENS: usize = 10_000;

impl Shared {
    /// The caller's claims and the peer proof of its token.
    fn verify(&self, header: Option<&str>) -> Result<(Claims, String), AuthError> {
        let now = self.clock.now();
        let token = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))).map(str::trim);
        if let Some(token) = token {
            let cached = self.verified.read().unwrap_or_else(PoisonError::into_inner).get(token).cloned();
            if let Some((claims, proof)) = cached {
                return if claims.exp > now.timestamp() { Ok((claims, proof)) } else { Err(AuthError::Expired) };
            }
        }
        let claims = self.key.verify_header(header, now)?;
        let proof = self.peer_key.peer_proof(token.unwrap_or_default());
        if let Some(token) = token {
            let mut verified = self.verified.write().unwrap_or_else(PoisonError::into_inner);
            if verified.len() >= VERIFIED_TOKENS {
                verified.clear();
            }
            verified.insert(token.to_string(), (claims.clone(), proof.clone()));
        }
        Ok((claims, proof))
    }
}

/// Whether a call carries the peer proof of its own token (compared in
/// constant time): a Recur service calling on its caller's behalf.
fn is_peer_call<B>(req: &Request<B>, proof: &str) -> bool {
    use subtle::ConstantTimeEq;
    req.headers()
        .get(recur_auth::PEER_PROOF_METADATA)
        .is_some_and(|sent| bool::from(sent.as_bytes().ct_eq(proof.as_bytes())))
}

impl RpcLayer {
    pub fn new(key: TokenKey, clock: SharedClock) -> Self {
        RpcLayer::with_rate_limits(key, clock, RateLimiter::off())
    }

    pub fn with_rate_limits(key: TokenKey, clock: SharedClock, limiter: RateLimiter) -> Self {
        let peer_key = key.derive(recur_auth::PEER_CALL_PURPOSE);
        RpcLayer { inner: Arc::new(Shared { key, clock, verified: RwLock::new(HashMap::new()), peer_key, limiter }) }
    }
}

impl<S> Layer<S> for RpcLayer {
    type Service = RpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcService { inner, shared: self.inner.clone() }
    }
}

#[derive(Clone)]
pub struct RpcService<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Health checks and reflection describe the server, not a tenant's data, so
/// probes and tools (Kubernetes, grpcurl, ghz) reach them without a token.
/// Hosted pages (under [`HOSTED_PREFIX`]) are for customers' browsers: each
/// carries its own signed, expiring page token instead, checked by the page.
fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.") || path.starts_with(HOSTED_PREFIX)
}

/// Where plain-HTTP pages live on a Recur port (HTTP/1.1 and HTTP/2).
pub const HOSTED_PREFIX: &str = "/hosted/";

/// Parses a `grpc-timeout` header ("100m", "5S", …).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Service<Request<B>> for RpcService<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send,
    B: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let path = req.uri().path().to_string();
        let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path.as_str(), ""));
        let span = tracing::info_span!(
            "rpc",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            tenant_id = tracing::field::Empty,
        );
        recur_telemetry::set_parent(&span, recur_telemetry::extract(req.headers()));

        let deadline = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map(|t| started + t);

        // Health, reflection and hosted pages are neither authenticated nor
        // limited; calls from Recur peers were counted where they came in.
        let mut limit = None;
        if !is_public(&path) {
            let header = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
            match self.shared.verify(header) {
                Ok((claims, peer_proof)) => {
                    span.record("tenant_id", claims.tenant_id.as_str());
                    let class = ratelimit::classify(&path);
                    if self.shared.limiter.limit(class).is_some() && !is_peer_call(&req, &peer_proof) {
                        limit = Some((claims.tenant_id.clone(), class));
                    }
                    let bearer = header.and_then(|h| h.get(7..)).map(|t| t.trim().to_string()).unwrap_or_default();
                    req.extensions_mut().insert(CallContext {
                        tenant_id: claims.tenant_id,
                        bearer,
                        deadline,
                        peer_proof,
                    });
                }
                Err(e) => {
                    let status: tonic::Status = recur_error::AppError::unauthenticated(e.to_string()).into();
                    span.record("rpc.grpc.status_code", status.code() as i32);
                    span.in_scope(|| tracing::info!(code = ?status.code(), reason = %e, "rpc refused"));
                    let response = status.into_http::<tonic::body::Body>();
                    return Box::pin(async move { Ok(response) });
                }
            }
        }

        // Take the service that was polled ready; leave a fresh clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limiter = self.shared.limiter.clone();
        let record_span = span.clone();
        Box::pin(
            async move {
                // Nothing of a call over its tenant's limit runs.
                if let Some((tenant, class)) = limit
                    && let Err(status) = limiter.check(&tenant, class).await
                {
                    record_span.record("rpc.grpc.status_code", status.code() as i32);
                    tracing::debug!(code = ?status.code(), class = class.name(), "rpc refused: rate limited");
                    return Ok(status.into_http::<tonic::body::Body>());
                }
                let result = inner.call(req).await.map(crate::oversize::rewrite);
                if let Ok(response) = &result {
                    // Errors of unary calls travel in the headers
                    // (trailers-only); a missing grpc-status means OK.
                    let code = response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<i32>().ok())
                        .unwrap_or(0);
                    record_span.record("rpc.grpc.status_code", code);
                    // Whole microseconds: a float's long fraction could pass
                    // for a card number in a log scan.
                    let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                    if code == 0 {
                        tracing::debug!(code, elapsed_us, "rpc");
                    } else {
                        tracing::info!(code, elapsed_us, "rpc");
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(parse_grpc_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("x"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None, "at most 8 digits");
    }

    #[test]
    fn verified_tokens_are_remembered_but_expire_on_time() {
        use chrono::{DateTime, Duration as Span};
        let start = DateTime::from_timestamp(1_800_000_000, 0).expect("valid");
        let clock = recur_clock::ManualClock::new(start);
        let key = TokenKey::generate();
        let layer = RpcLayer::new(key.clone(), clock.clone());
        let token = key.mint("acme", start, Span::minutes(5));
        let header = format!("Bearer {token}");
        assert_eq!(layer.inner.verify(Some(&header)).map(|c| c.0.tenant_id), Ok("acme".into()));
        assert_eq!(layer.inner.verified.read().expect("lock").len(), 1);
        assert!(layer.inner.verify(Some(&header)).is_ok(), "from memory");
        clock.advance(Span::minutes(6));
        assert_eq!(layer.inner.verify(Some(&header)), Err(AuthError::Expired), "a remembered token still expires");
        let forged = format!("Bearer {}x", token);
        assert_eq!(layer.inner.verify(Some(&forged)), Err(AuthError::Signature), "only the exact bytes are remembered");
    }

    #[tokio::test]
    async fn limits_count_external_calls_only() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tower::ServiceExt;
        let clock = recur_clock::ManualClock::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).expect("valid"));
        let key = TokenKey::generate();
        let limits = recur_config::RateLimits {
            read: Some(recur_config::RateLimit { per_sec: 1.0, burst: 2 }),
            ..Default::default()
        };
        let limiter = RateLimiter::in_memory(limits, clock.clone());
        let layer = RpcLayer::with_rate_limits(key.clone(), clock.clone(), limiter);
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = ran.clone();
        let inner = tower::service_fn(move |_req: Request<()>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, std::convert::Infallible>(Response::new(tonic::body::Body::empty())) }
        });
        let service = layer.layer(inner);
        let token = key.mint("acme", recur_clock::Clock::now(&*clock), chrono::Duration::minutes(5));
        let proof = key.derive(recur_auth::PEER_CALL_PURPOSE).peer_proof(&token);
        let other_proof = key.derive(recur_auth::PEER_CALL_PURPOSE).peer_proof("another token");
        let call = |path: &str, proof: Option<&str>| {
            let mut req = Request::builder().uri(path).header("authorization", format!("Bearer {token}"));
            if let Some(p) = proof {
                req = req.header(recur_auth::PEER_PROOF_METADATA, p);
            }
            let service = service.clone();
            let req = req.body(()).expect("request");
            async move {
                let response = service.oneshot(req).await.expect("infallible");
                response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or("0").to_string()
            }
        };
        let get = "/recur.catalog.v1.CatalogService/GetRate";
        let mut codes = Vec::new();
        for _ in 0..4 {
            codes.push(call(get, None).await);
        }
        assert_eq!(codes, ["0", "0", "8", "8"], "the burst, then RESOURCE_EXHAUSTED");
        assert_eq!(ran.load(Ordering::SeqCst), 2, "refused calls never reach the service");
        assert_eq!(call(get, Some(&proof)).await, "0", "a peer call with the token's proof is not counted");
        assert_eq!(call(get, Some(&other_proof)).await, "8", "another token's proof is no proof");
        assert_eq!(call(get, Some("forged")).await, "8");
        assert_eq!(call("/recur.catalog.v1.CatalogService/CreateProduct", None).await, "0", "writes unlimited");
        assert_eq!(call("/grpc.health.v1.Health/Check", None).await, "0", "public paths are not limited");
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(call(get, None).await, "0", "a token a second");
    }

    #[test]
    fn only_health_and_reflection_are_public() {
        assert!(is_public("/grpc.health.v1.Health/Check"));
        assert!(is_public("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
        assert!(is_public("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
        assert!(!is_public("/recur.catalog.v1.CatalogService/GetRate"));
        assert!(is_public("/hosted/portal/abc"));
        assert!(!is_public("/hostedx/portal"));
    }
}
