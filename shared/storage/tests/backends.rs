//! The storage helpers behave the same on SQLite and on Postgres (the latter
//! when `RECUR_TEST_DATABASE_URL` is set, as CI does).

use std::str::FromStr;

use recur_storage::testing::{TestDatabase, postgres_url};
use recur_storage::{Dec, Migration, Migrations, Pool, connect, migrate, sqlite_file_url};
use rust_decimal::Decimal;

const MIGRATIONS: Migrations = Migrations {
    table: "demo_migrations",
    postgres: &[
        Migration {
            version: 1,
            name: "amounts",
            sql: "CREATE TABLE amounts (id TEXT PRIMARY KEY, amount NUMERIC NOT NULL);",
        },
        Migration {
            version: 2,
            name: "index",
            sql: "CREATE INDEX amounts_amount ON amounts (amount); ALTER TABLE amounts ADD COLUMN note TEXT;",
        },
    ],
    sqlite: &[
        Migration {
            version: 1,
            name: "amounts",
            sql: "CREATE TABLE amounts (id TEXT PRIMARY KEY, amount TEXT NOT NULL);",
        },
        Migration {
            version: 2,
            name: "index",
            sql: "CREATE INDEX amounts_amount ON amounts (amount); ALTER TABLE amounts ADD COLUMN note TEXT;",
        },
    ],
};

async fn exercise(pool: &Pool) {
    migrate(pool, &MIGRATIONS).await.expect("migrate");
    migrate(pool, &MIGRATIONS).await.expect("migrating again changes nothing");
    let values = ["100.00", "0.0012", "-3.5", "123456789.123456789"];
    for (i, v) in values.iter().enumerate() {
        let d = Dec(Decimal::from_str(v).expect("literal"));
        let id = format!("a{i}");
        match pool {
            Pool::Postgres(p) => sqlx::query("INSERT INTO amounts (id, amount) VALUES ($1, $2)")
                .bind(&id)
                .bind(d)
                .execute(p)
                .await
                .map(|_| ()),
            Pool::Sqlite(p) => sqlx::query("INSERT INTO amounts (id, amount) VALUES ($1, $2)")
                .bind(&id)
                .bind(d)
                .execute(p)
                .await
                .map(|_| ()),
        }
        .expect("insert");
        let back: Dec = match pool {
            Pool::Postgres(p) => {
                sqlx::query_scalar("SELECT amount FROM amounts WHERE id = $1").bind(&id).fetch_one(p).await
            }
            Pool::Sqlite(p) => {
                sqlx::query_scalar("SELECT amount FROM amounts WHERE id = $1").bind(&id).fetch_one(p).await
            }
        }
        .expect("select");
        // Exact value and scale survive the round trip ("100.00" stays "100.00").
        assert_eq!(back.0.to_string(), *v, "{} round trip", pool.backend());
    }
    let dup = match pool {
        Pool::Postgres(p) => {
            sqlx::query("INSERT INTO amounts (id, amount) VALUES ('a0', 1)").execute(p).await.map(|_| ())
        }
        Pool::Sqlite(p) => {
            sqlx::query("INSERT INTO amounts (id, amount) VALUES ('a0', '1')").execute(p).await.map(|_| ())
        }
    }
    .map_err(recur_storage::StorageError::from)
    .expect_err("duplicate id");
    assert!(dup.is_unique(), "{dup}");
}

