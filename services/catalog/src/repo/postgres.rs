//! The catalog repository on Postgres (NUMERIC amounts, TIMESTAMPTZ times).

super::sql_repo!(PgRepo, sqlx::Postgres, "\"C\"");
