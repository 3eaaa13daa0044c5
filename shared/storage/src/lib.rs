//! Storage helpers shared by every service's repository.
//!
//! - [`connect`] picks Postgres or SQLite from the URL. On Postgres each
//!   service lives in its own schema (named after the service), so services
//!   can share a database server without ever seeing each other's tables.
//! - [`migrate`] applies a service's own migrations, once, in order, each in a
//!   transaction (serialized across replicas by an advisory lock on Postgres).
//! - [`Dec`] stores a `Decimal` as NUMERIC on Postgres and as exact TEXT on
//!   SQLite, so one repository body can serve both backends.
//! - [`testing`] makes a throwaway database for a test.
//! - [`idem`]: creates under an idempotency key; [`page`]: keyset pages;
//!   [`outbox`]: per-tenant, gap-free event sequences; [`stored_enum!`]:
//!   enums kept as text; [`Writes`]: statements that belong together in one
//!   round trip on Postgres.

pub mod idem;
pub mod outbox;
pub mod page;
mod stored;
pub mod testing;
mod writes;

use std::str::FromStr;
use std::time::Duration;

use recur_error::AppError;
use rust_decimal::Decimal;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};

pub use sqlx;
pub use writes::Writes;

/// Pushes ` IN (v1, v2, …)` to `qb`, each of `values` bound: the list a
/// column is matched against when many rows are read or written at once.
/// `values` must not be empty (`IN ()` is not SQL).
pub fn push_in<'q, DB, T>(qb: &mut sqlx::QueryBuilder<'q, DB>, values: impl IntoIterator<Item = T>)
where
    DB: sqlx::Database,
    T: 'q + Encode<'q, DB> + Type<DB>,
{
    qb.push(" IN (");
    let mut sep = qb.separated(", ");
    for v in values {
        sep.push_bind(v);
    }
    qb.push(")");
}

/// At most 100 characters of `input`, for an error that quotes it (used by
/// [`stored_enum!`]).
pub use recur_error::excerpt;

/// A connection pool on one of the two backends.
#[derive(Clone, Debug)]
pub enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl Pool {
    pub fn backend(&self) -> &'static str {
        match self {
            Pool::Postgres(_) => "postgres",
            Pool::Sqlite(_) => "sqlite",
        }
    }

    pub async fn close(&self) {
        match self {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

/// A transaction for a read that is about to be written, alike on both
/// backends: SQLite takes its write lock at once (`BEGIN IMMEDIATE`, so two
/// such transactions queue instead of failing on the upgrade); Postgres
/// locks the rows it reads with [`for_update`].
pub async fn begin_locking<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
) -> Result<sqlx::Transaction<'static, DB>, sqlx::Error> {
    if DB::NAME == "SQLite" { pool.begin_with("BEGIN IMMEDIATE").await } else { pool.begin().await }
}

/// What a read inside [`begin_locking`] that is about to be written ends
/// with: ` FOR UPDATE` on Postgres, nothing on SQLite (the transaction
/// already holds the write lock).
pub fn for_update<DB: sqlx::Database>() -> &'static str {
    if DB::NAME == "SQLite" { "" } else { " FOR UPDATE" }
}

impl From<PgPool> for Pool {
    fn from(p: PgPool) -> Pool {
        Pool::Postgres(p)
    }
}

impl From<SqlitePool> for Pool {
    fn from(p: SqlitePool) -> Pool {
        Pool::Sqlite(p)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("unique constraint violated: {0}")]
    Unique(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("bad database URL: {0}")]
    BadUrl(String),
    #[error("storage: {0}")]
    Other(String),
    /// A limit the database keeps (a coupon's redemptions) refused the
    /// write: FAILED_PRECONDITION with `reason`.
    #[error("{message}")]
    Refused { reason: String, message: String },
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StorageError::Unique(db.constraint().unwrap_or_else(|| db.message()).to_string())
            }
            // SQLite reports a locked database as BUSY after busy_timeout.
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "5" || c == "6") => {
                StorageError::Unavailable(db.message().to_string())
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StorageError::Unavailable(e.to_string()),
            _ => StorageError::Other(e.to_string()),
        }
    }
}

