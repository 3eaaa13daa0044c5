//! Where the engine reads the catalog from: the catalog service, through its
//! gRPC client, on behalf of the caller — behind a cache, so a steady stream
//! of quotes does not call the catalog per quote.
//!
//! Staleness bound: an entry lives `ttl` (RECUR_PRICING_CACHE_TTL_MS, 3 s by
//! default) here, and the catalog service's own cache may have held it for
//! up to its TTL (1 s) before: a catalog change reaches quotes within the sum
//! of the two (4 s by default, at most 5 s as documented). An archived rate
//! is refused by every quote after that.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use recur_auth::CallContext;
use recur_client::{CatalogClient, request};
use recur_error::{AppError, AppResult};
use recur_money::Currency;
use recur_proto::catalog::v1 as cpb;
use tonic::Code;

use crate::domain::period::Period;
use crate::domain::rating::PriceSpec;

/// A rate with its prices already parsed for the engine (once per fetch,
/// not once per quote). Derefs to the catalog's rate.
#[derive(Debug)]
pub struct RateView {
    pub proto: cpb::Rate,
    /// (product id, price) for each price of the rate.
    pub specs: Vec<(String, PriceSpec)>,
    pub period: Period,
    pub currency: Option<Currency>,
}

impl RateView {
    pub fn new(proto: cpb::Rate) -> RateView {
        RateView {
            specs: proto.prices.iter().map(|p| (p.product_id.clone(), crate::api::price_spec(p))).collect(),
            period: crate::api::period(&proto),
            currency: Currency::from_code(&proto.currency_code),
            proto,
        }
    }

    pub fn spec(&self, product_id: &str) -> Option<&PriceSpec> {
        self.specs.iter().find(|(p, _)| p == product_id).map(|(_, s)| s)
    }
}

impl std::ops::Deref for RateView {
    type Target = cpb::Rate;
    fn deref(&self) -> &cpb::Rate {
        &self.proto
    }
}

#[async_trait]
pub trait CatalogSource: Send + Sync + 'static {
    /// An offering by id or handle; `None` when it does not exist.
    async fn offering(&self, ctx: &CallContext, key: &str) -> AppResult<Option<Arc<cpb::Offering>>>;
    /// A rate by id or handle; `None` when it does not exist.
    async fn rate(&self, ctx: &CallContext, key: &str) -> AppResult<Option<Arc<RateView>>>;
    /// A product by id or handle; `None` when it does not exist.
    async fn product(&self, ctx: &CallContext, key: &str) -> AppResult<Option<Arc<cpb::Product>>>;
    async fn coupon(&self, ctx: &CallContext, code: &str) -> AppResult<Option<Arc<cpb::Coupon>>>;
    async fn settings(&self, ctx: &CallContext) -> AppResult<Arc<cpb::TenantSettings>>;

    /// Several products at once, in order.
    async fn products(&self, ctx: &CallContext, ids: &[String]) -> AppResult<Vec<Option<Arc<cpb::Product>>>> {
        futures::future::join_all(ids.iter().map(|id| self.product(ctx, id))).await.into_iter().collect()
    }
}

pub struct GrpcCatalog {
    client: CatalogClient,
    timeout: Duration,
}

impl GrpcCatalog {
    pub fn new(client: CatalogClient, timeout: Duration) -> Self {
        GrpcCatalog { client, timeout }
    }
}

fn absent_if_not_found<T>(r: Result<T, tonic::Status>) -> AppResult<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(AppError::from_peer("catalog", &s)),
    }
}

#[async_trait]
impl CatalogSource for GrpcCatalog {
    async fn offering(&self, ctx: &CallContext, key: &str) -> AppResult<Option<Arc<cpb::Offering>>> {
        use cpb::get_offering_request::Lookup;
        let lookup = if recur_id::looks_like_id(key) { Lookup::Id(key.into()) } else { Lookup::Handle(key.into()) };
        let req = request(ctx, cpb::GetOfferingRequest { lookup: Some(lookup) }, self.timeout);
        Ok(absent_if_not_found(self.client.clone().get_offering(req).await)?
            .and_then(|r| r.into_inner().offering)
            .map(Arc::new))
    }

