//! A read cache in front of the catalog repository. Catalog reads vastly
//! outnumber writes (every quote reads offerings, rates and settings), so
//! single-resource lookups and settings are kept in memory:
//!
//! - every write through this process bumps the tenant's generation, so its
//!   own reads never see a value older than its last write;
//! - entries expire after `ttl`, which bounds how stale a read can be when
//!   another replica wrote (the default, 1 s, is well inside the 5 s bound
//!   pricing promises for catalog changes);
//! - lists and snapshots always read the database.
//!
//! A `ttl` of zero turns the cache off.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use recur_storage::StorageError;

use super::CatalogRepo;
use crate::domain::*;

#[derive(Clone)]
enum Cached {
    Product(Option<Product>),
    Offering(Option<Offering>),
    Rate(Option<Rate>),
    Coupon(Option<Coupon>),
    Settings(Option<TenantSettings>),
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    tenant: String,
    kind: u8,
    by_handle: bool,
    key: String,
}

struct Entry {
    at: Instant,
    generation: u64,
    value: Cached,
}

pub struct CachedRepo {
    inner: Arc<dyn CatalogRepo>,
    ttl: Duration,
    max_entries: usize,
    entries: RwLock<HashMap<Key, Entry>>,
    generations: RwLock<HashMap<String, u64>>,
}

impl CachedRepo {
    pub fn new(inner: Arc<dyn CatalogRepo>, ttl: Duration) -> Self {
        CachedRepo {
            inner,
            ttl,
            max_entries: 100_000,
            entries: RwLock::new(HashMap::new()),
            generations: RwLock::new(HashMap::new()),
        }
    }

    fn generation(&self, tenant: &str) -> u64 {
        self.generations.read().unwrap_or_else(PoisonError::into_inner).get(tenant).copied().unwrap_or(0)
    }

    fn bump(&self, tenant: &str) {
        *self.generations.write().unwrap_or_else(PoisonError::into_inner).entry(tenant.to_string()).or_insert(0) += 1;
    }

    fn key(tenant: &str, kind: u8, lookup: Lookup<'_>) -> Key {
        let (by_handle, key) = match lookup {
            Lookup::Id(id) => (false, id),
            Lookup::Handle(h) => (true, h),
        };
        Key { tenant: tenant.to_string(), kind, by_handle, key: key.to_string() }
    }

    fn get(&self, key: &Key) -> Option<Cached> {
        if self.ttl.is_zero() {
            return None;
        }
        let generation = self.generation(&key.tenant);
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).filter(|e| e.generation == generation && e.at.elapsed() < self.ttl).map(|e| e.value.clone())
    }

    /// Stores a value read at `generation` (taken before the read, so a
    /// write that raced the read leaves the value already stale).
    fn put(&self, key: Key, generation: u64, value: Cached) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries {
            entries.clear();
        }
        entries.insert(key, Entry { at: Instant::now(), generation, value });
    }

    async fn through<T, F, Fut>(
        &self,
        key: Key,
        wrap: fn(T) -> Cached,
        unwrap: fn(Cached) -> Option<T>,
        load: F,
    ) -> Result<T, StorageError>
    where
        T: Clone,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, StorageError>>,
    {
        if let Some(hit) = self.get(&key).and_then(unwrap) {
            return Ok(hit);
        }
        let generation = self.generation(&key.tenant);
        let value = load().await?;
        self.put(key, generation, wrap(value.clone()));
        Ok(value)
    }
}

