//! Looking for card numbers where none may be: log files and every row of
//! every table of a Postgres database or of SQLite files.
//!
//! With `RECUR_TEST_ARTIFACTS=<dir>` set, the test harness writes its logs to
//! `<dir>/logs/` and keeps every test database (listed in
//! `<dir>/databases.txt`) instead of dropping it; `recur-card-scan <dir>`
//! then scans them all after the test run (and drops them).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use recur_proto::cards::contains_card_number;
use sqlx::{Column, Connection, Row, TypeInfo};

/// Where something card-like was found (never the value itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub place: String,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub log_files: usize,
    pub log_lines: usize,
    pub databases: usize,
    pub tables: usize,
    pub rows: usize,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn merge(&mut self, o: Report) {
        self.log_files += o.log_files;
        self.log_lines += o.log_lines;
        self.databases += o.databases;
        self.tables += o.tables;
        self.rows += o.rows;
        self.findings.extend(o.findings);
    }
}

/// The artifacts directory of this test run, if any.
pub fn artifacts_dir() -> Option<PathBuf> {
    std::env::var("RECUR_TEST_ARTIFACTS").ok().filter(|d| !d.is_empty()).map(PathBuf::from)
}

/// Records a database to be scanned after the run (`kind` is `postgres` or
/// `sqlite`, `location` its URL or directory).
pub fn keep_database(kind: &str, location: &str) {
    let Some(dir) = artifacts_dir() else { return };
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("databases.txt")) {
        let _ = writeln!(f, "{kind} {location}");
    }
}

/// Sends this process's logs (JSON, debug for Recur's crates) to
/// `<artifacts>/logs/<binary>-<pid>.log`, once, when artifacts are kept.
pub fn capture_logs() {
    if artifacts_dir().is_some() {
        log_file();
    }
}

/// This process's log file, set up on first use: in the artifacts directory
/// when one is kept, else in the temporary directory. Tests that read their
/// own logs call this; it agrees with [`capture_logs`] whichever runs first.
pub fn log_file() -> &'static Path {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = artifacts_dir().unwrap_or_else(std::env::temp_dir).join("logs");
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "test".into());
        let path = dir.join(format!("{name}-{}.log", std::process::id()));
        if let Err(e) = log_to_file(&path) {
            eprintln!("test logs not captured in {}: {e}", path.display());
        }
        path
    })
}

/// Installs a global JSON log subscriber writing to `path` (debug for
/// Recur's crates). Fails when this process already has a subscriber.
pub fn log_to_file(path: &Path) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| e.to_string())?;
    let filter = tracing_subscriber::EnvFilter::new(
        "info,recur=debug,recur_payment=debug,recur_signup=debug,recur_server=debug,recur_subscription=debug,\
         recur_catalog=debug,recur_pricing=debug",
    );
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::sync::Mutex::new(file))
        .try_init()
        .map_err(|e| e.to_string())
}

/// Scans every line of every file under `dir` (recursively).
pub fn scan_logs(dir: &Path) -> Report {
    let mut r = Report::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Ok(text) = std::fs::read(&p) else { continue };
            r.log_files += 1;
            for (i, line) in String::from_utf8_lossy(&text).lines().enumerate() {
                r.log_lines += 1;
                if contains_card_number(line) {
                    r.findings.push(Finding { place: format!("{}:{}", p.display(), i + 1) });
                }
            }
        }
    }
    r
}

/// Scans every row of every table in every schema of a Postgres database.
pub async fn scan_postgres(url: &str) -> Result<Report, String> {
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(|e| e.to_string())?;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let mut r = Report { databases: 1, ..Report::default() };
    for (schema, table) in tables {
        r.tables += 1;
        // One JSON object per row: columns never run into each other.
        let rows: Vec<String> =
            sqlx::query_scalar(&format!(r#"SELECT row_to_json(t)::text FROM "{schema}"."{table}" t"#))
                .fetch_all(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        for (i, row) in rows.iter().enumerate() {
            r.rows += 1;
            if contains_card_number(row) {
                r.findings.push(Finding { place: format!("{url} {schema}.{table} row {i}") });
            }
        }
    }
    let _ = conn.close().await;
    Ok(r)
}

/// Scans every row of every table of every SQLite file in `dir`.
pub async fn scan_sqlite_dir(dir: &Path) -> Result<Report, String> {
    let mut r = Report::default();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(r) };
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "db") {
            continue;
        }
        let url = format!("sqlite://{}?mode=ro", p.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.map_err(|e| format!("{}: {e}", p.display()))?;
        r.databases += 1;
        let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        for table in tables {
            r.tables += 1;
            let rows = sqlx::query(&format!(r#"SELECT * FROM "{table}""#))
                .fetch_all(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            for (i, row) in rows.iter().enumerate() {
                r.rows += 1;
                for (c, col) in row.columns().iter().enumerate() {
                    let text = match col.type_info().name() {
                        "BLOB" => row
                            .try_get::<Option<Vec<u8>>, _>(c)
                            .ok()
                            .flatten()
                            .map(|b| String::from_utf8_lossy(&b).into_owned()),
                        _ => row
                            .try_get::<Option<String>, _>(c)
                            .ok()
                            .flatten()
                            .or_else(|| row.try_get::<Option<i64>, _>(c).ok().flatten().map(|n| n.to_string())),
                    };
                    if text.as_deref().is_some_and(contains_card_number) {
                        r.findings
                            .push(Finding { place: format!("{} {table} row {i} column {}", p.display(), col.name()) });
                    }
                }
            }
        }
        let _ = conn.close().await;
    }
    Ok(r)
}
