//! Per-tenant rate limits: one token bucket per tenant and class of call
//! (`read`, `write`, `money`), refilled at `per_sec` tokens a second up to
//! `burst`. With `RECUR_REDIS_URL` the buckets live in Redis, updated by one
//! Lua script (atomic, on Redis's own clock, expiring once full again), so
//! every replica draws from the same bucket; otherwise in this process's
//! memory, on the injected clock. A Redis that cannot be reached lets calls
//! through (with a warning at most every ten seconds): a limit is a guard,
//! never a reason to fail a call as INTERNAL.
//!
//! An exceeded limit is RESOURCE_EXHAUSTED, reason `RATE_LIMITED`, with the
//! class and limit in the `ErrorInfo` metadata and a `RetryInfo` saying when
//! a token will be there again; nothing of the call runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use recur_clock::SharedClock;
use recur_config::{RateLimit, RateLimits};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// The class of a call, which decides the bucket it draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// Calls that change nothing: `Get*`, `List*`, `Find*`, `Export*`,
    /// `Preview*`, `Quote`, `RateUsage`.
    Read,
    /// Every other call (the default for a method this table does not know).
    Write,
    /// Calls that can move money or verify a card with the provider.
    Money,
}

impl Class {
    pub fn name(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Money => "money",
        }
    }
}

/// Calls that can charge, refund or check a card (`service/method`, the
/// service by its full name). A sign-up counts as money: `CreateSignup` and
/// `UpdateSignup` can finalize a session, which charges the first invoice,
/// and looping over sign-ups is how stolen cards get tested. Attaching a
/// payment method verifies the card with the provider, for the same reason.
const MONEY: &[&str] = &[
    "recur.payment.v1.PaymentGatewayService/Charge",
    "recur.payment.v1.PaymentGatewayService/Refund",
    "recur.payment.v1.PaymentGatewayService/AttachPaymentMethod",
    "recur.signup.v1.SignupService/CreateSignup",
    "recur.signup.v1.SignupService/UpdateSignup",
    "recur.subscription.v1.SubscriptionService/CreateSubscription",
    "recur.subscription.v1.SubscriptionService/ActivateSubscription",
    "recur.subscription.v1.SubscriptionService/ChangeSubscription",
    "recur.subscription.v1.SubscriptionService/ReactivateSubscription",
    "recur.subscription.v1.SubscriptionService/ResumeSubscription",
    "recur.subscription.v1.InvoiceService/PayInvoice",
    "recur.subscription.v1.InvoiceService/CreateOneOffCharge",
];

const READ_PREFIXES: &[&str] = &["Get", "List", "Find", "Export", "Preview"];
const READ_METHODS: &[&str] = &["Quote", "RateUsage"];

/// The class of the call to `path` (`/package.Service/Method`).
pub fn classify(path: &str) -> Class {
    let full = path.trim_start_matches('/');
    let method = full.rsplit('/').next().unwrap_or_default();
    if MONEY.contains(&full) {
        Class::Money
    } else if READ_METHODS.contains(&method) || READ_PREFIXES.iter().any(|p| method.starts_with(p)) {
        Class::Read
    } else {
        Class::Write
    }
}

/// A bucket's state: tokens left at a moment (microseconds).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bucket {
    tokens: f64,
    at_us: i64,
}

impl Bucket {
    /// The bucket refilled up to `now_us` (a clock that went back refills
    /// nothing).
    fn refilled(self, now_us: i64, limit: RateLimit) -> Bucket {
        if now_us <= self.at_us {
            return self;
        }
        let gained = (now_us - self.at_us) as f64 / 1e6 * limit.per_sec;
        Bucket { tokens: (self.tokens + gained).min(f64::from(limit.burst)), at_us: now_us }
    }
}

/// Takes one token from `bucket` (a full one when there is none yet) at
/// `now_us`: the new state, and `Err(wait)` when there was no whole token.
fn take(bucket: Option<Bucket>, now_us: i64, limit: RateLimit) -> (Bucket, Result<(), Duration>) {
    let b = bucket.unwrap_or(Bucket { tokens: f64::from(limit.burst), at_us: now_us }).refilled(now_us, limit);
    if b.tokens >= 1.0 {
        (Bucket { tokens: b.tokens - 1.0, ..b }, Ok(()))
    } else {
        let wait = Duration::from_secs_f64(((1.0 - b.tokens) / limit.per_sec).min(86_400.0));
        (b, Err(wait))
    }
}