    async fn rate(&self, ctx: &CallContext, key: &str) -> AppResult<Option<Arc<RateView>>> {
        use cpb::get_rate_request::Lookup;
        let lookup = if recur_id::looks_like_id(key) { Lookup::Id(key.into()) } else { Lookup::Handle(key.into()) };
        let req = request(ctx, cpb::GetRateRequest { lookup: Some(lookup) }, self.timeout);
        Ok(absent_if_not_found(self.client.clone().get_rate(req).await)?
            .and_then(|r| r.into_inner().rate)
            .map(|r| Arc::new(RateView::new(r))))
    }

    async fn product(&self, ctx: &CallContext, key: &str) -> AppResult<Option<Arc<cpb::Product>>> {
        use cpb::get_product_request::Lookup;
        let lookup = if recur_id::looks_like_id(key) { Lookup::Id(key.into()) } else { Lookup::Handle(key.into()) };
        let req = request(ctx, cpb::GetProductRequest { lookup: Some(lookup) }, self.timeout);
        Ok(absent_if_not_found(self.client.clone().get_product(req).await)?
            .and_then(|r| r.into_inner().product)
            .map(Arc::new))
    }

    async fn coupon(&self, ctx: &CallContext, code: &str) -> AppResult<Option<Arc<cpb::Coupon>>> {
        use cpb::get_coupon_request::Lookup;
        let req = request(ctx, cpb::GetCouponRequest { lookup: Some(Lookup::Code(code.into())) }, self.timeout);
        Ok(absent_if_not_found(self.client.clone().get_coupon(req).await)?
            .and_then(|r| r.into_inner().coupon)
            .map(Arc::new))
    }

    async fn settings(&self, ctx: &CallContext) -> AppResult<Arc<cpb::TenantSettings>> {
        let req = request(ctx, cpb::GetTenantSettingsRequest {}, self.timeout);
        let resp =
            self.client.clone().get_tenant_settings(req).await.map_err(|s| AppError::from_peer("catalog", &s))?;
        resp.into_inner().settings.map(Arc::new).ok_or_else(|| AppError::internal("catalog returned no settings"))
    }
}

#[derive(Clone)]
enum Entry {
    Offering(Option<Arc<cpb::Offering>>),
    Rate(Option<Arc<RateView>>),
    Product(Option<Arc<cpb::Product>>),
    Coupon(Option<Arc<cpb::Coupon>>),
    Settings(Arc<cpb::TenantSettings>),
}

/// One tenant's entries, one map per kind of resource (so a lookup by
/// `&str` allocates nothing).
#[derive(Default)]
struct TenantEntries {
    kinds: [HashMap<String, (Instant, Entry)>; 5],
    len: usize,
}

/// A TTL cache over any [`CatalogSource`], per tenant.
pub struct CachedCatalog {
    inner: Arc<dyn CatalogSource>,
    ttl: Duration,
    max_entries: usize,
    tenants: RwLock<HashMap<String, TenantEntries>>,
}

impl CachedCatalog {
    pub fn new(inner: Arc<dyn CatalogSource>, ttl: Duration) -> Self {
        CachedCatalog { inner, ttl, max_entries: 100_000, tenants: RwLock::new(HashMap::new()) }
    }

    fn get(&self, tenant: &str, kind: usize, key: &str) -> Option<Entry> {
        if self.ttl.is_zero() {
            return None;
        }
        let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
        tenants.get(tenant)?.kinds[kind].get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, e)| e.clone())
    }

    fn put(&self, tenant: &str, kind: usize, key: &str, entry: Entry) {
        if self.ttl.is_zero() {
            return;
        }
        let mut tenants = self.tenants.write().unwrap_or_else(PoisonError::into_inner);
        if tenants.values().map(|t| t.len).sum::<usize>() >= self.max_entries {
            tenants.clear();
        }
        let t = tenants.entry(tenant.to_string()).or_default();
        if t.kinds[kind].insert(key.to_string(), (Instant::now(), entry)).is_none() {
            t.len += 1;
        }
    }
}

macro_rules! cached {
    ($self:ident, $ctx:ident, $kind:expr, $key:expr, $variant:ident, $load:expr) => {{
        if let Some(Entry::$variant(hit)) = $self.get(&$ctx.tenant_id, $kind, $key) {
            return Ok(hit);
        }
        let value = $load.await?;
        $self.put(&$ctx.tenant_id, $kind, $key, Entry::$variant(value.clone()));
        Ok(value)
    }};
}

