//! The catalog repository on SQLite (amounts as exact text).

super::sql_repo!(SqliteRepo, sqlx::Sqlite, "BINARY");
