//! Sign-up sessions on SQLite.

super::sql_repo!(SqliteRepo, sqlx::Sqlite);
