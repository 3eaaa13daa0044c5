//! Which provider each tenant pays through. Without configuration every
//! tenant uses the sandbox; `RECUR_PAYMENT_PROVIDERS` names a YAML (or JSON)
//! file that puts tenants on Stripe:
//!
//! ```yaml
//! default:                 # tenants not listed below (optional; sandbox)
//!   provider: sandbox
//! tenants:
//!   acme:
//!     provider: stripe
//!     secret_key: env:ACME_STRIPE_SECRET_KEY      # env:NAME reads a variable
//!     publishable_key: pk_live_…
//!     webhook_secret: env:ACME_STRIPE_WEBHOOK_SECRET
//!     api_base: https://api.stripe.com           # optional
//!     max_amounts: {USD: "5000.00"}              # optional: per-charge ceilings
//! ```
//!
//! `max_amounts` (on a tenant or on `default`) caps a single charge or refund
//! per currency; a currency neither lists keeps the built-in ceiling of
//! 99,999,999 minor units (999,999.99 USD).
//!
//! Customers remember the provider they were created with, so a tenant that
//! moves to Stripe keeps charging its sandbox customers through the sandbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use recur_money::Ceilings;
use serde::Deserialize;

use crate::domain::provider::Provider;
use crate::domain::stripe::{DEFAULT_API_BASE, Stripe, StripeConfig};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    default: Option<Entry>,
    #[serde(default)]
    tenants: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default = "sandbox_name")]
    provider: String,
    secret_key: Option<String>,
    publishable_key: Option<String>,
    webhook_secret: Option<String>,
    api_base: Option<String>,
    max_retries: Option<u32>,
    timeout_ms: Option<u64>,
    /// Currency code → the largest single charge or refund.
    #[serde(default)]
    max_amounts: BTreeMap<String, Amount>,
}

fn sandbox_name() -> String {
    "sandbox".into()
}

/// An amount as written in the file: a string ("5000.00") or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Amount {
    Text(String),
    Whole(u64),
    Number(f64),
}

impl Amount {
    fn text(&self) -> String {
        match self {
            Amount::Text(s) => s.clone(),
            Amount::Whole(n) => n.to_string(),
            Amount::Number(f) => f.to_string(),
        }
    }
}

/// An entry's `max_amounts`, every bad one named.
fn ceilings(amounts: &BTreeMap<String, Amount>) -> Result<Ceilings, String> {
    let texts: Vec<(&str, String)> = amounts.iter().map(|(code, a)| (code.as_str(), a.text())).collect();
    Ceilings::parse(texts.iter().map(|(c, a)| (*c, a.as_str()))).map_err(|errors| {
        let why: Vec<String> = errors.iter().map(|(code, e)| format!("max_amounts.{code}: {e}")).collect();
        why.join("; ")
    })
}

pub struct Providers {
    sandbox: Arc<dyn Provider>,
    default: Arc<dyn Provider>,
    tenants: HashMap<String, Arc<dyn Provider>>,
    /// `default`'s ceilings (over the built-in ones).
    default_ceilings: Ceilings,
    /// Each listed tenant's ceilings (over `default`'s).
    ceilings: HashMap<String, Ceilings>,
}

/// `env:NAME` → the variable's value.
fn resolve(value: Option<String>, what: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let v = value.ok_or_else(|| format!("{what} is required for Stripe"))?;
    match v.strip_prefix("env:") {
        Some(name) => lookup(name).filter(|s| !s.is_empty()).ok_or_else(|| format!("{what}: ${name} is not set")),
        None => Ok(v),
    }
}

