//! The built-in sandbox provider: deterministic test tokens, provider-style
//! ids, no network. It keeps its own state (like a real provider would) and
//! honours idempotency keys: the same key returns the same outcome.
//!
//! | token | card | charge outcome |
//! |---|---|---|
//! | `tok_visa` | Visa 4242 | succeeds |
//! | `tok_mastercard` | Mastercard 4444 | succeeds |
//! | `tok_amex` | Amex 8431 | succeeds |
//! | `tok_decline` | Visa 0002 | fails: `generic_decline` |
//! | `tok_insufficient_funds` | Visa 9995 | fails: `insufficient_funds` |
//! | `tok_expired_card` | Visa 0069 | fails: `expired_card` |
//! | `tok_incorrect_cvc` | Visa 0127 | fails: `incorrect_cvc` |
//! | `tok_lost_card` | Visa 9987 | fails: `lost_card` |
//! | `tok_stolen_card` | Visa 9979 | fails: `stolen_card` |
//! | `tok_3ds_required` | Visa 3184 | requires action (3-D Secure) |
//! | `tok_processing_error` | Visa 0119 | fails: `processing_error` |
//! | `tok_timeout` | Visa 0341 | answers after the call deadline |

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;

use super::provider::{CardDetails, ChargeAttempt, ChargeOutcome, Provider, ProviderError, SetupIntent};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Succeed,
    Decline(&'static str, &'static str),
    RequireAction,
    Hang,
}

struct TestCard {
    token: &'static str,
    brand: &'static str,
    last4: &'static str,
    behaviour: Behaviour,
}

const CARDS: &[TestCard] = &[
    TestCard { token: "tok_visa", brand: "visa", last4: "4242", behaviour: Behaviour::Succeed },
    TestCard { token: "tok_mastercard", brand: "mastercard", last4: "4444", behaviour: Behaviour::Succeed },
    TestCard { token: "tok_amex", brand: "amex", last4: "8431", behaviour: Behaviour::Succeed },
    TestCard {
        token: "tok_decline",
        brand: "visa",
        last4: "0002",
        behaviour: Behaviour::Decline("generic_decline", "Your card was declined."),
    },
    TestCard {
        token: "tok_insufficient_funds",
        brand: "visa",
        last4: "9995",
        behaviour: Behaviour::Decline("insufficient_funds", "Your card has insufficient funds."),
    },
    TestCard {
        token: "tok_expired_card",
        brand: "visa",
        last4: "0069",
        behaviour: Behaviour::Decline("expired_card", "Your card has expired."),
    },
    TestCard {
        token: "tok_incorrect_cvc",
        brand: "visa",
        last4: "0127",
        behaviour: Behaviour::Decline("incorrect_cvc", "Your card's security code is incorrect."),
    },
    TestCard {
        token: "tok_lost_card",
        brand: "visa",
        last4: "9987",
        behaviour: Behaviour::Decline("lost_card", "Your card was declined."),
    },
    TestCard {
        token: "tok_stolen_card",
        brand: "visa",
        last4: "9979",
        behaviour: Behaviour::Decline("stolen_card", "Your card was declined."),
    },
    TestCard { token: "tok_3ds_required", brand: "visa", last4: "3184", behaviour: Behaviour::RequireAction },
    TestCard {
        token: "tok_processing_error",
        brand: "visa",
        last4: "0119",
        behaviour: Behaviour::Decline("processing_error", "An error occurred while processing your card."),
    },
    TestCard { token: "tok_timeout", brand: "visa", last4: "0341", behaviour: Behaviour::Hang },
];

/// How long `tok_timeout` takes to answer: longer than any call deadline.
const HANG: Duration = Duration::from_secs(120);

#[derive(Default)]
struct State {
    customers: HashMap<String, String>,
    /// provider payment method id → the test card's token.
    methods: HashMap<String, &'static str>,
    /// idempotency key → outcome.
    charges: HashMap<String, ChargeOutcome>,
}

pub struct Sandbox {
    latency: Duration,
    public_base_url: String,
    state: Mutex<State>,
}

fn provider_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let body: String = (0..24).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}_{body}")
}

