//! Every setting of every Recur process comes from an environment variable
//! listed in [`VARS`] (the README's configuration table is checked against it
//! by a test). `RECUR_CONFIG_FILE` may name a file of `KEY=VALUE` lines;
//! variables set in the environment win over the file.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// One documented setting.
pub struct Var {
    pub name: &'static str,
    pub default: &'static str,
    pub description: &'static str,
}

/// The configuration table.
pub const VARS: &[Var] = &[
    Var {
        name: "RECUR_LISTEN_ADDR",
        default: "127.0.0.1:50051 (all-in-one); per service, see ports",
        description: "Address the gRPC server binds; port 0 picks a free port.",
    },
    Var {
        name: "RECUR_DATA_DIR",
        default: "./data",
        description: "Directory for SQLite files and the development signing key.",
    },
    Var {
        name: "RECUR_DATABASE_URL",
        default: "SQLite files in RECUR_DATA_DIR",
        description: "postgres://… or sqlite://…; on Postgres each service keeps its tables in its own schema.",
    },
    Var { name: "RECUR_DB_MAX_CONNECTIONS", default: "10", description: "Connection pool size per service." },
    Var {
        name: "RECUR_REDIS_URL",
        default: "unset: in-memory session cache and rate-limit buckets",
        description: "redis://… for the sign-up session cache and the rate-limit buckets every replica shares.",
    },
    Var { name: "RECUR_SESSION_TTL_SECS", default: "86400", description: "How long a pending sign-up session lives." },
    Var {
        name: "RECUR_JWT_SECRET",
        default: "all-in-one: a development key in RECUR_DATA_DIR; services: required",
        description: "HS256 key (at least 32 bytes) that signs and verifies bearer tokens.",
    },
    Var {
        name: "RECUR_DEFAULT_TENANT",
        default: "default",
        description: "Tenant of the token the all-in-one process prints at start.",
    },
    Var {
        name: "RECUR_DEMO_CATALOG",
        default: "on with a development key, off with RECUR_JWT_SECRET",
        description: "Load the demo catalog into the default tenant when its catalog is empty (all-in-one).",
    },
    Var {
        name: "RECUR_CATALOG_CACHE_TTL_MS",
        default: "1000",
        description: "How long the catalog service keeps a looked-up resource in memory (0: off); bounds staleness across replicas.",
    },
    Var {
        name: "RECUR_PRICING_CACHE_TTL_MS",
        default: "3000",
        description: "How long pricing keeps catalog data in memory; with the catalog's own cache it bounds how soon a catalog change reaches quotes.",
    },
    Var {
        name: "RECUR_IN_PROCESS_CALLS",
        default: "on",
        description: "All-in-one: the services call each other over in-memory HTTP/2 connections to the same server (off: over the listen address's TCP).",
    },
    Var {
        name: "RECUR_CATALOG_ADDR",
        default: "127.0.0.1:50061",
        description: "Where the catalog service is reached (service mode).",
    },
    Var {
        name: "RECUR_PRICING_ADDR",
        default: "127.0.0.1:50062",
        description: "Where the pricing service is reached (service mode).",
    },
    Var {
        name: "RECUR_PAYMENT_ADDR",
        default: "127.0.0.1:50063",
        description: "Where the payment-gateway service is reached (service mode).",
    },
    Var {
        name: "RECUR_SUBSCRIPTION_ADDR",
        default: "127.0.0.1:50064",
        description: "Where the subscription service is reached (service mode).",
    },
    Var {
        name: "RECUR_SIGNUP_ADDR",
        default: "127.0.0.1:50065",
        description: "Where the signup service is reached (service mode).",
    },
    Var {
        name: "RECUR_CALL_TIMEOUT_MS",
        default: "10000",
        description: "Deadline of a call to a peer service when the incoming call has none shorter.",
    },
    Var {
        name: "RECUR_SHUTDOWN_GRACE_SECS",
        default: "30",
        description: "On SIGTERM/SIGINT, how long in-flight calls may take to finish.",
    },
    Var {
        name: "RECUR_SANDBOX_LATENCY_MS",
        default: "0",
        description: "Simulated response time of the sandbox payment provider.",
    },
    Var {
        name: "RECUR_PUBLIC_URL",
        default: "http://<the listen address>",
        description: "Base URL customers' browsers reach the payment gateway's hosted pages (`/hosted/…`) at.",
    },
    Var {
        name: "RECUR_PAYMENT_PROVIDERS",
        default: "unset: every tenant on the sandbox",
        description: "YAML/JSON file putting tenants on Stripe (keys, webhook secret, base URL); see the payment gateway section.",
    },
    Var {
        name: "RECUR_PAYMENT_RECONCILE_AFTER_MS",
        default: "30000",
        description: "How long a payment may stay PROCESSING (provider timeout, crash) before the reconciler asks the provider again.",
    },
    Var {
        name: "RECUR_PAYMENT_RECONCILE_INTERVAL_MS",
        default: "5000",
        description: "How often the reconciler looks for payments and refunds to settle (0: off).",
    },
    Var {
        name: "RECUR_BILLING_CLOCK_INTERVAL_MS",
        default: "1000",
        description: "How often the subscription service's billing clock looks for due renewals and invoices to finalize and collect (0: off; test-mode tenants move only by AdvanceClock).",
    },
    Var {
        name: "RECUR_BILLING_CLOCK_LEASE_MS",
        default: "60000",
        description: "How long a billing-clock run holds the subscriptions and invoices it took; a replica that died is taken over after it.",
    },
    Var {
        name: "RECUR_RATE_LIMIT_READ_PER_SEC",
        default: "0: unlimited",
        description: "Per tenant and process group (shared through RECUR_REDIS_URL when set): read calls (Get*, List*, Quote, PreviewChange, ExportCatalog, …) per second; decimals allowed.",
    },
    Var {
        name: "RECUR_RATE_LIMIT_READ_BURST",
        default: "the rate, at least 1",
        description: "How many read calls a tenant may make at once before the rate applies.",
    },
    Var {
        name: "RECUR_RATE_LIMIT_WRITE_PER_SEC",
        default: "0: unlimited",
        description: "Per tenant: other mutating calls per second (every call not read or money).",
    },
    Var {
        name: "RECUR_RATE_LIMIT_WRITE_BURST",
        default: "the rate, at least 1",
        description: "How many write calls a tenant may make at once.",
    },
    Var {
        name: "RECUR_RATE_LIMIT_MONEY_PER_SEC",
        default: "0: unlimited",
        description: "Per tenant: calls that can move money (Charge, Refund, AttachPaymentMethod, CreateSignup, UpdateSignup, CreateSubscription, PayInvoice, …) per second.",
    },
    Var {
        name: "RECUR_RATE_LIMIT_MONEY_BURST",
        default: "the rate, at least 1",
        description: "How many money-moving calls a tenant may make at once.",
    },
    Var {
        name: "RECUR_LOG",
        default: "info",
        description: "Log filter (tracing EnvFilter syntax, e.g. `info,recur_signup=debug`).",
    },
    Var { name: "RECUR_LOG_FORMAT", default: "json", description: "`json` or `text`." },
    Var {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT",
        default: "unset: no export",
        description: "OTLP/gRPC collector endpoint; when set, traces are exported there.",
    },
    Var {
        name: "OTEL_SERVICE_NAME",
        default: "the binary's name",
        description: "service.name resource attribute of exported traces.",
    },
    Var {
        name: "RECUR_CONFIG_FILE",
        default: "unset",
        description: "Optional file of KEY=VALUE lines read before the environment.",
    },
];

