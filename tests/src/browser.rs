//! Headless Chromium for the hosted-page tests, driven over the W3C WebDriver
//! protocol through Debian's `chromedriver` (packages `chromium` and
//! `chromium-driver`; `.ci/run` installs them). Without them the browser
//! tests report themselves skipped, unless `RECUR_TEST_REQUIRE_BROWSER=1`
//! (CI sets it), when they fail instead.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    base: String,
    driver: Child,
    profile: std::path::PathBuf,
}

fn find_program(env: &str, candidates: &[&str]) -> Option<String> {
    if let Ok(p) = std::env::var(env)
        && !p.is_empty()
    {
        return Some(p);
    }
    candidates.iter().find(|p| std::path::Path::new(p).exists()).map(|p| p.to_string())
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or `None`
    /// (skipped) when they are not installed and not required.
    pub async fn start() -> Option<Browser> {
        let required = std::env::var("RECUR_TEST_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
        let driver = find_program("RECUR_TEST_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let chromium = find_program("RECUR_TEST_CHROMIUM", &["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let (Some(driver), Some(chromium)) = (driver, chromium) else {
            assert!(!required, "RECUR_TEST_REQUIRE_BROWSER=1 but chromium/chromedriver are not installed");
            eprintln!(
                "chromium and chromedriver not installed: browser test skipped (apt install chromium chromium-driver)"
            );
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("addr").port()
        };
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = crate::http_client();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(ready, "chromedriver did not start");
        let profile = std::env::temp_dir().join(format!("recur-chromium-{}-{port}", std::process::id()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--disable-default-apps",
                         format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let mut b = Browser { http, session: String::new(), base, driver: child, profile };
        let v = b.call("POST", "/session", Some(caps)).await;
        b.session =
            v["sessionId"].as_str().or_else(|| v["value"]["sessionId"].as_str()).expect("a session").to_string();
        Some(b)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        match self.try_call(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("webdriver {method} {path}: {e}"),
        }
    }

    async fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body.unwrap_or_else(|| json!({})).to_string()),
        };
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let v: Value = serde_json::from_slice(&resp.bytes().await.map_err(|e| e.to_string())?).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{status} {v}"));
        }
        Ok(v["value"].clone())
    }

    fn at(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.at("/url"), Some(json!({"url": url}))).await;
    }

    pub async fn url(&self) -> String {
        self.call("GET", &self.at("/url"), None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn source(&self) -> String {
        self.call("GET", &self.at("/source"), None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn title(&self) -> String {
        self.call("GET", &self.at("/title"), None).await.as_str().unwrap_or_default().to_string()
    }

    /// Elements matching a CSS selector.
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let v = self.call("POST", &self.at("/elements"), Some(json!({"using": "css selector", "value": css}))).await;
        v.as_array()
            .map(|a| a.iter().filter_map(|e| e[ELEMENT].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }

    pub async fn find(&self, css: &str) -> String {
        let found = self.find_all(css).await;
        found.into_iter().next().unwrap_or_else(|| panic!("no element matches {css}"))
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call("POST", &self.at(&format!("/element/{e}/clear")), None).await;
        self.call("POST", &self.at(&format!("/element/{e}/value")), Some(json!({"text": text}))).await;
    }

    /// Clicks, and waits for the page the click leads to (the clicked
    /// element goes stale when the next page replaces this one).
    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call("POST", &self.at(&format!("/element/{e}/click")), None).await;
        for _ in 0..200 {
            if self.try_call("GET", &self.at(&format!("/element/{e}/name")), None).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("clicking {css} led nowhere within 10 s");
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.call("GET", &self.at(&format!("/element/{e}/text")), None).await.as_str().unwrap_or_default().to_string()
    }

    pub async fn quit(mut self) {
        let path = self.at("");
        self.call("DELETE", &path, None).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