/// At most this many buckets are kept in memory. Full buckets are dropped
/// first (a full bucket is the same as none); if every bucket is in use,
/// all are dropped, which lets those tenants start afresh.
const MEMORY_BUCKETS: usize = 100_000;

struct Memory {
    clock: SharedClock,
    /// Each bucket with the moment (µs) it is full again.
    buckets: Mutex<HashMap<(Class, String), (Bucket, i64)>>,
}

impl Memory {
    fn take(&self, tenant: &str, class: Class, limit: RateLimit) -> Result<(), Duration> {
        let now_us = self.clock.now().timestamp_micros();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (class, tenant.to_string());
        let current = buckets.get(&key).map(|(b, _)| *b);
        if current.is_none() && buckets.len() >= MEMORY_BUCKETS {
            buckets.retain(|_, (_, full_at_us)| *full_at_us > now_us);
            if buckets.len() >= MEMORY_BUCKETS {
                buckets.clear();
            }
        }
        let (next, result) = take(current, now_us, limit);
        let to_full_us = (f64::from(limit.burst) - next.tokens) / limit.per_sec * 1e6;
        let full_at_us = next.at_us.saturating_add(to_full_us.min(1e15) as i64);
        buckets.insert(key, (next, full_at_us));
        result
    }
}

/// Takes a token from the bucket at `KEYS[1]`. `ARGV`: rate per second,
/// burst. Returns `{1, 0}` when allowed, `{0, wait_us}` when not. Time is
/// Redis's own, so replicas whose clocks disagree still share one bucket.
const SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
  at = now
end
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'at', string.format('%.17g', at))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
return {allowed, wait}
"#;

/// How long Redis is left alone after it failed: calls are let through
/// without asking it.
const REDIS_BACKOFF: Duration = Duration::from_secs(1);
/// At most one warning this often while Redis fails.
const WARN_EVERY: Duration = Duration::from_secs(10);
const KEY_PREFIX: &str = "recur:ratelimit:";

struct Redis {
    conn: redis::aio::ConnectionManager,
    sha: RwLock<Option<String>>,
    down_until: Mutex<Option<Instant>>,
    warned_at: Mutex<Option<Instant>>,
}

impl Redis {
    fn connect(url: &str) -> Result<Redis, String> {
        let client = redis::Client::open(url).map_err(|e| format!("RECUR_REDIS_URL: {e}"))?;
        // A limit check waits for Redis briefly: past that, the call goes
        // through unlimited rather than slow.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("RECUR_REDIS_URL: {e}"))?;
        Ok(Redis { conn, sha: RwLock::new(None), down_until: Mutex::new(None), warned_at: Mutex::new(None) })
    }

    async fn take(&self, tenant: &str, class: Class, limit: RateLimit) -> Result<(), Duration> {
        let now = Instant::now();
        if self.down_until.lock().unwrap_or_else(PoisonError::into_inner).is_some_and(|until| now < until) {
            return Ok(());
        }
        match self.eval(&format!("{KEY_PREFIX}{}:{tenant}", class.name()), limit).await {
            Ok((1, _)) => Ok(()),
            Ok((_, wait_us)) => Err(Duration::from_micros(wait_us.max(1) as u64)),
            Err(e) => {
                *self.down_until.lock().unwrap_or_else(PoisonError::into_inner) = Some(now + REDIS_BACKOFF);
                let mut warned = self.warned_at.lock().unwrap_or_else(PoisonError::into_inner);
                if warned.is_none_or(|at| now.duration_since(at) >= WARN_EVERY) {
                    *warned = Some(now);
                    tracing::warn!(error = %e, "rate limits: Redis unreachable, letting calls through unlimited");
                }
                Ok(())
            }
        }
    }

    /// EVALSHA of the script, loading it first (and again after a Redis
    /// restart forgot it).
    async fn eval(&self, key: &str, limit: RateLimit) -> redis::RedisResult<(i64, i64)> {
        let mut conn = self.conn.clone();
        for _ in 0..2 {
            let known = self.sha.read().unwrap_or_else(PoisonError::into_inner).clone();
            let sha = match known {
                Some(sha) => sha,
                None => {
                    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(SCRIPT).query_async(&mut conn).await?;
                    *self.sha.write().unwrap_or_else(PoisonError::into_inner) = Some(sha.clone());
                    sha
                }
            };
            let result = redis::cmd("EVALSHA")
                .arg(&sha)
                .arg(1)
                .arg(key)
                .arg(limit.per_sec)
                .arg(limit.burst)
                .query_async::<(i64, i64)>(&mut conn)
                .await;
            match result {
                Err(e) if e.code() == Some("NOSCRIPT") => {
                    *self.sha.write().unwrap_or_else(PoisonError::into_inner) = None;
                }
                other => return other,
            }
        }
        Err(redis::RedisError::from((redis::ErrorKind::Client, "rate-limit script not loaded")))
    }
}

