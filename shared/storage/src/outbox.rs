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
        // The same statements on either backend's pool; the counter row is
        // read locked, so numbering runs one at a time per tenant.
        macro_rules! number_on {
            ($pool:expr, $db:ty) => {{
                let pool = $pool;
                let waiting: bool = sqlx::query_scalar(&pending).bind(tenant).fetch_one(pool).await?;
                if waiting {
                    let mut tx = crate::begin_locking(pool).await?;
                    sqlx::query(&seed).bind(tenant).execute(&mut *tx).await?;
                    let read = format!(
                        "SELECT last_sequence FROM {} WHERE tenant_id = $1{}",
                        self.counters,
                        crate::for_update::<$db>()
                    );
                    let last: i64 = sqlx::query_scalar(&read).bind(tenant).fetch_one(&mut *tx).await?;
                    let n = sqlx::query(&number).bind(tenant).bind(last).execute(&mut *tx).await?.rows_affected();
                    sqlx::query(&store).bind(tenant).bind(last + n as i64).execute(&mut *tx).await?;
                    tx.commit().await?;
                }
            }};
        }
        match pool {
            Pool::Postgres(pool) => number_on!(pool, sqlx::Postgres),
            Pool::Sqlite(pool) => number_on!(pool, sqlx::Sqlite),
        }
        Ok(())
    }
}
