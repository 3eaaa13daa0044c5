//! The subscription stores on Postgres.

pub struct PgRepo {
    pub pool: sqlx::PgPool,
    pub numbering: super::numbering::Numbering,
}

super::sql::helpers!(sqlx::Postgres);
super::accounts::store!(PgRepo, sqlx::Postgres);
super::subscriptions::store!(PgRepo, sqlx::Postgres);
super::invoices::store!(PgRepo, sqlx::Postgres);
super::events::store!(PgRepo, sqlx::Postgres);
super::usage::store!(PgRepo, sqlx::Postgres);
super::clock::store!(PgRepo, sqlx::Postgres, " FOR UPDATE SKIP LOCKED");
