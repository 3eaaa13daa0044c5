//! After a test run with `RECUR_TEST_ARTIFACTS=<dir>`: scans every log line
//! and every row of every kept test database for card numbers (a 13–19
//! digit run passing the Luhn check), reports what it scanned, then drops
//! the kept databases. Exits 1 on any finding — or when it scanned nothing,
//! so a broken setup cannot pass.
//!
//! `cargo run -p recur-e2e --bin recur-card-scan -- <dir> [--keep]`

use std::path::PathBuf;
use std::process::ExitCode;

use recur_e2e::scan::{self, Report};

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: recur-card-scan <artifacts dir> [--keep]");
        return ExitCode::from(2);
    };
    let keep = args.any(|a| a == "--keep");
    let mut report = scan::scan_logs(&dir.join("logs"));
    let listed = std::fs::read_to_string(dir.join("databases.txt")).unwrap_or_default();
    let mut failed = false;
    let mut payment_rows = 0usize;
    for line in listed.lines() {
        let Some((kind, location)) = line.split_once(' ') else { continue };
        let r: Result<Report, String> = match kind {
            "postgres" => scan::scan_postgres(location).await,
            "sqlite" => scan::scan_sqlite_dir(std::path::Path::new(location)).await,
            _ => continue,
        };
        match r {
            Ok(r) => {
                payment_rows += r.rows;
                report.merge(r);
            }
            Err(e) => {
                eprintln!("could not scan {kind} {location}: {e}");
                failed = true;
            }
        }
        if !keep {
            drop_database(kind, location).await;
        }
    }
    println!(
        "card-number scan: {} log lines in {} files, {} rows in {} tables of {} databases",
        report.log_lines, report.log_files, report.rows, report.tables, report.databases
    );
    for f in &report.findings {
        println!("  card number found: {}", f.place);
    }
    if report.log_lines == 0 || report.databases == 0 || payment_rows == 0 {
        eprintln!("nothing to scan: was the test run made with RECUR_TEST_ARTIFACTS={}?", dir.display());
        return ExitCode::FAILURE;
    }
    if failed || !report.findings.is_empty() {
        return ExitCode::FAILURE;
    }
    println!("no card numbers in logs or databases");
    ExitCode::SUCCESS
}

async fn drop_database(kind: &str, location: &str) {
    match kind {
        "postgres" => {
            let Some((server, name)) = location.rsplit_once('/') else { return };
            let name = name.split('?').next().unwrap_or(name);
            let admin = format!("{server}/postgres");
            if let Ok(mut conn) = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
            }
        }
        _ => {
            let _ = std::fs::remove_dir_all(location);
        }
    }
}
