//! Sign-up sessions: their durable copy (Postgres or SQLite, one body for
//! both) and the session cache in front of it.

mod postgres;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use recur_cache::SessionCache;
use recur_storage::{Migration, Migrations, Pool, StorageError};

use crate::domain::Session;

pub use postgres::PgRepo;
pub use sqlite::SqliteRepo;

#[async_trait]
pub trait SessionRepo: Send + Sync + 'static {
    async fn insert(&self, tenant: &str, s: &Session) -> Result<(), StorageError>;
    async fn get(&self, tenant: &str, id: &str) -> Result<Option<Session>, StorageError>;
    /// Writes `s` if the stored version is still `expected`; false when
    /// another writer got there first.
    async fn replace(&self, tenant: &str, s: &Session, expected: i64) -> Result<bool, StorageError>;
}

pub const MIGRATIONS: Migrations = Migrations {
    table: "signup_migrations",
    postgres: &[Migration { version: 1, name: "init", sql: include_str!("../../migrations/postgres/0001_init.sql") }],
    sqlite: &[Migration { version: 1, name: "init", sql: include_str!("../../migrations/sqlite/0001_init.sql") }],
};

pub async fn open(url: &str, max_connections: u32) -> Result<Arc<dyn SessionRepo>, StorageError> {
    Ok(from_pool(open_pool(url, max_connections).await?))
}

/// The service's pool at `url`, migrated.
pub async fn open_pool(url: &str, max_connections: u32) -> Result<Pool, StorageError> {
    let pool = recur_storage::connect(url, "signup", max_connections).await?;
    recur_storage::migrate(&pool, &MIGRATIONS).await?;
    Ok(pool)
}

pub fn from_pool(pool: Pool) -> Arc<dyn SessionRepo> {
    match pool {
        Pool::Postgres(p) => Arc::new(PgRepo { pool: p }),
        Pool::Sqlite(p) => Arc::new(SqliteRepo { pool: p }),
    }
}

fn decode_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Other(format!("signup session: {e}"))
}

/// Sessions through the cache: reads try the cache, then the table (and
/// refill the cache); writes go to the table first, then the cache. A cache
/// failure never fails a request; the table is the truth.
pub struct Sessions {
    repo: Arc<dyn SessionRepo>,
    cache: Arc<dyn SessionCache>,
}

impl Sessions {
    pub fn new(repo: Arc<dyn SessionRepo>, cache: Arc<dyn SessionCache>) -> Self {
        Sessions { repo, cache }
    }

    fn key(tenant: &str, id: &str) -> String {
        format!("signup:{tenant}:{id}")
    }

    async fn cache_put(&self, tenant: &str, s: &Session, now: DateTime<Utc>) {
        let key = Self::key(tenant, &s.id);
        // Keep a session cached for what is left of its life (finished ones
        // for an hour, so a repeated FINALIZE answers from the cache).
        let ttl = (s.expires_at - now).to_std().unwrap_or(Duration::ZERO).max(Duration::from_secs(3600));
        let result = match serde_json::to_vec(s) {
            Ok(bytes) => self.cache.put(&key, &bytes, ttl).await,
            Err(e) => {
                tracing::warn!(error = %e, "session not cacheable");
                return;
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "session cache write failed");
            // A stale entry must not outlive a failed overwrite.
            let _ = self.cache.delete(&key).await;
        }
    }

    pub async fn insert(&self, tenant: &str, s: &Session, now: DateTime<Utc>) -> Result<(), StorageError> {
        self.repo.insert(tenant, s).await?;
        self.cache_put(tenant, s, now).await;
        Ok(())
    }

    /// The session as cached (or stored).
    pub async fn get(&self, tenant: &str, id: &str, now: DateTime<Utc>) -> Result<Option<Session>, StorageError> {
        match self.cache.get(&Self::key(tenant, id)).await {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(s) => return Ok(Some(s)),
                Err(e) => tracing::warn!(error = %e, "unreadable cached session; using the table"),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "session cache read failed; using the table"),
        }
        let found = self.repo.get(tenant, id).await?;
        if let Some(s) = &found {
            self.cache_put(tenant, s, now).await;
        }
        Ok(found)
    }

    /// The session from the table, for decisions that must not act on a
    /// stale copy (state transitions).
    pub async fn get_fresh(&self, tenant: &str, id: &str) -> Result<Option<Session>, StorageError> {
        self.repo.get(tenant, id).await
    }

    /// Saves `s` (its version already bumped) over version `expected`.
    pub async fn replace(
        &self,
        tenant: &str,
        s: &Session,
        expected: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        let written = self.repo.replace(tenant, s, expected).await?;
        if written {
            self.cache_put(tenant, s, now).await;
        } else {
            let _ = self.cache.delete(&Self::key(tenant, &s.id)).await;
        }
        Ok(written)
    }
}

macro_rules! sql_repo {
    ($repo:ident, $db:ty) => {
        use async_trait::async_trait;
        use recur_storage::StorageError;
        use sqlx::Row;

        use super::{SessionRepo, decode_err};
        use crate::domain::Session;

        pub struct $repo {
            pub pool: sqlx::Pool<$db>,
        }

        #[async_trait]
        impl SessionRepo for $repo {
            async fn insert(&self, tenant: &str, s: &Session) -> Result<(), StorageError> {
                sqlx::query(
                    "INSERT INTO signup_sessions (tenant_id, id, status, data, version, created_at, updated_at, \
                     expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(tenant)
                .bind(&s.id)
                .bind(s.status.as_str())
                .bind(serde_json::to_string(s).map_err(decode_err)?)
                .bind(s.version)
                .bind(s.created_at)
                .bind(s.updated_at)
                .bind(s.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get(&self, tenant: &str, id: &str) -> Result<Option<Session>, StorageError> {
                let row = sqlx::query("SELECT data FROM signup_sessions WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(r) => Ok(Some(serde_json::from_str(&r.try_get::<String, _>("data")?).map_err(decode_err)?)),
                    None => Ok(None),
                }
            }

            async fn replace(&self, tenant: &str, s: &Session, expected: i64) -> Result<bool, StorageError> {
                let n = sqlx::query(
                    "UPDATE signup_sessions SET status = $3, data = $4, version = $5, updated_at = $6, expires_at = $7 \
                     WHERE tenant_id = $1 AND id = $2 AND version = $8",
                )
                .bind(tenant)
                .bind(&s.id)
                .bind(s.status.as_str())
                .bind(serde_json::to_string(s).map_err(decode_err)?)
                .bind(s.version)
                .bind(s.updated_at)
                .bind(s.expires_at)
                .bind(expected)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }
        }
    };
}

pub(crate) use sql_repo;
