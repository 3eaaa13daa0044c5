//! What the hosted pages are made of: signed, expiring page tokens (the
//! only credential a customer's browser holds) and HTML with every piece of
//! user data escaped.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use recur_auth::TokenKey;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageKind {
    /// Add a payment method for a customer.
    #[serde(rename = "pm")]
    PaymentMethod,
    /// Authenticate (3-D Secure) a payment.
    #[serde(rename = "3ds")]
    ThreeDSecure,
    /// Manage a customer's payment methods.
    #[serde(rename = "portal")]
    Portal,
}

impl PageKind {
    pub fn path(self) -> &'static str {
        match self {
            PageKind::PaymentMethod => "payment-method",
            PageKind::ThreeDSecure => "3ds",
            PageKind::Portal => "portal",
        }
    }
}

/// What a page link grants: one kind of page, for one tenant's customer or
/// payment, until it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageToken {
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "k")]
    pub kind: PageKind,
    /// Customer id (payment method, portal) or payment id (3-D Secure).
    #[serde(rename = "s")]
    pub subject: String,
    /// Where the page sends the customer when done (may be empty).
    #[serde(rename = "r", default, skip_serializing_if = "String::is_empty")]
    pub return_url: String,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageTokenError {
    /// Not a token Recur signed (or altered).
    Invalid,
    Expired,
}

/// The key page tokens are signed with, derived from the service key.
pub fn page_key(service_key: &TokenKey) -> TokenKey {
    service_key.derive("hosted-pages/v1")
}

impl PageToken {
    pub fn seal(&self, key: &TokenKey) -> String {
        let payload = B64.encode(serde_json::to_vec(self).unwrap_or_default());
        let sig = B64.encode(key.sign(payload.as_bytes()));
        format!("{payload}.{sig}")
    }

    pub fn open(token: &str, key: &TokenKey, now: DateTime<Utc>) -> Result<PageToken, PageTokenError> {
        let (payload, sig) = token.split_once('.').ok_or(PageTokenError::Invalid)?;
        let sig = B64.decode(sig).map_err(|_| PageTokenError::Invalid)?;
        if !key.verify_signature(payload.as_bytes(), &sig) {
            return Err(PageTokenError::Invalid);
        }
        let bytes = B64.decode(payload).map_err(|_| PageTokenError::Invalid)?;
        let t: PageToken = serde_json::from_slice(&bytes).map_err(|_| PageTokenError::Invalid)?;
        if now.timestamp() >= t.expires {
            return Err(PageTokenError::Expired);
        }
        Ok(t)
    }
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already HTML). `title` is escaped here.
pub fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 2rem auto; padding: 0 1rem; color: #1b1f24; }}
h1 {{ font-size: 1.4rem; }}
label {{ display: block; margin: .8rem 0 .2rem; }}
input[type=text], input[type=number] {{ width: 100%; padding: .5rem; box-sizing: border-box; }}
button {{ padding: .5rem 1rem; margin: .8rem .4rem 0 0; cursor: pointer; }}
.row {{ display: flex; gap: .8rem; }} .row > div {{ flex: 1; }}
.error {{ color: #a40e26; background: #fdeaea; padding: .6rem; border-radius: 4px; }}
.note {{ color: #57606a; font-size: .9rem; }}
table {{ width: 100%; border-collapse: collapse; }} td {{ padding: .4rem 0; border-bottom: 1px solid #ddd; }}
.badge {{ font-size: .8rem; background: #ddf4ff; padding: .1rem .4rem; border-radius: 4px; }}
form.inline {{ display: inline; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
<p class="note">Recur sandbox · test mode: no real card is charged.</p>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// `url` with `pairs` added to its query string.
pub fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    let q = q.finish();
    let (base, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    match fragment {
        Some(f) => format!("{base}{sep}{q}#{f}"),
        None => format!("{base}{sep}{q}"),
    }
}

/// Whether `url` may be a return URL: absolute http(s), no credentials.
pub fn is_return_url(url: &str) -> bool {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(r) => {
            let host = r.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty() && !host.contains('@') && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).expect("valid")
    }

    fn token() -> PageToken {
        PageToken {
            tenant: "acme".into(),
            kind: PageKind::Portal,
            subject: "cus_1".into(),
            return_url: "https://acme.example/account".into(),
            expires: 1_800_000_600,
        }
    }

    #[test]
    fn tokens_open_until_they_expire() {
        let key = page_key(&TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec()));
        let sealed = token().seal(&key);
        assert_eq!(PageToken::open(&sealed, &key, at(1_800_000_000)), Ok(token()));
        assert_eq!(PageToken::open(&sealed, &key, at(1_800_000_600)), Err(PageTokenError::Expired));
    }

    #[test]
    fn altered_or_foreign_tokens_do_not_open() {
        let key = page_key(&TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec()));
        let sealed = token().seal(&key);
        let now = at(1_800_000_000);
        let other = page_key(&TokenKey::new(b"another key, also thirty-two bytes".to_vec()));
        assert_eq!(PageToken::open(&sealed, &other, now), Err(PageTokenError::Invalid));
        let mut forged = token();
        forged.tenant = "globex".into();
        let (_, sig) = sealed.split_once('.').expect("two parts");
        let payload = B64.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(PageToken::open(&format!("{payload}.{sig}"), &key, now), Err(PageTokenError::Invalid));
        assert_eq!(PageToken::open("nonsense", &key, now), Err(PageTokenError::Invalid));
        // The bearer-token key itself cannot sign pages.
        let service = TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
        assert_eq!(PageToken::open(&token().seal(&service), &key, now), Err(PageTokenError::Invalid));
    }

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert!(layout("<b>", "").contains("<title>&lt;b&gt;</title>"));
    }

    #[test]
    fn return_urls_gain_query_parameters() {
        assert_eq!(with_query("https://a.example/done", &[("s", "ok")]), "https://a.example/done?s=ok");
        assert_eq!(with_query("https://a.example/d?x=1#top", &[("s", "a b")]), "https://a.example/d?x=1&s=a+b#top");
        assert!(is_return_url("https://acme.example/billing?x=1"));
        assert!(is_return_url("http://127.0.0.1:8080/back"));
        assert!(!is_return_url("javascript:alert(1)"));
        assert!(!is_return_url("https://user:pw@evil.example/"));
        assert!(!is_return_url("/relative"));
        assert!(!is_return_url("https://"));
    }
}