/// A value that must never appear in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// A token bucket: `per_sec` calls per second on average, up to `burst` at
/// once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    pub per_sec: f64,
    pub burst: u32,
}

/// Per-tenant rate limits by class of call; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RateLimits {
    pub read: Option<RateLimit>,
    pub write: Option<RateLimit>,
    pub money: Option<RateLimit>,
}

impl RateLimits {
    pub fn is_off(&self) -> bool {
        self.read.is_none() && self.write.is_none() && self.money.is_none()
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen_addr: Option<String>,
    pub data_dir: PathBuf,
    pub database_url: Option<Secret>,
    pub db_max_connections: u32,
    pub redis_url: Option<Secret>,
    pub session_ttl: Duration,
    pub jwt_secret: Option<Secret>,
    pub default_tenant: String,
    /// `None`: decide by whether a development key is in use.
    pub demo_catalog: Option<bool>,
    /// All-in-one: calls between its services over in-memory connections.
    pub in_process_calls: bool,
    pub peers: Peers,
    pub catalog_cache_ttl: Duration,
    pub pricing_cache_ttl: Duration,
    pub call_timeout: Duration,
    pub shutdown_grace: Duration,
    pub sandbox_latency: Duration,
    /// `None`: `http://` + the address the server listens on.
    pub public_url: Option<String>,
    pub payment_providers: Option<PathBuf>,
    pub reconcile_after: Duration,
    pub reconcile_interval: Duration,
    pub billing_clock_interval: Duration,
    pub billing_clock_lease: Duration,
    /// Most subscriptions (and invoices) one pass of the billing clock takes.
    pub billing_clock_batch: i64,
    pub rate_limits: RateLimits,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub otlp_endpoint: Option<String>,
    pub otel_service_name: Option<String>,
}

/// Addresses of the five services, as `host:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers {
    pub catalog: String,
    pub pricing: String,
    pub payment: String,
    pub subscription: String,
    pub signup: String,
}

