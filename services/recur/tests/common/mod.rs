//! Starting the real `recur` binary for tests, as a user would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        match artifacts() {
            // Kept for the card-number scan after the run.
            Some(_) => keep("sqlite", &self.dir.display().to_string()),
            None => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// `RECUR_TEST_ARTIFACTS`: where a CI run keeps logs and databases.
pub fn artifacts() -> Option<PathBuf> {
    std::env::var("RECUR_TEST_ARTIFACTS").ok().filter(|d| !d.is_empty()).map(PathBuf::from)
}

/// Lists a database for the scan after the run.
pub fn keep(kind: &str, location: &str) {
    use std::io::Write;
    if let Some(dir) = artifacts() {
        let _ = std::fs::create_dir_all(&dir);
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("databases.txt")) {
            let _ = writeln!(f, "{kind} {location}");
        }
    }
}

/// A fresh data directory.
pub fn data_dir() -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("recur-binary-{}-{n}", std::process::id()))
}

/// Starts `recur` on a free port with a new data directory.
pub fn start(extra: &[(&str, &str)]) -> Server {
    start_in(data_dir(), extra)
}

/// Starts `recur` on a free port with `dir` as its data directory.
pub fn start_in(dir: PathBuf, extra: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_recur"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RECUR_LISTEN_ADDR", "127.0.0.1:0")
        .env("RECUR_DATA_DIR", &dir)
        .env("RECUR_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(a) = artifacts() {
        // Its logs, at debug level, join the run's for the scan.
        let logs = a.join("logs");
        let _ = std::fs::create_dir_all(&logs);
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(f) = std::fs::File::create(logs.join(format!("recur-binary-{}-{n}.log", std::process::id()))) {
            cmd.stderr(Stdio::from(f)).env("RECUR_LOG", "info,recur_payment=debug,recur_server=debug");
        }
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start recur");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("recur printed its address").expect("readable stdout");
        if let Some(rest) = line.strip_prefix("Recur all-in-one listening on ") {
            break rest.split_whitespace().next().expect("address").to_string();
        }
    };
    // Keep draining stdout so the process never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, addr, dir }
}

pub fn authed(token: &str, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    req.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("header"));
    Ok(req)
}

/// Adds a bearer token to every call (cloneable, unlike a closure box).
#[derive(Clone)]
pub struct Bearer(pub String);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        authed(&self.0, req)
    }
}
