//! The payment repository on SQLite.

super::sql_repo!(SqliteRepo, sqlx::Sqlite);
