//! Event outboxes: events are written in the transaction of the change they
//! report, without a sequence number; the first listing after they commit
//! numbers them per tenant, after everything numbered before. So sequences
//! count up from 1 per tenant without gaps (a tenant learns nothing of
//! another's activity), follow commit order as readers see it, and a reader
//! resuming after sequence n never skips an event that committed late.
//!
//! An outbox table has `serial` (BIGSERIAL / INTEGER PRIMARY KEY
//! AUTOINCREMENT), `tenant_id` and a nullable `sequence`, with a unique
//! index on `(tenant_id, sequence)`; its counter table has `tenant_id` and
//! `last_sequence`.

use crate::{Pool, StorageError};

/// The tables of one outbox.
#[derive(Clone, Copy, Debug)]
pub struct Outbox {
    pub events: &'static str,
    pub counters: &'static str,
}

impl Outbox {
    /// Numbers `tenant`'s events that have none yet. Cheap when there are
    /// none: one indexed existence check.
    pub async fn sequence(&self, pool: &Pool, tenant: &str) -> Result<(), StorageError> {
        let pending =
            format!("SELECT EXISTS (SELECT 1 FROM {} WHERE tenant_id = $1 AND sequence IS NULL)", self.events);
        let seed =
            format!("INSERT INTO {} (tenant_id, last_sequence) VALUES ($1, 0) ON CONFLICT DO NOTHING", self.counters);
        let number = format!(
            "UPDATE {e} SET sequence = $2 + o.rn FROM (SELECT serial AS s, row_number() OVER (ORDER BY serial) AS rn \
             FROM {e} WHERE tenant_id = $1 AND sequence IS NULL) AS o WHERE {e}.serial = o.s",
            e = self.events
        );
        let store = format!("UPDATE {} SET last_sequence = $2 WHERE tenant_id = $1", self.counters);
        match pool {
            Pool::Postgres(pool) => {
                let waiting: bool = sqlx::query_scalar(&pending).bind(tenant).fetch_one(pool).await?;
                if !waiting {
                    return Ok(());
                }
                let mut tx = pool.begin().await?;
                sqlx::query(&seed).bind(tenant).execute(&mut *tx).await?;
                // The counter's row lock makes numbering one at a time.
                let lock = format!("SELECT last_sequence FROM {} WHERE tenant_id = $1 FOR UPDATE", self.counters);
                let last: i64 = sqlx::query_scalar(&lock).bind(tenant).fetch_one(&mut *tx).await?;
                let n = sqlx::query(&number).bind(tenant).bind(last).execute(&mut *tx).await?.rows_affected();
                sqlx::query(&store).bind(tenant).bind(last + n as i64).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let waiting: bool = sqlx::query_scalar(&pending).bind(tenant).fetch_one(pool).await?;
                if !waiting {
                    return Ok(());
                }
                // BEGIN IMMEDIATE takes the write lock before reading.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query(&seed).bind(tenant).execute(&mut *tx).await?;
                let read = format!("SELECT last_sequence FROM {} WHERE tenant_id = $1", self.counters);
                let last: i64 = sqlx::query_scalar(&read).bind(tenant).fetch_one(&mut *tx).await?;
                let n = sqlx::query(&number).bind(tenant).bind(last).execute(&mut *tx).await?.rows_affected();
                sqlx::query(&store).bind(tenant).bind(last + n as i64).execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}
