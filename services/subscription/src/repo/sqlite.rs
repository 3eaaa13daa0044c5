//! The subscription stores on SQLite.

pub struct SqliteRepo {
    pub pool: sqlx::SqlitePool,
    pub numbering: super::numbering::Numbering,
}

super::sql::helpers!(sqlx::Sqlite);
super::accounts::store!(SqliteRepo, sqlx::Sqlite);
super::subscriptions::store!(SqliteRepo, sqlx::Sqlite);
super::invoices::store!(SqliteRepo, sqlx::Sqlite);
super::events::store!(SqliteRepo, sqlx::Sqlite);
super::usage::store!(SqliteRepo, sqlx::Sqlite);
super::clock::store!(SqliteRepo, sqlx::Sqlite, "");