fn build(
    entry: Entry,
    sandbox: &Arc<dyn Provider>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Provider>, String> {
    match entry.provider.as_str() {
        "sandbox" => {
            if entry.secret_key.is_some() || entry.publishable_key.is_some() || entry.webhook_secret.is_some() {
                return Err("the sandbox takes no keys".into());
            }
            Ok(sandbox.clone())
        }
        "stripe" => {
            let mut config = StripeConfig::new(
                resolve(entry.secret_key, "secret_key", lookup)?,
                resolve(entry.publishable_key, "publishable_key", lookup)?,
            );
            config.webhook_secret =
                entry.webhook_secret.map(|w| resolve(Some(w), "webhook_secret", lookup)).transpose()?;
            config.api_base = entry.api_base.unwrap_or_else(|| DEFAULT_API_BASE.into());
            if !(config.api_base.starts_with("https://") || config.api_base.starts_with("http://")) {
                return Err(format!("api_base {:?} is not an http(s) URL", config.api_base));
            }
            if let Some(n) = entry.max_retries {
                config.max_retries = n.min(10);
            }
            if let Some(ms) = entry.timeout_ms {
                config.timeout = Duration::from_millis(ms.max(1));
            }
            Ok(Arc::new(Stripe::new(config)?))
        }
        other => Err(format!("unknown provider {other:?} (sandbox or stripe)")),
    }
}

impl Providers {
    /// Every tenant on `sandbox`.
    pub fn sandbox_only(sandbox: Arc<dyn Provider>) -> Providers {
        Providers {
            default: sandbox.clone(),
            sandbox,
            tenants: HashMap::new(),
            default_ceilings: Ceilings::new(),
            ceilings: HashMap::new(),
        }
    }

    /// Reads the providers file (YAML or JSON).
    pub fn from_text(text: &str, sandbox: Arc<dyn Provider>) -> Result<Providers, String> {
        Providers::parse(text, sandbox, &|name| std::env::var(name).ok())
    }

    fn parse(
        text: &str,
        sandbox: Arc<dyn Provider>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Providers, String> {
        let file: File = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
        let (default, default_ceilings) = match file.default {
            Some(e) => {
                let c = ceilings(&e.max_amounts).map_err(|e| format!("default.{e}"))?;
                (build(e, &sandbox, lookup).map_err(|e| format!("default: {e}"))?, c)
            }
            None => (sandbox.clone(), Ceilings::new()),
        };
        let mut tenants = HashMap::new();
        let mut tenant_ceilings = HashMap::new();
        for (tenant, entry) in file.tenants {
            let c = ceilings(&entry.max_amounts).map_err(|e| format!("tenants.{tenant}.{e}"))?;
            tenant_ceilings.insert(tenant.clone(), c.or(&default_ceilings));
            let p = build(entry, &sandbox, lookup).map_err(|e| format!("tenants.{tenant}: {e}"))?;
            tenants.insert(tenant, p);
        }
        Ok(Providers { sandbox, default, tenants, default_ceilings, ceilings: tenant_ceilings })
    }

    /// The provider new customers of `tenant` are created with.
    pub fn for_tenant(&self, tenant: &str) -> Arc<dyn Provider> {
        self.tenants.get(tenant).unwrap_or(&self.default).clone()
    }

    /// The largest single charge or refund of `tenant`, per currency: its
    /// own `max_amounts`, else `default`'s, else the built-in ceiling.
    pub fn ceilings(&self, tenant: &str) -> &Ceilings {
        self.ceilings.get(tenant).unwrap_or(&self.default_ceilings)
    }

    /// The providers `tenant` can charge through: the sandbox and its own.
    pub fn names(&self, tenant: &str) -> [&'static str; 2] {
        ["sandbox", self.for_tenant(tenant).name()]
    }

    /// The provider called `name` for `tenant`: the sandbox always, Stripe
    /// when the tenant is configured for it.
    pub fn named(&self, tenant: &str, name: &str) -> Option<Arc<dyn Provider>> {
        if name == "sandbox" {
            return Some(self.sandbox.clone());
        }
        Some(self.for_tenant(tenant)).filter(|p| p.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::sandbox::Sandbox;
    use recur_money::Currency;

    fn sandbox() -> Arc<dyn Provider> {
        struct NoBooks;
        #[async_trait::async_trait]
        impl crate::domain::sandbox::SandboxStore for NoBooks {
            async fn record_charge(
                &self,
                c: &crate::domain::sandbox::SandboxCharge,
            ) -> Result<crate::domain::sandbox::SandboxCharge, String> {
                Ok(c.clone())
            }
            async fn get_charge(&self, _: &str) -> Result<Option<crate::domain::sandbox::SandboxCharge>, String> {
                Ok(None)
            }
            async fn complete_charge(
                &self,
                _: &str,
                _: &str,
                _: &str,
                _: &str,
            ) -> Result<Option<crate::domain::sandbox::SandboxCharge>, String> {
                Ok(None)
            }
            async fn refund(
                &self,
                _: &str,
                _: &str,
                _: i64,
                _: chrono::DateTime<chrono::Utc>,
            ) -> Result<crate::domain::sandbox::SandboxRefund, String> {
                Ok(crate::domain::sandbox::SandboxRefund::UnknownCharge)
            }
        }
        Arc::new(Sandbox::new(Duration::ZERO, Arc::new(NoBooks), recur_clock::system()))
    }

    #[test]
    fn tenants_get_their_configured_provider() {
        let env = |name: &str| (name == "ACME_SK").then(|| "sk_test_acme".to_string());
        let p = Providers::parse(
            "tenants:\n  acme:\n    provider: stripe\n    secret_key: env:ACME_SK\n    publishable_key: pk_test_acme\n",
            sandbox(),
            &env,
        )
        .expect("valid");
        assert_eq!(p.for_tenant("acme").name(), "stripe");
        assert_eq!(p.for_tenant("globex").name(), "sandbox");
        assert_eq!(p.named("acme", "sandbox").map(|p| p.name()), Some("sandbox"), "old sandbox customers");
        assert!(p.named("globex", "stripe").is_none(), "globex has no Stripe account");
        assert_eq!(p.for_tenant("acme").publishable_key(), "pk_test_acme");
    }

    #[test]
    fn ceilings_per_tenant_over_the_default() {
        let none = |_: &str| None;
        let p = Providers::parse(
            "default:\n  max_amounts: {EUR: \"100.00\"}\ntenants:\n  acme:\n    provider: sandbox\n    \
             max_amounts: {USD: \"5000.00\", JPY: 20000}\n",
            sandbox(),
            &none,
        )
        .expect("valid");
        let c = |code: &str| Currency::from_code(code).expect("known");
        assert_eq!(p.ceilings("acme").of(c("USD")).to_string(), "5000.00 USD");
        assert_eq!(p.ceilings("acme").of(c("JPY")).to_string(), "20000 JPY");
        assert_eq!(p.ceilings("acme").of(c("EUR")).to_string(), "100.00 EUR", "default's, for acme too");
        assert_eq!(p.ceilings("globex").of(c("EUR")).to_string(), "100.00 EUR");
        assert_eq!(p.ceilings("globex").of(c("USD")).to_string(), "999999.99 USD", "built in");
        assert_eq!(p.for_tenant("globex").name(), "sandbox", "provider defaults to the sandbox");
        let only = Providers::sandbox_only(sandbox());
        assert_eq!(only.ceilings("acme").of(c("KWD")).to_string(), "99999.999 KWD");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let none = |_: &str| None;
        let err = |text: &str| Providers::parse(text, sandbox(), &none).err().unwrap_or_default();
        assert!(err("tenants:\n  acme:\n    provider: paypal\n").contains("tenants.acme: unknown provider"));
        assert!(err("tenants:\n  acme:\n    provider: stripe\n").contains("secret_key is required"));
        assert!(
            err("tenants:\n  acme:\n    provider: stripe\n    secret_key: env:NOPE\n    publishable_key: pk\n")
                .contains("$NOPE is not set")
        );
        assert!(err("default:\n  provider: sandbox\n  secret_key: x\n").contains("takes no keys"));
        assert!(err("tenant: {}\n").contains("unknown field"));
        assert!(
            err("tenants:\n  acme:\n    max_amounts: {USD: \"1.001\"}\n")
                .contains("tenants.acme.max_amounts.USD: must have at most 2 decimal places")
        );
        assert!(err("default:\n  max_amounts: {usd: \"1\"}\n").contains("default.max_amounts.usd: unknown ISO 4217"));
        assert!(err("default:\n  max_amounts: {USD: \"0\"}\n").contains("must be greater than zero"));
    }
}
