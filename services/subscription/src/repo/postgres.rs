//! The subscription repository on Postgres.

super::sql_repo!(PgRepo, sqlx::Postgres);