impl Sandbox {
    /// `latency` is added to every call, to behave like a remote provider.
    pub fn new(latency: Duration, public_base_url: impl Into<String>) -> Self {
        Sandbox { latency, public_base_url: public_base_url.into(), state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn delay(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// The tokens the sandbox knows, for documentation and tests.
    pub fn tokens() -> impl Iterator<Item = &'static str> {
        CARDS.iter().map(|c| c.token)
    }
}

#[async_trait]
impl Provider for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn publishable_key(&self) -> String {
        "pk_sandbox_recur".to_string()
    }

    async fn create_customer(&self, _email: &str, _name: &str, idempotency_key: &str) -> Result<String, ProviderError> {
        self.delay().await;
        let mut state = self.state();
        let id = state.customers.entry(idempotency_key.to_string()).or_insert_with(|| provider_id("cus")).clone();
        Ok(id)
    }

    async fn create_setup_intent(&self, _provider_customer_id: &str) -> Result<SetupIntent, ProviderError> {
        self.delay().await;
        let id = provider_id("seti");
        let client_secret = format!("{id}_secret_{}", provider_id("s").trim_start_matches("s_"));
        Ok(SetupIntent { id, client_secret })
    }

    async fn attach_payment_method(
        &self,
        provider_customer_id: &str,
        token: &str,
    ) -> Result<CardDetails, ProviderError> {
        self.delay().await;
        let card = CARDS.iter().find(|c| c.token == token).ok_or_else(|| {
            ProviderError::InvalidToken(format!("{token:?} is not a sandbox test token (try tok_visa)"))
        })?;
        // The same card attached to the same customer is the same method.
        let pm_id = format!("pm_{}_{}", provider_customer_id.trim_start_matches("cus_"), card.last4);
        self.state().methods.insert(pm_id.clone(), card.token);
        Ok(CardDetails {
            provider_payment_method_id: pm_id,
            brand: card.brand.to_string(),
            last4: card.last4.to_string(),
            exp_month: 12,
            exp_year: 2034,
        })
    }

    async fn charge(&self, attempt: &ChargeAttempt) -> Result<ChargeOutcome, ProviderError> {
        self.delay().await;
        if let Some(done) = self.state().charges.get(&attempt.idempotency_key) {
            return Ok(done.clone());
        }
        let token = self
            .state()
            .methods
            .get(&attempt.provider_payment_method_id)
            .copied()
            .ok_or_else(|| ProviderError::InvalidToken("unknown payment method".into()))?;
        let card = CARDS.iter().find(|c| c.token == token).ok_or_else(|| ProviderError::Unavailable("card".into()))?;
        let provider_payment_id = provider_id("pi");
        let outcome = match card.behaviour {
            Behaviour::Succeed => ChargeOutcome::Succeeded { provider_payment_id },
            Behaviour::Decline(code, message) => ChargeOutcome::Failed {
                provider_payment_id,
                decline_code: code.to_string(),
                message: message.to_string(),
            },
            Behaviour::RequireAction => ChargeOutcome::RequiresAction {
                action_url: format!("{}/sandbox/3ds/{provider_payment_id}", self.public_base_url),
                provider_payment_id,
            },
            Behaviour::Hang => {
                tokio::time::sleep(HANG).await;
                return Err(ProviderError::Timeout);
            }
        };
        self.state().charges.insert(attempt.idempotency_key.clone(), outcome.clone());
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(pm: &str, key: &str) -> ChargeAttempt {
        ChargeAttempt {
            provider_customer_id: "cus_x".into(),
            provider_payment_method_id: pm.into(),
            amount_minor: 1000,
            currency: "USD".into(),
            idempotency_key: key.into(),
            return_url: String::new(),
        }
    }

    #[tokio::test]
    async fn tokens_behave_as_documented() {
        let sb = Sandbox::new(Duration::ZERO, "http://127.0.0.1:50051");
        let visa = sb.attach_payment_method("cus_x", "tok_visa").await.expect("attach");
        assert_eq!((visa.brand.as_str(), visa.last4.as_str()), ("visa", "4242"));
        assert!(matches!(
            sb.charge(&attempt(&visa.provider_payment_method_id, "k1")).await,
            Ok(ChargeOutcome::Succeeded { .. })
        ));

        let broke = sb.attach_payment_method("cus_x", "tok_insufficient_funds").await.expect("attach");
        match sb.charge(&attempt(&broke.provider_payment_method_id, "k2")).await {
            Ok(ChargeOutcome::Failed { decline_code, .. }) => assert_eq!(decline_code, "insufficient_funds"),
            other => panic!("expected a decline, got {other:?}"),
        }
        let tds = sb.attach_payment_method("cus_x", "tok_3ds_required").await.expect("attach");
        assert!(matches!(
            sb.charge(&attempt(&tds.provider_payment_method_id, "k3")).await,
            Ok(ChargeOutcome::RequiresAction { .. })
        ));
        assert!(matches!(sb.attach_payment_method("cus_x", "tok_nope").await, Err(ProviderError::InvalidToken(_))));
    }

    #[tokio::test]
    async fn the_same_key_is_the_same_charge() {
        let sb = Sandbox::new(Duration::ZERO, "");
        let visa = sb.attach_payment_method("cus_x", "tok_visa").await.expect("attach");
        let a = sb.charge(&attempt(&visa.provider_payment_method_id, "same")).await.expect("charge");
        let b = sb.charge(&attempt(&visa.provider_payment_method_id, "same")).await.expect("charge");
        assert_eq!(a, b);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_token_outlasts_any_deadline() {
        let sb = Sandbox::new(Duration::ZERO, "");
        let card = sb.attach_payment_method("cus_x", "tok_timeout").await.expect("attach");
        let r =
            tokio::time::timeout(Duration::from_secs(30), sb.charge(&attempt(&card.provider_payment_method_id, "k")))
                .await;
        assert!(r.is_err(), "answered within 30 s");
    }
}