enum Store {
    Memory(Memory),
    Redis(Redis),
}

struct Inner {
    limits: RateLimits,
    store: Store,
}

/// The rate limits of a server: off, in memory, or shared through Redis.
#[derive(Clone, Default)]
pub struct RateLimiter {
    inner: Option<Arc<Inner>>,
}

impl RateLimiter {
    /// No limits.
    pub fn off() -> RateLimiter {
        RateLimiter { inner: None }
    }

    /// `limits` in this process's memory, on `clock`.
    pub fn in_memory(limits: RateLimits, clock: SharedClock) -> RateLimiter {
        if limits.is_off() {
            return RateLimiter::off();
        }
        let store = Store::Memory(Memory { clock, buckets: Mutex::new(HashMap::new()) });
        RateLimiter { inner: Some(Arc::new(Inner { limits, store })) }
    }

    /// `limits` shared by every process using the Redis at `url`. Connects
    /// lazily (must be called within a Tokio runtime); fails only on a
    /// malformed URL.
    pub fn redis(limits: RateLimits, url: &str) -> Result<RateLimiter, String> {
        if limits.is_off() {
            return Ok(RateLimiter::off());
        }
        let store = Store::Redis(Redis::connect(url)?);
        Ok(RateLimiter { inner: Some(Arc::new(Inner { limits, store })) })
    }

    /// `limits` through Redis when `redis_url` is set, else in memory.
    pub fn new(limits: RateLimits, redis_url: Option<&str>, clock: SharedClock) -> Result<RateLimiter, String> {
        match redis_url {
            Some(url) => RateLimiter::redis(limits, url),
            None => Ok(RateLimiter::in_memory(limits, clock)),
        }
    }

    /// Where the buckets are: "off", "memory" or "redis".
    pub fn kind(&self) -> &'static str {
        match self.inner.as_deref().map(|i| &i.store) {
            None => "off",
            Some(Store::Memory(_)) => "memory",
            Some(Store::Redis(_)) => "redis",
        }
    }

    /// The limit of `class`, if it has one.
    pub fn limit(&self, class: Class) -> Option<RateLimit> {
        let limits = &self.inner.as_ref()?.limits;
        match class {
            Class::Read => limits.read,
            Class::Write => limits.write,
            Class::Money => limits.money,
        }
    }

    /// Takes a token for a call of `class` by `tenant`; the refusal to send
    /// when there is none.
    pub async fn check(&self, tenant: &str, class: Class) -> Result<(), tonic::Status> {
        let (Some(inner), Some(limit)) = (self.inner.as_deref(), self.limit(class)) else {
            return Ok(());
        };
        let taken = match &inner.store {
            Store::Memory(m) => m.take(tenant, class, limit),
            Store::Redis(r) => r.take(tenant, class, limit).await,
        };
        taken.map_err(|wait| refusal(class, limit, wait))
    }
}

/// RESOURCE_EXHAUSTED `RATE_LIMITED`, naming the class and its limit, with
/// `RetryInfo` (rounded up to the millisecond).
fn refusal(class: Class, limit: RateLimit, wait: Duration) -> tonic::Status {
    let wait = Duration::from_millis(u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX).max(1));
    let per_sec = format_rate(limit.per_sec);
    let mut details = ErrorDetails::new();
    details.set_error_info(
        "RATE_LIMITED",
        recur_error::DOMAIN,
        HashMap::from([
            ("class".to_string(), class.name().to_string()),
            ("limit".to_string(), format!("{per_sec}/s")),
            ("burst".to_string(), limit.burst.to_string()),
        ]),
    );
    details.set_retry_info(Some(wait));
    tonic::Status::with_error_details(
        Code::ResourceExhausted,
        format!(
            "rate limit of {} calls exceeded ({per_sec}/s, burst {}); retry in {} ms",
            class.name(),
            limit.burst,
            wait.as_millis()
        ),
        details,
    )
}

