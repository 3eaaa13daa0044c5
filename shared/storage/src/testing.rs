//! Throwaway databases for tests. With `RECUR_TEST_DATABASE_URL` set to a
//! Postgres URL, each [`TestDatabase`] is a freshly created Postgres database
//! (dropped again by [`TestDatabase::cleanup`]); otherwise a fresh directory
//! for SQLite files.

use std::path::PathBuf;

use rand::Rng;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::StorageError;

/// The Postgres server tests may use, if any.
pub fn postgres_url() -> Option<String> {
    std::env::var("RECUR_TEST_DATABASE_URL").ok().filter(|u| crate::is_postgres(u))
}

/// The Redis server tests may use, if any.
pub fn redis_url() -> Option<String> {
    std::env::var("RECUR_TEST_REDIS_URL").ok().filter(|u| !u.is_empty())
}

pub enum TestDatabase {
    Postgres { url: String, admin_url: String, name: String },
    Sqlite { dir: PathBuf },
}

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..12).map(|_| char::from(b'a' + rng.random_range(0..26u8))).collect()
}

impl TestDatabase {
    /// A new, empty SQLite directory.
    pub fn sqlite() -> TestDatabase {
        let dir = std::env::temp_dir().join(format!("recur-test-{}", random_suffix()));
        TestDatabase::Sqlite { dir }
    }

    /// A new, empty Postgres database on the server at `admin_url`.
    pub async fn postgres(admin_url: &str) -> Result<TestDatabase, StorageError> {
        let name = format!("recur_test_{}", random_suffix());
        let mut conn = PgConnection::connect(admin_url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
        conn.close().await?;
        let url = replace_database(admin_url, &name);
        Ok(TestDatabase::Postgres { url, admin_url: admin_url.to_string(), name })
    }

    /// The URL services connect to (`None` for SQLite: one file per service
    /// in [`TestDatabase::data_dir`]).
    pub fn url(&self) -> Option<&str> {
        match self {
            TestDatabase::Postgres { url, .. } => Some(url),
            TestDatabase::Sqlite { .. } => None,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        match self {
            TestDatabase::Postgres { name, .. } => std::env::temp_dir().join(format!("recur-{name}")),
            TestDatabase::Sqlite { dir } => dir.clone(),
        }
    }

    /// Drops the database (or removes the directory).
    pub async fn cleanup(&self) {
        match self {
            TestDatabase::Postgres { admin_url, name, .. } => {
                if let Ok(mut conn) = PgConnection::connect(admin_url).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
                let _ = std::fs::remove_dir_all(self.data_dir());
            }
            TestDatabase::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// `postgres://u@h:5432/test?x=y` with the database replaced by `name`.
fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    let mut out = format!("{}/{}", &base[..host_part_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            replace_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(replace_database("postgres://h/test?sslmode=disable", "x"), "postgres://h/x?sslmode=disable");
        assert_eq!(replace_database("postgres://h", "x"), "postgres://h/x");
    }
}
