//! Writes that belong together, in one round trip where the backend can.
//!
//! A transaction of five inserts costs seven round trips to Postgres
//! (`BEGIN`, the inserts, `COMMIT`), and under load the round trips, not
//! the inserts, are what the database spends its time on. [`Writes`]
//! collects statements that do not read each other's rows (inserts, and
//! updates of rows the others do not touch) and sends them to Postgres as
//! one statement, each a data-modifying `WITH` part: one round trip,
//! atomic like any single statement, constraints checked as usual (a unique
//! violation in any part fails the whole). SQLite, which has no
//! data-modifying `WITH` and no round trips to save, runs the same
//! statements one after the other in the caller's transaction, or in one of
//! its own.

use sqlx::{Database, QueryBuilder};

/// One statement, written into the builder it is given.
type Part<'a, DB> = Box<dyn for<'q> FnOnce(&mut QueryBuilder<'q, DB>) + Send + 'a>;

pub struct Writes<'a, DB: Database> {
    parts: Vec<Part<'a, DB>>,
}

impl<'a, DB: Database> Default for Writes<'a, DB> {
    fn default() -> Self {
        Writes { parts: Vec::new() }
    }
}

impl<'a, DB: Database> Writes<'a, DB> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one statement, which `build` writes (without a trailing `;`),
    /// binding owned values.
    pub fn add(&mut self, build: impl for<'q> FnOnce(&mut QueryBuilder<'q, DB>) + Send + 'a) {
        self.parts.push(Box::new(build));
    }

    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

// Executing is written per backend: generic over the database, the borrow
// checker cannot see that a finished statement no longer needs its builder.

impl Writes<'_, sqlx::Postgres> {
    /// Runs the statements on `conn` (a transaction the caller commits).
    pub async fn execute_in(self, conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        if let Some(mut qb) = combined(self.parts) {
            qb.build().execute(conn).await?;
        }
        Ok(())
    }

    /// Runs the statements at once or not at all: one statement.
    pub async fn execute(self, pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
        if let Some(mut qb) = combined(self.parts) {
            qb.build().execute(pool).await?;
        }
        Ok(())
    }
}

impl Writes<'_, sqlx::Sqlite> {
    /// Runs the statements on `conn` (a transaction the caller commits).
    pub async fn execute_in(self, conn: &mut sqlx::SqliteConnection) -> Result<(), sqlx::Error> {
        for part in self.parts {
            let mut qb = QueryBuilder::new("");
            part(&mut qb);
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Runs the statements at once or not at all: one transaction.
    pub async fn execute(self, pool: &sqlx::SqlitePool) -> Result<(), sqlx::Error> {
        if self.parts.is_empty() {
            return Ok(());
        }
        let mut tx = pool.begin().await?;
        self.execute_in(&mut tx).await?;
        tx.commit().await
    }
}

/// `WITH w0 AS (…), w1 AS (…) SELECT 1`, or nothing for no parts.
fn combined<'q, DB: Database>(parts: Vec<Part<'_, DB>>) -> Option<QueryBuilder<'q, DB>> {
    if parts.is_empty() {
        return None;
    }
    let mut qb = QueryBuilder::new("");
    for (i, part) in parts.into_iter().enumerate() {
        qb.push(if i == 0 { "WITH " } else { ", " });
        qb.push(format_args!("w{i} AS ("));
        part(&mut qb);
        qb.push(")");
    }
    qb.push(" SELECT 1");
    Some(qb)
}