impl Peers {
    /// Every service at one address (the all-in-one process).
    pub fn all_at(addr: &str) -> Peers {
        Peers {
            catalog: addr.to_string(),
            pricing: addr.to_string(),
            payment: addr.to_string(),
            subscription: addr.to_string(),
            signup: addr.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?}: {problem}")]
    Invalid { name: &'static str, value: String, problem: &'static str },
    #[error("RECUR_CONFIG_FILE {path}: {source}")]
    File { path: String, source: std::io::Error },
}

impl Config {
    /// Reads the process environment (and `RECUR_CONFIG_FILE`, if set).
    pub fn from_env() -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let mut merged = HashMap::new();
        if let Some(path) = env.get("RECUR_CONFIG_FILE") {
            let text =
                std::fs::read_to_string(path).map_err(|source| ConfigError::File { path: path.clone(), source })?;
            merged.extend(parse_env_file(&text));
        }
        merged.extend(env);
        Config::from_map(&merged)
    }

    /// Builds a configuration from explicit values (tests, embedding).
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &'static str| vars.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let number = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => {
                    v.parse().map_err(|_| ConfigError::Invalid { name, value: v, problem: "must be a whole number" })
                }
            }
        };
        let log_format = match get("RECUR_LOG_FORMAT").as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "RECUR_LOG_FORMAT",
                    value: other.to_string(),
                    problem: "must be json or text",
                });
            }
        };
        let jwt_secret = get("RECUR_JWT_SECRET").map(Secret::new);
        if jwt_secret.as_ref().is_some_and(|s| s.expose().len() < 32) {
            return Err(ConfigError::Invalid {
                name: "RECUR_JWT_SECRET",
                value: "***".into(),
                problem: "must be at least 32 bytes",
            });
        }
        let demo_catalog = match get("RECUR_DEMO_CATALOG").as_deref() {
            None | Some("auto") => None,
            Some("1" | "true" | "on" | "yes") => Some(true),
            Some("0" | "false" | "off" | "no") => Some(false),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "RECUR_DEMO_CATALOG",
                    value: other.to_string(),
                    problem: "must be true, false or auto",
                });
            }
        };
        let in_process_calls = match get("RECUR_IN_PROCESS_CALLS").as_deref() {
            None | Some("1" | "true" | "on" | "yes") => true,
            Some("0" | "false" | "off" | "no") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "RECUR_IN_PROCESS_CALLS",
                    value: other.to_string(),
                    problem: "must be on or off",
                });
            }
        };
        let peer = |name: &'static str, default: &str| get(name).unwrap_or_else(|| default.to_string());
        let rate_limit = |rate: &'static str, burst_name: &'static str| -> Result<Option<RateLimit>, ConfigError> {
            let per_sec = match get(rate) {
                None => 0.0,
                Some(v) => match v.parse::<f64>() {
                    Ok(n) if n.is_finite() && (0.0..=1_000_000.0).contains(&n) => n,
                    _ => {
                        return Err(ConfigError::Invalid {
                            name: rate,
                            value: v,
                            problem: "must be a number of calls per second from 0 (unlimited) to 1000000",
                        });
                    }
                },
            };
            let burst = number(burst_name, 0)?;
            if burst > 1_000_000 {
                return Err(ConfigError::Invalid {
                    name: burst_name,
                    value: burst.to_string(),
                    problem: "must be at most 1000000",
                });
            }
            if per_sec == 0.0 {
                return Ok(None);
            }
            let burst = if burst == 0 { per_sec.ceil().max(1.0) as u32 } else { burst as u32 };
            Ok(Some(RateLimit { per_sec, burst }))
        };
        let rate_limits = RateLimits {
            read: rate_limit("RECUR_RATE_LIMIT_READ_PER_SEC", "RECUR_RATE_LIMIT_READ_BURST")?,
            write: rate_limit("RECUR_RATE_LIMIT_WRITE_PER_SEC", "RECUR_RATE_LIMIT_WRITE_BURST")?,
            money: rate_limit("RECUR_RATE_LIMIT_MONEY_PER_SEC", "RECUR_RATE_LIMIT_MONEY_BURST")?,
        };
        Ok(Config {
            listen_addr: get("RECUR_LISTEN_ADDR"),
            data_dir: PathBuf::from(get("RECUR_DATA_DIR").unwrap_or_else(|| "./data".into())),
            database_url: get("RECUR_DATABASE_URL").map(Secret::new),
            db_max_connections: number("RECUR_DB_MAX_CONNECTIONS", 10)?.clamp(1, 1000) as u32,
            redis_url: get("RECUR_REDIS_URL").map(Secret::new),
            session_ttl: Duration::from_secs(number("RECUR_SESSION_TTL_SECS", 86_400)?),
            jwt_secret,
            default_tenant: get("RECUR_DEFAULT_TENANT").unwrap_or_else(|| "default".into()),
            demo_catalog,
            in_process_calls,
            peers: Peers {
                catalog: peer("RECUR_CATALOG_ADDR", "127.0.0.1:50061"),
                pricing: peer("RECUR_PRICING_ADDR", "127.0.0.1:50062"),
                payment: peer("RECUR_PAYMENT_ADDR", "127.0.0.1:50063"),
                subscription: peer("RECUR_SUBSCRIPTION_ADDR", "127.0.0.1:50064"),
                signup: peer("RECUR_SIGNUP_ADDR", "127.0.0.1:50065"),
            },
            catalog_cache_ttl: Duration::from_millis(number("RECUR_CATALOG_CACHE_TTL_MS", 1000)?.min(60_000)),
            pricing_cache_ttl: Duration::from_millis(number("RECUR_PRICING_CACHE_TTL_MS", 3000)?.min(60_000)),
            call_timeout: Duration::from_millis(number("RECUR_CALL_TIMEOUT_MS", 10_000)?),
            shutdown_grace: Duration::from_secs(number("RECUR_SHUTDOWN_GRACE_SECS", 30)?),
            sandbox_latency: Duration::from_millis(number("RECUR_SANDBOX_LATENCY_MS", 0)?),
            public_url: get("RECUR_PUBLIC_URL").map(|u| u.trim_end_matches('/').to_string()),
            payment_providers: get("RECUR_PAYMENT_PROVIDERS").map(PathBuf::from),
            reconcile_after: Duration::from_millis(number("RECUR_PAYMENT_RECONCILE_AFTER_MS", 30_000)?.max(1)),
            reconcile_interval: Duration::from_millis(number("RECUR_PAYMENT_RECONCILE_INTERVAL_MS", 5_000)?),
            billing_clock_interval: Duration::from_millis(number("RECUR_BILLING_CLOCK_INTERVAL_MS", 1_000)?),
            billing_clock_lease: Duration::from_millis(
                number("RECUR_BILLING_CLOCK_LEASE_MS", 60_000)?.clamp(100, 3_600_000),
            ),
            billing_clock_batch: number("RECUR_BILLING_CLOCK_BATCH", 200)?.clamp(1, 5_000) as i64,
            rate_limits,
            log_filter: get("RECUR_LOG").unwrap_or_else(|| "info".into()),
            log_format,
            otlp_endpoint: get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            otel_service_name: get("OTEL_SERVICE_NAME"),
        })
    }

    /// The defaults, as if no variable were set.
    pub fn defaults() -> Config {
        match Config::from_map(&HashMap::new()) {
            Ok(c) => c,
            Err(e) => unreachable!("defaults are valid: {e}"),
        }
    }
}

fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_sane() {
        let c = Config::defaults();
        assert_eq!(c.default_tenant, "default");
        assert_eq!(c.peers.pricing, "127.0.0.1:50062");
        assert_eq!(c.call_timeout, Duration::from_secs(10));
        assert_eq!(c.log_format, LogFormat::Json);
        assert!(c.database_url.is_none() && c.redis_url.is_none());
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        let err = Config::from_map(&map(&[("RECUR_CALL_TIMEOUT_MS", "soon")])).expect_err("not a number");
        assert!(err.to_string().starts_with("RECUR_CALL_TIMEOUT_MS"));
        let err = Config::from_map(&map(&[("RECUR_JWT_SECRET", "short")])).expect_err("too short");
        assert!(!err.to_string().contains("short"), "secret leaked: {err}");
    }

    #[test]
    fn rate_limits_are_off_unless_set() {
        assert!(Config::defaults().rate_limits.is_off());
        let c = Config::from_map(&map(&[
            ("RECUR_RATE_LIMIT_READ_PER_SEC", "200"),
            ("RECUR_RATE_LIMIT_READ_BURST", "400"),
            ("RECUR_RATE_LIMIT_MONEY_PER_SEC", "0.5"),
            ("RECUR_RATE_LIMIT_WRITE_PER_SEC", "0"),
            ("RECUR_RATE_LIMIT_WRITE_BURST", "9"),
        ]))
        .expect("valid");
        assert_eq!(c.rate_limits.read, Some(RateLimit { per_sec: 200.0, burst: 400 }));
        assert_eq!(
            c.rate_limits.money,
            Some(RateLimit { per_sec: 0.5, burst: 1 }),
            "burst defaults to the rate, at least 1"
        );
        assert_eq!(c.rate_limits.write, None, "0 is unlimited, whatever the burst");
        for bad in ["-1", "NaN", "inf", "fast", "2000000"] {
            let err = Config::from_map(&map(&[("RECUR_RATE_LIMIT_READ_PER_SEC", bad)])).expect_err(bad);
            assert!(err.to_string().starts_with("RECUR_RATE_LIMIT_READ_PER_SEC"), "{err}");
        }
        let err = Config::from_map(&map(&[("RECUR_RATE_LIMIT_MONEY_BURST", "x")])).expect_err("not a number");
        assert!(err.to_string().starts_with("RECUR_RATE_LIMIT_MONEY_BURST"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = Config::from_map(&map(&[
            ("RECUR_JWT_SECRET", "0123456789abcdef0123456789abcdef-secret"),
            ("RECUR_DATABASE_URL", "postgres://u:hunter2@db/recur"),
        ]))
        .expect("valid");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("abcdef-secret"), "{shown}");
    }

    #[test]
    fn env_file_lines_parse() {
        let parsed = parse_env_file("# comment\nRECUR_LOG=debug\n\nRECUR_DATA_DIR = \"/var/lib/recur\"\n");
        assert_eq!(
            parsed,
            vec![
                ("RECUR_LOG".to_string(), "debug".to_string()),
                ("RECUR_DATA_DIR".to_string(), "/var/lib/recur".to_string())
            ]
        );
    }

    #[test]
    fn readme_documents_every_variable() {
        let readme = include_str!("../../../README.md");
        for var in VARS {
            assert!(readme.contains(var.name), "README's configuration table misses {}", var.name);
        }
    }
}