impl From<StorageError> for AppError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Unavailable(m) => {
                tracing::warn!(error = %m, "storage unavailable");
                AppError::unavailable("STORAGE_UNAVAILABLE", "storage is unavailable, retry later")
            }
            StorageError::Unique(c) => AppError::already_exists("ALREADY_EXISTS", format!("already exists ({c})")),
            StorageError::Refused { reason, message } => AppError::failed_precondition(reason, message),
            other => AppError::internal(other),
        }
    }
}

impl StorageError {
    pub fn is_unique(&self) -> bool {
        matches!(self, StorageError::Unique(_))
    }
}

/// Whether `url` names a Postgres database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The SQLite URL of `service`'s file in `data_dir`.
pub fn sqlite_file_url(data_dir: &std::path::Path, service: &str) -> String {
    format!("sqlite://{}", data_dir.join(format!("{service}.db")).display())
}

/// Opens a pool for `service` on the database at `url`.
pub async fn connect(url: &str, service: &str, max_connections: u32) -> Result<Pool, StorageError> {
    if is_postgres(url) {
        let schema = schema_name(service);
        let base = PgConnectOptions::from_str(url).map_err(|e| StorageError::BadUrl(e.to_string()))?;
        // The schema must exist before connections default to it.
        {
            let admin = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(base.clone())
                .await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).execute(&admin).await?;
            admin.close().await;
        }
        let options = base.options([("search_path", schema.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Pool::Postgres(pool))
    } else if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StorageError::BadUrl(e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(dir) = options.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::Other(e.to_string()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Pool::Sqlite(pool))
    } else {
        Err(StorageError::BadUrl("expected postgres://… or sqlite://…".into()))
    }
}

/// Analyzes the tables of the pool's schema that have at least doubled (in
/// rows changed) since Postgres last gathered statistics on them; returns
/// their names.
///
/// Postgres caches a generic plan per prepared statement and connection.
/// One made while a table was nearly empty may pick any index that starts
/// with `tenant_id` for a lookup by primary key, and then reads the whole
/// tenant on every call until autovacuum next analyzes the table (up to a
/// minute later by default). Fresh statistics invalidate the cached plans,
/// so a young, fast-growing table gets sensible plans within one call of
/// this. Large tables are left to autovacuum. SQLite: nothing to do.
pub async fn analyze_growing_tables(pool: &Pool) -> Result<Vec<String>, StorageError> {
    let Pool::Postgres(p) = pool else { return Ok(Vec::new()) };
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables WHERE schemaname = current_schema() \
         AND n_mod_since_analyze >= GREATEST(50, n_live_tup / 2) ORDER BY relname",
    )
    .fetch_all(p)
    .await?;
    for t in &tables {
        sqlx::query(&format!("ANALYZE \"{}\"", t.replace('"', "\"\""))).execute(p).await?;
    }
    Ok(tables)
}

/// How often [`keep_statistics`] looks for young tables that have grown.
pub const STATISTICS_INTERVAL: Duration = Duration::from_secs(1);

