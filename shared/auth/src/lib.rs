//! Every Recur RPC carries `authorization: Bearer <token>`. Tokens are JWTs
//! signed with HMAC-SHA256 by a key all services share; the `tenant_id` claim
//! decides whose data a call may see. Verification accepts HS256 only (no
//! `alg: none`, no algorithm confusion) and compares signatures in constant
//! time.

use std::fmt;
use std::path::Path;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const ISSUER: &str = "recur";

/// The purpose (see [`TokenKey::derive`]) of the key that signs peer proofs.
pub const PEER_CALL_PURPOSE: &str = "peer-call";

/// The metadata entry carrying a peer proof ([`TokenKey::peer_proof`]).
pub const PEER_PROOF_METADATA: &str = "recur-peer-proof";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub tenant_id: String,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing authorization metadata (expected \"Bearer <token>\")")]
    Missing,
    #[error("authorization must be \"Bearer <token>\"")]
    NotBearer,
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token algorithm")]
    Algorithm,
    #[error("bad token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token has no valid tenant")]
    Tenant,
}

/// The shared signing key. Its bytes never appear in `Debug` output.
#[derive(Clone)]
pub struct TokenKey {
    key: Vec<u8>,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
}

impl TokenKey {
    pub fn new(key: impl Into<Vec<u8>>) -> TokenKey {
        TokenKey { key: key.into() }
    }

    /// A fresh random 256-bit key.
    pub fn generate() -> TokenKey {
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        TokenKey { key }
    }