#[async_trait]
impl CatalogSource for CachedCatalog {
    async fn offering(&self, ctx: &CallContext, key: &str) -> AppResult<Option<Arc<cpb::Offering>>> {
        cached!(self, ctx, 0, key, Offering, self.inner.offering(ctx, key))
    }

    async fn rate(&self, ctx: &CallContext, key: &str) -> AppResult<Option<Arc<RateView>>> {
        cached!(self, ctx, 1, key, Rate, self.inner.rate(ctx, key))
    }

    async fn product(&self, ctx: &CallContext, id: &str) -> AppResult<Option<Arc<cpb::Product>>> {
        cached!(self, ctx, 2, id, Product, self.inner.product(ctx, id))
    }

    async fn coupon(&self, ctx: &CallContext, code: &str) -> AppResult<Option<Arc<cpb::Coupon>>> {
        cached!(self, ctx, 3, code, Coupon, self.inner.coupon(ctx, code))
    }

    async fn settings(&self, ctx: &CallContext) -> AppResult<Arc<cpb::TenantSettings>> {
        cached!(self, ctx, 4, "", Settings, self.inner.settings(ctx))
    }

    async fn products(&self, ctx: &CallContext, ids: &[String]) -> AppResult<Vec<Option<Arc<cpb::Product>>>> {
        // All hits under one lock; only misses go to the catalog.
        let hits: Vec<Option<Entry>> = {
            let tenants = self.tenants.read().unwrap_or_else(PoisonError::into_inner);
            let fresh = |e: &(Instant, Entry)| !self.ttl.is_zero() && e.0.elapsed() < self.ttl;
            let kinds = tenants.get(&ctx.tenant_id);
            ids.iter()
                .map(|id| kinds.and_then(|t| t.kinds[2].get(id.as_str())).filter(|e| fresh(e)).map(|e| e.1.clone()))
                .collect()
        };
        let mut out = Vec::with_capacity(ids.len());
        for (id, hit) in ids.iter().zip(hits) {
            match hit {
                Some(Entry::Product(p)) => out.push(p),
                _ => out.push(self.product(ctx, id).await?),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A catalog that counts its calls (a unit-test stand-in for the service).
    #[derive(Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    #[async_trait]
    impl CatalogSource for Counting {
        async fn offering(&self, _: &CallContext, _: &str) -> AppResult<Option<Arc<cpb::Offering>>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(Some(Arc::new(cpb::Offering::default())))
        }
        async fn rate(&self, _: &CallContext, _: &str) -> AppResult<Option<Arc<RateView>>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        }
        async fn product(&self, _: &CallContext, _: &str) -> AppResult<Option<Arc<cpb::Product>>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        }
        async fn coupon(&self, _: &CallContext, _: &str) -> AppResult<Option<Arc<cpb::Coupon>>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(None)
        }
        async fn settings(&self, _: &CallContext) -> AppResult<Arc<cpb::TenantSettings>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(Arc::new(cpb::TenantSettings::default()))
        }
    }

    fn ctx(tenant: &str) -> CallContext {
        CallContext { tenant_id: tenant.into(), bearer: String::new(), deadline: None, peer_proof: String::new() }
    }

    #[tokio::test]
    async fn repeated_reads_hit_the_cache_per_tenant_until_the_ttl() {
        let inner = Arc::new(Counting::default());
        let cache = CachedCatalog::new(inner.clone(), Duration::from_millis(50));
        for _ in 0..100 {
            cache.offering(&ctx("a"), "team").await.expect("offering");
            cache.rate(&ctx("a"), "team-monthly").await.expect("rate");
        }
        assert_eq!(inner.calls.load(Ordering::SeqCst), 2, "one catalog call per key, negative answers included");
        cache.offering(&ctx("b"), "team").await.expect("offering");
        assert_eq!(inner.calls.load(Ordering::SeqCst), 3, "tenants never share entries");
        tokio::time::sleep(Duration::from_millis(80)).await;
        cache.offering(&ctx("a"), "team").await.expect("offering");
        assert_eq!(inner.calls.load(Ordering::SeqCst), 4, "entries expire after the ttl");
    }
}