/// Runs [`analyze_growing_tables`] on `pool` every [`STATISTICS_INTERVAL`],
/// for as long as the returned future is polled (a service spawns it among
/// its background tasks). Every service's young tables need it: a cached
/// generic plan made over a nearly empty table (the subscription service's
/// lookup by idempotency key scanning the tenant through another index was
/// seen taking 4 ms instead of 0.04 ms under load). SQLite: returns at once.
pub async fn keep_statistics(pool: Pool, service: &'static str) {
    if !matches!(pool, Pool::Postgres(_)) {
        return;
    }
    let mut tick = tokio::time::interval(STATISTICS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match analyze_growing_tables(&pool).await {
            Ok(t) if !t.is_empty() => tracing::debug!(service, tables = ?t, "statistics refreshed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(service, error = %e, "refreshing statistics failed"),
        }
    }
}

/// Postgres schema of a service ("payment-gateway" → "payment_gateway").
pub fn schema_name(service: &str) -> String {
    service.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// A PostgreSQL migration a service applies to its own schema (the
/// subscription service and the payment gateway do): its id-like text
/// columns (ids, states, statuses, codes, keys) compare byte by byte
/// (`COLLATE "C"`) instead of by the database's locale. Applying it again
/// changes only columns added since.
pub const BYTE_ORDER_KEYS: &str = include_str!("byte_order_keys.sql");

/// One migration: its version orders it; its SQL may hold several statements.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// A service's migrations for both backends.
pub struct Migrations {
    /// Table that records what was applied; unique per service so services
    /// can even share one SQLite file.
    pub table: &'static str,
    pub postgres: &'static [Migration],
    pub sqlite: &'static [Migration],
}

/// Applies what is missing of `migrations`.
pub async fn migrate(pool: &Pool, migrations: &Migrations) -> Result<(), StorageError> {
    let table = migrations.table;
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {table} (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    );
    match pool {
        Pool::Postgres(p) => {
            let mut tx = p.begin().await?;
            // One migrator at a time per schema, whatever the replica count.
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext(current_schema() || $1))")
                .bind(table)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&create).execute(&mut *tx).await?;
            let applied: Vec<i64> =
                sqlx::query_scalar(&format!("SELECT version FROM {table}")).fetch_all(&mut *tx).await?;
            for m in migrations.postgres.iter().filter(|m| !applied.contains(&m.version)) {
                tracing::info!(set = table, version = m.version, name = m.name, "applying migration");
                sqlx::raw_sql(m.sql).execute(&mut *tx).await?;
                sqlx::query(&format!("INSERT INTO {table} (version, name, applied_at) VALUES ($1, $2, now()::text)"))
                    .bind(m.version)
                    .bind(m.name)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        Pool::Sqlite(p) => {
            let mut conn = p.acquire().await?;
            // BEGIN IMMEDIATE takes the write lock up front: concurrent
            // migrators queue instead of failing halfway.
            sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
            let result: Result<(), StorageError> = async {
                sqlx::query(&create).execute(&mut *conn).await?;
                let applied: Vec<i64> =
                    sqlx::query_scalar(&format!("SELECT version FROM {table}")).fetch_all(&mut *conn).await?;
                for m in migrations.sqlite.iter().filter(|m| !applied.contains(&m.version)) {
                    tracing::info!(set = table, version = m.version, name = m.name, "applying migration");
                    sqlx::raw_sql(m.sql).execute(&mut *conn).await?;
                    sqlx::query(&format!(
                        "INSERT INTO {table} (version, name, applied_at) VALUES ($1, $2, datetime('now'))"
                    ))
                    .bind(m.version)
                    .bind(m.name)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => {
                    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
                }
                Err(e) => {
                    let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// A decimal column: NUMERIC on Postgres, exact text on SQLite (SQLite's own
/// numbers are binary floats, which money must never pass through).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dec(pub Decimal);

impl Type<Postgres> for Dec {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <Decimal as Type<Postgres>>::type_info()
    }
}

impl<'q> Encode<'q, Postgres> for Dec {
    fn encode_by_ref(&self, buf: &mut sqlx::postgres::PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Decimal as Encode<'q, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Dec {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <Decimal as Decode<'r, Postgres>>::decode(value).map(Dec)
    }
}

impl Type<Sqlite> for Dec {
    fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Dec {
    fn encode_by_ref(&self, buf: &mut Vec<sqlx::sqlite::SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.0.to_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Dec {
    fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<'r, Sqlite>>::decode(value)?;
        Ok(Dec(Decimal::from_str(text)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_identifiers() {
        assert_eq!(schema_name("payment-gateway"), "payment_gateway");
        assert_eq!(schema_name("catalog"), "catalog");
    }

    #[test]
    fn urls_pick_the_backend() {
        assert!(is_postgres("postgres://postgres@127.0.0.1/test"));
        assert!(is_postgres("postgresql://x"));
        assert!(!is_postgres("sqlite://data/catalog.db"));
    }
}