#[tokio::test]
async fn sqlite_backend() {
    let db = TestDatabase::sqlite();
    let pool = connect(&sqlite_file_url(&db.data_dir(), "demo"), "demo", 4).await.expect("connect");
    exercise(&pool).await;
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_backend() {
    let Some(admin) = postgres_url() else {
        eprintln!("RECUR_TEST_DATABASE_URL unset: Postgres backend test skipped");
        return;
    };
    let db = TestDatabase::postgres(&admin).await.expect("create test database");
    let pool = connect(db.url().expect("postgres url"), "demo-service", 4).await.expect("connect");
    exercise(&pool).await;
    // The tables live in the service's own schema.
    let Pool::Postgres(p) = &pool else { unreachable!() };
    let schema: String =
        sqlx::query_scalar("SELECT table_schema FROM information_schema.tables WHERE table_name = 'amounts'")
            .fetch_one(p)
            .await
            .expect("table exists");
    assert_eq!(schema, "demo_service");
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_statistics_follow_young_tables() {
    let Some(admin) = postgres_url() else {
        eprintln!("RECUR_TEST_DATABASE_URL unset: Postgres statistics test skipped");
        return;
    };
    let db = TestDatabase::postgres(&admin).await.expect("create test database");
    let pool = connect(db.url().expect("postgres url"), "stats-service", 2).await.expect("connect");
    migrate(&pool, &MIGRATIONS).await.expect("migrate");
    let Pool::Postgres(p) = &pool else { unreachable!() };
    sqlx::query("INSERT INTO amounts (id, amount) SELECT 'a' || g, g FROM generate_series(1, 500) g")
        .execute(p)
        .await
        .expect("rows");
    // Activity statistics reach the views within a second or so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let analyzed = loop {
        let t = recur_storage::analyze_growing_tables(&pool).await.expect("analyze");
        if !t.is_empty() || std::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(analyzed, ["amounts"], "a table grown from nothing is analyzed");
    let rows: f32 = sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'amounts'::regclass")
        .fetch_one(p)
        .await
        .expect("reltuples");
    assert_eq!(rows, 500.0, "the planner now knows the table's size");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        recur_storage::analyze_growing_tables(&pool).await.expect("analyze").is_empty(),
        "nothing changed since: nothing to do"
    );
    // A small change to a table of this size is left to autovacuum.
    sqlx::query("UPDATE amounts SET note = 'x' WHERE id IN ('a1', 'a2', 'a3')").execute(p).await.expect("update");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(recur_storage::analyze_growing_tables(&pool).await.expect("analyze").is_empty());
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite_needs_no_statistics_upkeep() {
    let db = TestDatabase::sqlite();
    let pool = connect(&sqlite_file_url(&db.data_dir(), "stats"), "stats", 2).await.expect("connect");
    migrate(&pool, &MIGRATIONS).await.expect("migrate");
    assert!(recur_storage::analyze_growing_tables(&pool).await.expect("analyze").is_empty());
    pool.close().await;
    db.cleanup().await;
}

/// Two inserts and an update through [`recur_storage::Writes`]: all land
/// together, and a unique violation in the last part leaves none of them.
macro_rules! writes_case {
    ($pool:expr, $db:ty, $amount:expr) => {{
        let pool = $pool;
        let batch = |ids: [&'static str; 2], note: &'static str| {
            let mut w = recur_storage::Writes::<$db>::new();
            for id in ids {
                w.add(move |qb| {
                    qb.push("INSERT INTO amounts (id, amount) VALUES (")
                        .push_bind(id)
                        .push(", ")
                        .push_bind($amount)
                        .push(")");
                });
            }
            w.add(move |qb| {
                qb.push("UPDATE amounts SET note = ").push_bind(note).push(" WHERE id = 'seed'");
            });
            assert_eq!(w.len(), 3);
            w
        };
        sqlx::query("INSERT INTO amounts (id, amount) VALUES ('seed', 0)").execute(pool).await.expect("seed");
        batch(["w1", "w2"], "first").execute(pool).await.expect("writes");
        let err = batch(["w3", "w1"], "second").execute(pool).await.map_err(recur_storage::StorageError::from);
        assert!(err.expect_err("w1 exists").is_unique());
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM amounts ORDER BY id").fetch_all(pool).await.expect("ids");
        assert_eq!(ids, ["seed", "w1", "w2"], "the failed batch left nothing");
        let note: String =
            sqlx::query_scalar("SELECT note FROM amounts WHERE id = 'seed'").fetch_one(pool).await.expect("note");
        assert_eq!(note, "first");
        // Inside a transaction: rolled back with it.
        let mut tx = pool.begin().await.expect("begin");
        batch(["w4", "w5"], "third").execute_in(&mut tx).await.expect("in tx");
        tx.rollback().await.expect("rollback");
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM amounts").fetch_one(pool).await.expect("count");
        assert_eq!(n, 3);
        recur_storage::Writes::<$db>::new().execute(pool).await.expect("nothing to write");
    }};
}

#[tokio::test]
async fn writes_land_together_or_not_at_all_on_sqlite() {
    let db = TestDatabase::sqlite();
    let pool = connect(&sqlite_file_url(&db.data_dir(), "writes"), "writes", 2).await.expect("connect");
    migrate(&pool, &MIGRATIONS).await.expect("migrate");
    let Pool::Sqlite(p) = &pool else { unreachable!() };
    writes_case!(p, sqlx::Sqlite, "1.50");
    pool.close().await;
    db.cleanup().await;
}

#[tokio::test]
async fn writes_land_together_or_not_at_all_on_postgres() {
    let Some(admin) = postgres_url() else {
        eprintln!("RECUR_TEST_DATABASE_URL unset: Postgres writes test skipped");
        return;
    };
    let db = TestDatabase::postgres(&admin).await.expect("create test database");
    let pool = connect(db.url().expect("postgres url"), "writes-service", 2).await.expect("connect");
    migrate(&pool, &MIGRATIONS).await.expect("migrate");
    let Pool::Postgres(p) = &pool else { unreachable!() };
    writes_case!(p, sqlx::Postgres, Dec(Decimal::new(150, 2)));
    pool.close().await;
    db.cleanup().await;
}
