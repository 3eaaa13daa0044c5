//! The sign-up session cache. Sessions are also written to the signup
//! service's own table, so the cache may lose anything at any time without
//! losing a session: an error here is logged by the caller and the database
//! answers instead.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
#[error("session cache: {0}")]
pub struct CacheError(String);

#[async_trait]
pub trait SessionCache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError>;
    async fn delete(&self, key: &str) -> Result<(), CacheError>;
    /// "memory" or "redis", for logs and the start banner.
    fn kind(&self) -> &'static str;
}

/// An in-process cache with per-entry expiry, bounded in size.
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    max_entries: usize,
}

impl MemoryCache {
    pub fn new(max_entries: usize) -> Self {
        MemoryCache { entries: Mutex::new(HashMap::new()), max_entries: max_entries.max(1) }
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        MemoryCache::new(100_000)
    }
}

#[async_trait]
impl SessionCache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(key) {
            Some((value, expires)) if *expires > Instant::now() => Ok(Some(value.clone())),
            Some(_) => {
                entries.remove(key);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries && !entries.contains_key(key) {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.max_entries {
                // Still full of live entries: drop the one closest to expiry.
                if let Some(victim) = entries.iter().min_by_key(|(_, (_, e))| *e).map(|(k, _)| k.clone()) {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(key.to_string(), (value.to_vec(), now + ttl));
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// Redis through a `ConnectionManager`, which reconnects by itself.
pub struct RedisCache {
    conn: redis::aio::ConnectionManager,
    prefix: String,
}

impl RedisCache {
    /// Connects to `url`; every key is stored under `prefix`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(|e| CacheError(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let conn = redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| CacheError(e.to_string()))?;
        Ok(RedisCache { conn, prefix: prefix.to_string() })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }
}

#[async_trait]
impl SessionCache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("GET")
            .arg(self.key(key))
            .query_async::<Option<Vec<u8>>>(&mut conn)
            .await
            .map_err(|e| CacheError(e.to_string()))
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("SET")
            .arg(self.key(key))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| CacheError(e.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL").arg(self.key(key)).query_async::<()>(&mut conn).await.map_err(|e| CacheError(e.to_string()))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn behaves_like_a_cache(cache: &dyn SessionCache, ns: &str) {
        let key = format!("{ns}:cart_1");
        assert_eq!(cache.get(&key).await.expect("get"), None);
        cache.put(&key, b"one", Duration::from_secs(60)).await.expect("put");
        assert_eq!(cache.get(&key).await.expect("get").as_deref(), Some(&b"one"[..]));
        cache.put(&key, b"two", Duration::from_secs(60)).await.expect("overwrite");
        assert_eq!(cache.get(&key).await.expect("get").as_deref(), Some(&b"two"[..]));
        cache.delete(&key).await.expect("delete");
        assert_eq!(cache.get(&key).await.expect("get"), None);

        let short = format!("{ns}:short");
        cache.put(&short, b"x", Duration::from_millis(50)).await.expect("put");
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(cache.get(&short).await.expect("get"), None, "entry outlived its TTL");
    }

    #[tokio::test]
    async fn memory_cache() {
        behaves_like_a_cache(&MemoryCache::default(), "t").await;
    }

    #[tokio::test]
    async fn memory_cache_stays_bounded() {
        let cache = MemoryCache::new(2);
        for k in ["a", "b", "c"] {
            cache.put(k, b"v", Duration::from_secs(60)).await.expect("put");
        }
        let live = [cache.get("a").await, cache.get("b").await, cache.get("c").await]
            .into_iter()
            .filter(|r| matches!(r, Ok(Some(_))))
            .count();
        assert_eq!(live, 2);
        assert!(matches!(cache.get("c").await, Ok(Some(_))), "the newest entry is kept");
    }

    /// Runs against the Redis at `RECUR_TEST_REDIS_URL` (CI sets it).
    #[tokio::test]
    async fn redis_cache() {
        let Ok(url) = std::env::var("RECUR_TEST_REDIS_URL") else {
            eprintln!("RECUR_TEST_REDIS_URL unset: Redis cache test skipped");
            return;
        };
        let ns = format!("recur-test-{}", std::process::id());
        let cache = RedisCache::connect(&url, "recur:test:").await.expect("redis reachable");
        behaves_like_a_cache(&cache, &ns).await;
    }
}