fn format_rate(per_sec: f64) -> String {
    let s = format!("{per_sec:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration as Span};

    fn limits(read: Option<(f64, u32)>, money: Option<(f64, u32)>) -> RateLimits {
        let l = |v: Option<(f64, u32)>| v.map(|(per_sec, burst)| RateLimit { per_sec, burst });
        RateLimits { read: l(read), write: None, money: l(money) }
    }

    fn clock() -> Arc<recur_clock::ManualClock> {
        recur_clock::ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).expect("valid"))
    }

    async fn allowed(limiter: &RateLimiter, tenant: &str, class: Class, calls: usize) -> usize {
        let mut n = 0;
        for _ in 0..calls {
            if limiter.check(tenant, class).await.is_ok() {
                n += 1;
            }
        }
        n
    }

    #[test]
    fn calls_are_classified_by_method() {
        assert_eq!(classify("/recur.catalog.v1.CatalogService/GetRate"), Class::Read);
        assert_eq!(classify("/recur.catalog.v1.CatalogService/ListProducts"), Class::Read);
        assert_eq!(classify("/recur.catalog.v1.CatalogService/ExportCatalog"), Class::Read);
        assert_eq!(classify("/recur.pricing.v1.PricingService/Quote"), Class::Read);
        assert_eq!(classify("/recur.pricing.v1.PricingService/PreviewChange"), Class::Read);
        assert_eq!(classify("/recur.subscription.v1.AccountService/FindAccount"), Class::Read);
        assert_eq!(classify("/recur.catalog.v1.CatalogService/ApplyCatalog"), Class::Write);
        assert_eq!(classify("/recur.payment.v1.PaymentGatewayService/CreateCustomer"), Class::Write);
        assert_eq!(classify("/recur.payment.v1.PaymentGatewayService/Charge"), Class::Money);
        assert_eq!(classify("/recur.signup.v1.SignupService/UpdateSignup"), Class::Money);
        assert_eq!(classify("/recur.signup.v1.SignupService/GetSignup"), Class::Read);
        assert_eq!(classify("/recur.other.v1.Other/Charge"), Class::Write, "money calls are named in full");
        assert_eq!(classify("/recur.future.v1.NewService/DoSomething"), Class::Write, "unknown: write");
    }

    #[test]
    fn every_money_call_exists_and_every_rpc_has_a_class() {
        use prost::Message;
        let set = prost_types::FileDescriptorSet::decode(recur_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
        let mut all = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    all.push(format!("{}.{}/{}", file.package(), service.name(), method.name()));
                }
            }
        }
        for money in MONEY {
            assert!(all.iter().any(|m| m == money), "{money} is not an RPC");
        }
        let reads = all.iter().filter(|m| classify(&format!("/{m}")) == Class::Read).count();
        assert!(reads > 20 && reads < all.len() - MONEY.len(), "{reads} reads of {}", all.len());
    }

    #[tokio::test]
    async fn a_bucket_allows_its_burst_then_its_rate() {
        let clock = clock();
        let limiter = RateLimiter::in_memory(limits(Some((2.0, 5)), None), clock.clone());
        assert_eq!(limiter.kind(), "memory");
        assert_eq!(allowed(&limiter, "acme", Class::Read, 20).await, 5, "the burst");
        let refused = limiter.check("acme", Class::Read).await.expect_err("empty");
        assert_eq!(refused.code(), Code::ResourceExhausted);
        let d = refused.get_error_details();
        let info = d.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "RATE_LIMITED");
        assert_eq!(info.metadata.get("class").map(String::as_str), Some("read"));
        assert_eq!(info.metadata.get("limit").map(String::as_str), Some("2/s"));
        assert_eq!(d.retry_info().and_then(|r| r.retry_delay), Some(Duration::from_millis(500)));

        clock.advance(Span::milliseconds(250));
        let d = limiter.check("acme", Class::Read).await.expect_err("half a token").get_error_details();
        assert_eq!(d.retry_info().and_then(|r| r.retry_delay), Some(Duration::from_millis(250)), "the rest of it");
        clock.advance(Span::milliseconds(250));
        assert_eq!(allowed(&limiter, "acme", Class::Read, 5).await, 1, "one token after half a second");
        clock.advance(Span::seconds(10));
        assert_eq!(allowed(&limiter, "acme", Class::Read, 20).await, 5, "refilled to the burst, no further");
        clock.advance(Span::seconds(-30));
        assert_eq!(allowed(&limiter, "acme", Class::Read, 5).await, 0, "a clock going back refills nothing");
    }

    #[tokio::test]
    async fn tenants_and_classes_have_their_own_buckets() {
        let clock = clock();
        let limiter = RateLimiter::in_memory(limits(Some((1.0, 3)), Some((0.5, 1))), clock.clone());
        assert_eq!(allowed(&limiter, "acme", Class::Read, 10).await, 3);
        assert_eq!(allowed(&limiter, "other", Class::Read, 10).await, 3, "another tenant is unaffected");
        assert_eq!(allowed(&limiter, "acme", Class::Money, 10).await, 1, "money has its own bucket");
        assert_eq!(allowed(&limiter, "acme", Class::Write, 100).await, 100, "writes are unlimited here");
        clock.advance(Span::seconds(1));
        assert_eq!(allowed(&limiter, "acme", Class::Money, 10).await, 0, "0.5/s: half a token");
        clock.advance(Span::seconds(1));
        assert_eq!(allowed(&limiter, "acme", Class::Money, 10).await, 1);
    }

    #[tokio::test]
    async fn memory_stays_bounded() {
        let clock = clock();
        let limiter = RateLimiter::in_memory(limits(Some((1.0, 2)), None), clock.clone());
        let Some(Store::Memory(m)) = limiter.inner.as_deref().map(|i| &i.store) else { unreachable!("memory") };
        let len = || m.buckets.lock().expect("lock").len();
        assert_eq!(allowed(&limiter, "busy", Class::Read, 3).await, 2);
        for i in 1..MEMORY_BUCKETS {
            limiter.check(&format!("t{i}"), Class::Read).await.expect("a fresh bucket");
        }
        assert_eq!(len(), MEMORY_BUCKETS);
        // One second later every bucket but the emptied one is full again:
        // they are dropped, the busy tenant's is kept.
        clock.advance(Span::seconds(1));
        limiter.check("newcomer", Class::Read).await.expect("a fresh bucket");
        assert_eq!(len(), 2);
        assert_eq!(allowed(&limiter, "busy", Class::Read, 3).await, 1, "still remembered: one token back");
    }

    #[test]
    fn no_limits_means_off() {
        let limiter = RateLimiter::in_memory(RateLimits::default(), clock());
        assert_eq!(limiter.kind(), "off");
        assert_eq!(limiter.limit(Class::Read), None);
    }

    #[tokio::test]
    async fn an_unreachable_redis_lets_calls_through() {
        // Nothing listens on port 1.
        let limiter = RateLimiter::redis(limits(Some((1.0, 1)), None), "redis://127.0.0.1:1").expect("valid url");
        assert_eq!(limiter.kind(), "redis");
        let started = Instant::now();
        assert_eq!(allowed(&limiter, "acme", Class::Read, 50).await, 50, "fail open");
        assert!(started.elapsed() < Duration::from_secs(3), "not slowed down: {:?}", started.elapsed());
        assert!(RateLimiter::redis(limits(Some((1.0, 1)), None), "not a url").is_err());
    }

    #[tokio::test]
    async fn redis_buckets_are_shared_and_expire() {
        let Ok(url) = std::env::var("RECUR_TEST_REDIS_URL") else {
            eprintln!("RECUR_TEST_REDIS_URL unset: Redis bucket test skipped");
            return;
        };
        let tenant = format!("unit-{}", std::process::id());
        let l = limits(Some((0.01, 4)), None);
        let a = RateLimiter::redis(l, &url).expect("redis");
        let b = RateLimiter::redis(l, &url).expect("redis");
        assert_eq!(allowed(&a, &tenant, Class::Read, 3).await, 3);
        assert_eq!(allowed(&b, &tenant, Class::Read, 5).await, 1, "the other replica draws from the same bucket");
        let refused = a.check(&tenant, Class::Read).await.expect_err("empty");
        let delay = refused.get_error_details().retry_info().and_then(|r| r.retry_delay).expect("RetryInfo");
        assert!(delay > Duration::from_secs(90) && delay <= Duration::from_secs(100), "{delay:?}");
        assert_eq!(allowed(&a, &format!("{tenant}-b"), Class::Read, 5).await, 4, "another tenant");

        let client = redis::Client::open(url.as_str()).expect("url");
        let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
        let ttl: i64 =
            redis::cmd("PTTL").arg(format!("{KEY_PREFIX}read:{tenant}")).query_async(&mut conn).await.expect("PTTL");
        assert!(ttl > 300_000 && ttl <= 401_000, "expires once refilled: {ttl} ms");
        let _: () = redis::cmd("DEL")
            .arg(format!("{KEY_PREFIX}read:{tenant}"))
            .arg(format!("{KEY_PREFIX}read:{tenant}-b"))
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}