#[async_trait]
impl CatalogRepo for CachedRepo {
    async fn get_product(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Product>, StorageError> {
        self.through(
            Self::key(tenant, 0, key),
            Cached::Product,
            |c| if let Cached::Product(p) = c { Some(p) } else { None },
            || self.inner.get_product(tenant, key),
        )
        .await
    }

    async fn list_products(
        &self,
        tenant: &str,
        f: &ProductFilter,
        p: &PageQuery,
    ) -> Result<Vec<Product>, StorageError> {
        self.inner.list_products(tenant, f, p).await
    }

    async fn get_offering(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Offering>, StorageError> {
        self.through(
            Self::key(tenant, 1, key),
            Cached::Offering,
            |c| if let Cached::Offering(o) = c { Some(o) } else { None },
            || self.inner.get_offering(tenant, key),
        )
        .await
    }

    async fn list_offerings(
        &self,
        tenant: &str,
        f: &OfferingFilter,
        p: &PageQuery,
    ) -> Result<Vec<Offering>, StorageError> {
        self.inner.list_offerings(tenant, f, p).await
    }

    async fn get_rate(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Rate>, StorageError> {
        self.through(
            Self::key(tenant, 2, key),
            Cached::Rate,
            |c| if let Cached::Rate(r) = c { Some(r) } else { None },
            || self.inner.get_rate(tenant, key),
        )
        .await
    }

    async fn list_rates(&self, tenant: &str, f: &RateFilter, p: &PageQuery) -> Result<Vec<Rate>, StorageError> {
        self.inner.list_rates(tenant, f, p).await
    }

    async fn get_coupon(&self, tenant: &str, key: Lookup<'_>) -> Result<Option<Coupon>, StorageError> {
        self.through(
            Self::key(tenant, 3, key),
            Cached::Coupon,
            |c| if let Cached::Coupon(c) = c { Some(c) } else { None },
            || self.inner.get_coupon(tenant, key),
        )
        .await
    }

    async fn list_coupons(&self, tenant: &str, f: &CouponFilter, p: &PageQuery) -> Result<Vec<Coupon>, StorageError> {
        self.inner.list_coupons(tenant, f, p).await
    }

    async fn apply(&self, tenant: &str, ops: &[CatalogOp]) -> Result<(), StorageError> {
        let result = self.inner.apply(tenant, ops).await;
        // Bumped whatever the outcome: a failed commit may still have
        // changed nothing, but a cheap refetch is better than a doubt.
        self.bump(tenant);
        result
    }

    async fn snapshot(&self, tenant: &str) -> Result<Snapshot, StorageError> {
        self.inner.snapshot(tenant).await
    }

    async fn get_settings(&self, tenant: &str) -> Result<Option<TenantSettings>, StorageError> {
        self.through(
            Self::key(tenant, 4, Lookup::Id("")),
            Cached::Settings,
            |c| if let Cached::Settings(s) = c { Some(s) } else { None },
            || self.inner.get_settings(tenant),
        )
        .await
    }

    async fn put_settings(&self, tenant: &str, s: &TenantSettings) -> Result<(), StorageError> {
        let result = self.inner.put_settings(tenant, s).await;
        self.bump(tenant);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts reads of settings, and stores what was put.
    #[derive(Default)]
    struct Counting {
        reads: AtomicUsize,
        settings: std::sync::Mutex<Option<TenantSettings>>,
    }

    #[async_trait]
    impl CatalogRepo for Counting {
        async fn get_product(&self, _: &str, _: Lookup<'_>) -> Result<Option<Product>, StorageError> {
            Ok(None)
        }
        async fn list_products(&self, _: &str, _: &ProductFilter, _: &PageQuery) -> Result<Vec<Product>, StorageError> {
            Ok(vec![])
        }
        async fn get_offering(&self, _: &str, _: Lookup<'_>) -> Result<Option<Offering>, StorageError> {
            Ok(None)
        }
        async fn list_offerings(
            &self,
            _: &str,
            _: &OfferingFilter,
            _: &PageQuery,
        ) -> Result<Vec<Offering>, StorageError> {
            Ok(vec![])
        }
        async fn get_rate(&self, _: &str, _: Lookup<'_>) -> Result<Option<Rate>, StorageError> {
            Ok(None)
        }
        async fn list_rates(&self, _: &str, _: &RateFilter, _: &PageQuery) -> Result<Vec<Rate>, StorageError> {
            Ok(vec![])
        }
        async fn get_coupon(&self, _: &str, _: Lookup<'_>) -> Result<Option<Coupon>, StorageError> {
            Ok(None)
        }
        async fn list_coupons(&self, _: &str, _: &CouponFilter, _: &PageQuery) -> Result<Vec<Coupon>, StorageError> {
            Ok(vec![])
        }
        async fn apply(&self, _: &str, _: &[CatalogOp]) -> Result<(), StorageError> {
            Ok(())
        }
        async fn snapshot(&self, _: &str) -> Result<Snapshot, StorageError> {
            Ok(Snapshot::default())
        }
        async fn get_settings(&self, _: &str) -> Result<Option<TenantSettings>, StorageError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            Ok(self.settings.lock().unwrap_or_else(PoisonError::into_inner).clone())
        }
        async fn put_settings(&self, _: &str, s: &TenantSettings) -> Result<(), StorageError> {
            *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = Some(s.clone());
            Ok(())
        }
    }

    #[tokio::test]
    async fn reads_are_cached_and_writes_are_seen_at_once() {
        let inner = Arc::new(Counting::default());
        let cache = CachedRepo::new(inner.clone(), Duration::from_secs(60));
        assert_eq!(cache.get_settings("a").await.expect("read"), None);
        assert_eq!(cache.get_settings("a").await.expect("read"), None);
        assert_eq!(inner.reads.load(Ordering::SeqCst), 1, "the second read came from memory");

        let mut s = TenantSettings::defaults();
        s.time_zone = "Asia/Tokyo".into();
        cache.put_settings("a", &s).await.expect("write");
        assert_eq!(cache.get_settings("a").await.expect("read").map(|s| s.time_zone), Some("Asia/Tokyo".into()));
        assert_eq!(inner.reads.load(Ordering::SeqCst), 2, "the write invalidated the tenant's entries");

        cache.get_settings("b").await.expect("read");
        assert_eq!(inner.reads.load(Ordering::SeqCst), 3, "tenants are cached apart");
    }

    #[tokio::test]
    async fn entries_expire_and_zero_ttl_disables() {
        let inner = Arc::new(Counting::default());
        let cache = CachedRepo::new(inner.clone(), Duration::from_millis(30));
        cache.get_settings("a").await.expect("read");
        tokio::time::sleep(Duration::from_millis(60)).await;
        cache.get_settings("a").await.expect("read");
        assert_eq!(inner.reads.load(Ordering::SeqCst), 2, "expired after the ttl");

        let off = CachedRepo::new(inner.clone(), Duration::ZERO);
        off.get_settings("a").await.expect("read");
        off.get_settings("a").await.expect("read");
        assert_eq!(inner.reads.load(Ordering::SeqCst), 4);
    }
}
