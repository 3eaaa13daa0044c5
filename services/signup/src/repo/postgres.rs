//! Sign-up sessions on Postgres.

super::sql_repo!(PgRepo, sqlx::Postgres);