    fn mac(&self) -> HmacSha256 {
        match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        }
    }

    /// A key for another purpose (signing hosted-page links, say), derived
    /// from this one so deployments keep a single secret, yet unable to
    /// forge bearer tokens or the other purposes' signatures.
    pub fn derive(&self, purpose: &str) -> TokenKey {
        let mut mac = self.mac();
        mac.update(b"recur derived key\0");
        mac.update(purpose.as_bytes());
        TokenKey { key: mac.finalize().into_bytes().to_vec() }
    }

    /// HMAC-SHA256 of `message` under this key.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.mac();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// Whether `signature` is this key's HMAC-SHA256 of `message`, compared
    /// in constant time.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        let mut mac = self.mac();
        mac.update(message);
        mac.verify_slice(signature).is_ok()
    }

    /// The proof that a call carrying `bearer` comes from a Recur peer: the
    /// HMAC-SHA256 of the token under this key, which must be the key
    /// derived for [`PEER_CALL_PURPOSE`]. The server puts it into the
    /// [`CallContext`]; peer calls carry it as [`PEER_PROOF_METADATA`].
    pub fn peer_proof(&self, bearer: &str) -> String {
        B64.encode(self.sign(bearer.as_bytes()))
    }

    /// Mints a token for `tenant_id`, valid from `now` for `ttl`.
    pub fn mint(&self, tenant_id: &str, now: DateTime<Utc>, ttl: Duration) -> String {
        let header = Header { alg: "HS256".into(), typ: "JWT".into() };
        let claims = Claims {
            iss: ISSUER.into(),
            sub: tenant_id.into(),
            tenant_id: tenant_id.into(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
        };
        let signing_input = format!("{}.{}", encode_json(&header), encode_json(&claims));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Checks a token's algorithm, signature, issuer, expiry and tenant.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, AuthError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(AuthError::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.alg != "HS256" {
            return Err(AuthError::Algorithm);
        }
        let sig = B64.decode(s).map_err(|_| AuthError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| AuthError::Signature)?;
        let claims: Claims = decode_json(p)?;
        if claims.iss != ISSUER {
            return Err(AuthError::Malformed);
        }
        if claims.exp <= now.timestamp() {
            return Err(AuthError::Expired);
        }
        if !is_valid_tenant_id(&claims.tenant_id) {
            return Err(AuthError::Tenant);
        }
        Ok(claims)
    }

    /// Verifies an `authorization` metadata value.
    pub fn verify_header(&self, value: Option<&str>, now: DateTime<Utc>) -> Result<Claims, AuthError> {
        let value = value.ok_or(AuthError::Missing)?;
        let token =
            value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).ok_or(AuthError::NotBearer)?;
        self.verify(token.trim(), now)
    }

    /// Loads the development key from `dir`, creating it on first use.
    /// Returns the key and whether it was just created.
    pub fn load_or_create_dev_key(dir: &Path) -> std::io::Result<(TokenKey, bool)> {
        let path = dir.join("dev-signing.key");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key =
                    B64.decode(text.trim()).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                Ok((TokenKey::new(key), false))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                let key = TokenKey::generate();
                write_private(&path, &B64.encode(&key.key))?;
                Ok((key, true))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

fn encode_json<T: Serialize>(v: &T) -> String {
    match serde_json::to_vec(v) {
        Ok(bytes) => B64.encode(bytes),
        Err(e) => unreachable!("plain structs serialize: {e}"),
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, AuthError> {
    let bytes = B64.decode(part).map_err(|_| AuthError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)
}

/// Tenant ids: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn is_valid_tenant_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Who is calling and until when: put into every request's extensions by the
/// server, and used to make calls to peer services on the caller's behalf
/// (same tenant, same token, the remaining deadline).
#[derive(Clone)]
pub struct CallContext {
    pub tenant_id: String,
    pub bearer: String,
    pub deadline: Option<Instant>,
    /// Proof that a call made on this caller's behalf comes from a Recur
    /// peer ([`TokenKey::peer_proof`] of `bearer`): peer calls send it, and
    /// the server does not count them against the tenant's rate limits
    /// again. Empty when unknown (a call then counts like any other).
    pub peer_proof: String,
}

impl fmt::Debug for CallContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallContext")
            .field("tenant_id", &self.tenant_id)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("valid")
    }

    #[test]
    fn minted_tokens_verify_and_carry_the_tenant() {
        let key = TokenKey::generate();
        let token = key.mint("acme", now(), Duration::hours(1));
        let claims = key.verify(&token, now()).expect("valid token");
        assert_eq!(claims.tenant_id, "acme");
        let via_header = key.verify_header(Some(&format!("Bearer {token}")), now()).expect("valid");
        assert_eq!(via_header, claims);
    }

    #[test]
    fn refuses_bad_tokens() {
        let key = TokenKey::generate();
        let other = TokenKey::generate();
        let token = key.mint("acme", now(), Duration::hours(1));
        assert_eq!(other.verify(&token, now()), Err(AuthError::Signature));
        assert_eq!(key.verify(&token, now() + Duration::hours(2)), Err(AuthError::Expired));
        assert_eq!(key.verify("garbage", now()), Err(AuthError::Malformed));
        assert_eq!(key.verify_header(None, now()), Err(AuthError::Missing));
        assert_eq!(key.verify_header(Some("Basic abc"), now()), Err(AuthError::NotBearer));

        // A token whose payload was swapped for another tenant's fails the signature.
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = encode_json(&Claims {
            iss: ISSUER.into(),
            sub: "victim".into(),
            tenant_id: "victim".into(),
            iat: now().timestamp(),
            exp: now().timestamp() + 3600,
        });
        parts[1] = &forged;
        assert_eq!(key.verify(&parts.join("."), now()), Err(AuthError::Signature));

        // alg: none is refused outright.
        let none_header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{forged}.");
        assert_eq!(key.verify(&unsigned, now()), Err(AuthError::Algorithm));
    }

    #[test]
    fn dev_key_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("recur-auth-test-{}", rand::rng().next_u64()));
        let (k1, created1) = TokenKey::load_or_create_dev_key(&dir).expect("create");
        let (k2, created2) = TokenKey::load_or_create_dev_key(&dir).expect("load");
        assert!(created1 && !created2);
        let token = k1.mint("default", now(), Duration::days(1));
        assert!(k2.verify(&token, now()).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tenant_ids() {
        assert!(is_valid_tenant_id("default"));
        assert!(is_valid_tenant_id("acme-corp_1"));
        assert!(!is_valid_tenant_id(""));
        assert!(!is_valid_tenant_id("a b"));
        assert!(!is_valid_tenant_id(&"x".repeat(65)));
    }

    #[test]
    fn derived_keys_sign_apart_from_their_parent() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let pages = key.derive("hosted-pages");
        let sig = pages.sign(b"hello");
        assert!(pages.verify_signature(b"hello", &sig));
        assert!(!pages.verify_signature(b"hellp", &sig));
        assert!(!key.verify_signature(b"hello", &sig), "the parent key does not accept it");
        assert!(!key.derive("other").verify_signature(b"hello", &sig));
        assert_eq!(key.derive("hosted-pages").sign(b"hello"), sig, "derivation is stable");
    }

    #[test]
    fn peer_proofs_bind_the_token_and_the_key() {
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let peer = key.derive(PEER_CALL_PURPOSE);
        let proof = peer.peer_proof("tok-a");
        assert_eq!(peer.peer_proof("tok-a"), proof, "stable");
        assert_ne!(peer.peer_proof("tok-b"), proof, "another token, another proof");
        assert_ne!(key.peer_proof("tok-a"), proof, "only the derived key makes it");
        assert_ne!(TokenKey::generate().derive(PEER_CALL_PURPOSE).peer_proof("tok-a"), proof);
    }
}
