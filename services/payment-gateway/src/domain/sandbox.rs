//! The built-in sandbox provider: deterministic test cards, provider-style
//! ids, no network. Like a real provider it keeps its own books (the
//! `sandbox_*` tables, through [`SandboxStore`]), so what it charged survives
//! a restart of the gateway, and it honours idempotency keys: the same key
//! returns the first outcome and never charges again.
//!
//! | token | test card number | card | charge outcome |
//! |---|---|---|---|
//! | `tok_visa` | 4242 4242 4242 4242 | Visa 4242 | succeeds |
//! | `tok_mastercard` | 5555 5555 5555 4444 | Mastercard 4444 | succeeds |
//! | `tok_amex` | 3714 496353 98431 | Amex 8431 | succeeds |
//! | `tok_decline` | 4000 0000 0000 0002 | Visa 0002 | fails: `generic_decline` |
//! | `tok_insufficient_funds` | 4000 0000 0000 9995 | Visa 9995 | fails: `insufficient_funds` |
//! | `tok_expired_card` | 4000 0000 0000 0069 | Visa 0069 | fails: `expired_card` |
//! | `tok_incorrect_cvc` | 4000 0000 0000 0127 | Visa 0127 | fails: `incorrect_cvc` |
//! | `tok_lost_card` | 4000 0000 0000 9987 | Visa 9987 | fails: `lost_card` |
//! | `tok_stolen_card` | 4000 0000 0000 9979 | Visa 9979 | fails: `stolen_card` |
//! | `tok_3ds_required` | 4000 0027 6000 3184 | Visa 3184 | requires action (3-D Secure) |
//! | `tok_processing_error` | 4000 0000 0000 0119 | Visa 0119 | fails: `processing_error` |
//! | `tok_timeout` | 4000 0000 0000 0341 | Visa 0341 | succeeds, but answers after any call deadline |

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Utc};
use rand::Rng;
use recur_clock::SharedClock;

use super::provider::{
    CardDetails, ChargeAttempt, ChargeOutcome, Provider, ProviderError, RefundAttempt, RefundOutcome, SetupIntent,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Succeed,
    Decline(&'static str, &'static str),
    RequireAction,
    Hang,
}

struct TestCard {
    token: &'static str,
    number: &'static str,
    brand: &'static str,
    last4: &'static str,
    behaviour: Behaviour,
}

const fn card(
    token: &'static str,
    number: &'static str,
    brand: &'static str,
    last4: &'static str,
    behaviour: Behaviour,
) -> TestCard {
    TestCard { token, number, brand, last4, behaviour }
}

const DECLINED: &str = "Your card was declined.";

const CARDS: &[TestCard] = &[
    card("tok_visa", "4242424242424242", "visa", "4242", Behaviour::Succeed),
    card("tok_mastercard", "5555555555554444", "mastercard", "4444", Behaviour::Succeed),
    card("tok_amex", "371449635398431", "amex", "8431", Behaviour::Succeed),
    card("tok_decline", "4000000000000002", "visa", "0002", Behaviour::Decline("generic_decline", DECLINED)),
    card(
        "tok_insufficient_funds",
        "4000000000009995",
        "visa",
        "9995",
        Behaviour::Decline("insufficient_funds", "Your card has insufficient funds."),
    ),
    card(
        "tok_expired_card",
        "4000000000000069",
        "visa",
        "0069",
        Behaviour::Decline("expired_card", "Your card has expired."),
    ),
    card(
        "tok_incorrect_cvc",
        "4000000000000127",
        "visa",
        "0127",
        Behaviour::Decline("incorrect_cvc", "Your card's security code is incorrect."),
    ),
    card("tok_lost_card", "4000000000009987", "visa", "9987", Behaviour::Decline("lost_card", DECLINED)),
    card("tok_stolen_card", "4000000000009979", "visa", "9979", Behaviour::Decline("stolen_card", DECLINED)),
    card("tok_3ds_required", "4000002760003184", "visa", "3184", Behaviour::RequireAction),
    card(
        "tok_processing_error",
        "4000000000000119",
        "visa",
        "0119",
        Behaviour::Decline("processing_error", "An error occurred while processing your card."),
    ),
    card("tok_timeout", "4000000000000341", "visa", "0341", Behaviour::Hang),
];

/// How long `tok_timeout` takes to answer: longer than any call deadline.
const HANG: Duration = Duration::from_secs(120);

/// A charge in the sandbox's own books.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxCharge {
    pub idempotency_key: String,
    pub provider_payment_id: String,
    pub provider_payment_method_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// `succeeded`, `failed` or `requires_action`.
    pub status: String,
    pub decline_code: String,
    pub message: String,
    pub refunded_minor: i64,
    pub created_at: DateTime<Utc>,
}

impl SandboxCharge {
    fn outcome(&self) -> ChargeOutcome {
        let provider_payment_id = self.provider_payment_id.clone();
        match self.status.as_str() {
            "succeeded" => ChargeOutcome::Succeeded { provider_payment_id },
            "requires_action" => ChargeOutcome::RequiresAction { provider_payment_id, action_url: None },
            _ => ChargeOutcome::Failed {
                provider_payment_id,
                decline_code: self.decline_code.clone(),
                message: self.message.clone(),
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SandboxRefund {
    Refunded {
        provider_refund_id: String,
    },
    /// More than what is left of the charge.
    TooLarge {
        refundable_minor: i64,
    },
    NotRefundable,
    UnknownCharge,
}

/// The sandbox's books.
#[async_trait]
pub trait SandboxStore: Send + Sync + 'static {
    /// Records `charge` under its idempotency key, or returns the charge
    /// already recorded under it.
    async fn record_charge(&self, charge: &SandboxCharge) -> Result<SandboxCharge, String>;
    async fn get_charge(&self, provider_payment_id: &str) -> Result<Option<SandboxCharge>, String>;
    /// Moves a `requires_action` charge to `status`; returns the charge.
    async fn complete_charge(
        &self,
        provider_payment_id: &str,
        status: &str,
        decline_code: &str,
        message: &str,
    ) -> Result<Option<SandboxCharge>, String>;
    /// Refunds `amount_minor` of a succeeded charge under `idempotency_key`
    /// (a repeated key returns the first refund), never above the charge.
    async fn refund(
        &self,
        idempotency_key: &str,
        provider_payment_id: &str,
        amount_minor: i64,
        now: DateTime<Utc>,
    ) -> Result<SandboxRefund, String>;
}

pub struct Sandbox {
    latency: Duration,
    store: Arc<dyn SandboxStore>,
    clock: SharedClock,
}

fn provider_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let body: String = (0..24).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}_{body}")
}

/// Sandbox payment methods name their test card: `pm_<customer>_<token>`.
fn card_of_method(pm: &str) -> Option<&'static TestCard> {
    CARDS.iter().find(|c| pm.ends_with(&format!("__{}", c.token)))
}

impl Sandbox {
    /// `latency` is added to every call, to behave like a remote provider.
    pub fn new(latency: Duration, store: Arc<dyn SandboxStore>, clock: SharedClock) -> Self {
        Sandbox { latency, store, clock }
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

    /// The test card number behind `token`.
    pub fn test_number(token: &str) -> Option<&'static str> {
        CARDS.iter().find(|c| c.token == token).map(|c| c.number)
    }
}

fn store_err(e: String) -> ProviderError {
    ProviderError::Unavailable(format!("sandbox: {e}"))
}

#[async_trait]
impl Provider for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn publishable_key(&self) -> String {
        "pk_sandbox_recur".to_string()
    }

    fn uses_hosted_pages(&self) -> bool {
        true
    }

    async fn create_customer(&self, _email: &str, _name: &str, _key: &str) -> Result<String, ProviderError> {
        self.delay().await;
        Ok(provider_id("cus"))
    }

    async fn create_setup_intent(&self, _customer: &str, _key: &str) -> Result<SetupIntent, ProviderError> {
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
            ProviderError::InvalidToken("is not a sandbox test token (try tok_visa; see the README's table)".into())
        })?;
        // The same card attached to the same customer is the same method.
        let pm_id = format!("pm_{}__{}", provider_customer_id.trim_start_matches("cus_"), card.token);
        Ok(CardDetails {
            provider_payment_method_id: pm_id,
            brand: card.brand.to_string(),
            last4: card.last4.to_string(),
            exp_month: 12,
            exp_year: 2034,
        })
    }

    async fn detach_payment_method(&self, _pm: &str) -> Result<(), ProviderError> {
        self.delay().await;
        Ok(())
    }

    async fn charge(&self, attempt: &ChargeAttempt) -> Result<ChargeOutcome, ProviderError> {
        self.delay().await;
        let card = card_of_method(&attempt.provider_payment_method_id)
            .ok_or_else(|| ProviderError::InvalidToken("unknown sandbox payment method".into()))?;
        let (status, decline_code, message) = match card.behaviour {
            Behaviour::Succeed | Behaviour::Hang => ("succeeded", "", ""),
            Behaviour::Decline(code, message) => ("failed", code, message),
            Behaviour::RequireAction => ("requires_action", "", ""),
        };
        let fresh = SandboxCharge {
            idempotency_key: attempt.idempotency_key.clone(),
            provider_payment_id: provider_id("pi"),
            provider_payment_method_id: attempt.provider_payment_method_id.clone(),
            amount_minor: attempt.amount_minor,
            currency: attempt.currency.clone(),
            status: status.into(),
            decline_code: decline_code.into(),
            message: message.into(),
            refunded_minor: 0,
            created_at: self.clock.now(),
        };
        let recorded = self.store.record_charge(&fresh).await.map_err(store_err)?;
        if recorded.amount_minor != attempt.amount_minor || recorded.currency != attempt.currency {
            return Err(ProviderError::InvalidRequest(
                "this idempotency key was used for another amount at the sandbox".into(),
            ));
        }
        if card.behaviour == Behaviour::Hang && recorded.provider_payment_id == fresh.provider_payment_id {
            // The charge went through; the answer is what never arrives in time.
            tokio::time::sleep(HANG).await;
            return Err(ProviderError::Timeout);
        }
        Ok(recorded.outcome())
    }

    async fn retrieve_charge(&self, provider_payment_id: &str) -> Result<ChargeOutcome, ProviderError> {
        self.delay().await;
        self.store
            .get_charge(provider_payment_id)
            .await
            .map_err(store_err)?
            .map(|c| c.outcome())
            .ok_or_else(|| ProviderError::InvalidRequest(format!("no such sandbox payment {provider_payment_id}")))
    }

    async fn refund(&self, attempt: &RefundAttempt) -> Result<RefundOutcome, ProviderError> {
        self.delay().await;
        match self
            .store
            .refund(&attempt.idempotency_key, &attempt.provider_payment_id, attempt.amount_minor, self.clock.now())
            .await
            .map_err(store_err)?
        {
            SandboxRefund::Refunded { provider_refund_id } => Ok(RefundOutcome::Succeeded { provider_refund_id }),
            SandboxRefund::TooLarge { refundable_minor } => Ok(RefundOutcome::Failed {
                provider_refund_id: String::new(),
                message: format!("only {refundable_minor} minor units are left to refund"),
            }),
            SandboxRefund::NotRefundable => Ok(RefundOutcome::Failed {
                provider_refund_id: String::new(),
                message: "the payment did not succeed".into(),
            }),
            SandboxRefund::UnknownCharge => Err(ProviderError::InvalidRequest("no such sandbox payment".into())),
        }
    }

    async fn complete_action(&self, provider_payment_id: &str, approve: bool) -> Result<ChargeOutcome, ProviderError> {
        let (status, code, message) = if approve {
            ("succeeded", "", "")
        } else {
            ("failed", "authentication_failed", "The customer did not pass 3-D Secure authentication.")
        };
        self.store
            .complete_charge(provider_payment_id, status, code, message)
            .await
            .map_err(store_err)?
            .map(|c| c.outcome())
            .ok_or_else(|| ProviderError::InvalidRequest(format!("no such sandbox payment {provider_payment_id}")))
    }

    fn tokenize_test_card(&self, number: &str, exp_month: u32, exp_year: u32, cvc: &str) -> Result<String, String> {
        let digits: String = number.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        let card = CARDS.iter().find(|c| c.number == digits).ok_or_else(|| {
            "This is not a sandbox test card. Use one of the test numbers, for example 4242 4242 4242 4242.".to_string()
        })?;
        let today = self.clock.now();
        if !(1..=12).contains(&exp_month) {
            return Err("The expiry month must be between 1 and 12.".into());
        }
        let year = if exp_year < 100 { 2000 + exp_year } else { exp_year };
        if (year, exp_month) < (today.year() as u32, today.month()) {
            return Err("The card has expired.".into());
        }
        let cvc_len = if card.brand == "amex" { 4 } else { 3 };
        if cvc.len() != cvc_len || !cvc.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("The security code has {cvc_len} digits."));
        }
        Ok(card.token.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// The sandbox's books in memory, for unit tests of its behaviour.
    #[derive(Default)]
    struct Books(Mutex<HashMap<String, SandboxCharge>>);

    #[async_trait]
    impl SandboxStore for Books {
        async fn record_charge(&self, c: &SandboxCharge) -> Result<SandboxCharge, String> {
            let mut m = self.0.lock().map_err(|e| e.to_string())?;
            Ok(m.entry(c.idempotency_key.clone()).or_insert_with(|| c.clone()).clone())
        }
        async fn get_charge(&self, id: &str) -> Result<Option<SandboxCharge>, String> {
            let m = self.0.lock().map_err(|e| e.to_string())?;
            Ok(m.values().find(|c| c.provider_payment_id == id).cloned())
        }
        async fn complete_charge(
            &self,
            id: &str,
            s: &str,
            d: &str,
            msg: &str,
        ) -> Result<Option<SandboxCharge>, String> {
            let mut m = self.0.lock().map_err(|e| e.to_string())?;
            Ok(m.values_mut().find(|c| c.provider_payment_id == id).map(|c| {
                if c.status == "requires_action" {
                    c.status = s.into();
                    c.decline_code = d.into();
                    c.message = msg.into();
                }
                c.clone()
            }))
        }
        async fn refund(&self, _k: &str, _id: &str, _a: i64, _n: DateTime<Utc>) -> Result<SandboxRefund, String> {
            Ok(SandboxRefund::NotRefundable)
        }
    }

    fn sandbox() -> Sandbox {
        let clock = recur_clock::ManualClock::new(DateTime::from_timestamp(1_800_000_000, 0).expect("valid"));
        Sandbox::new(Duration::ZERO, Arc::new(Books::default()), clock)
    }

    fn attempt(pm: &str, key: &str) -> ChargeAttempt {
        ChargeAttempt {
            provider_customer_id: "cus_x".into(),
            provider_payment_method_id: pm.into(),
            amount_minor: 1000,
            currency: "USD".into(),
            description: String::new(),
            idempotency_key: key.into(),
            return_url: String::new(),
            metadata: Vec::new(),
        }
    }

    #[tokio::test]
    async fn tokens_behave_as_documented() {
        let sb = sandbox();
        let visa = sb.attach_payment_method("cus_x", "tok_visa").await.expect("attach");
        assert_eq!((visa.brand.as_str(), visa.last4.as_str()), ("visa", "4242"));
        assert!(matches!(
            sb.charge(&attempt(&visa.provider_payment_method_id, "k1")).await,
            Ok(ChargeOutcome::Succeeded { .. })
        ));
        for (token, code) in [
            ("tok_decline", "generic_decline"),
            ("tok_insufficient_funds", "insufficient_funds"),
            ("tok_expired_card", "expired_card"),
            ("tok_incorrect_cvc", "incorrect_cvc"),
            ("tok_lost_card", "lost_card"),
            ("tok_stolen_card", "stolen_card"),
            ("tok_processing_error", "processing_error"),
        ] {
            let pm = sb.attach_payment_method("cus_x", token).await.expect("attach");
            match sb.charge(&attempt(&pm.provider_payment_method_id, token)).await {
                Ok(ChargeOutcome::Failed { decline_code, .. }) => assert_eq!(decline_code, code),
                other => panic!("{token}: expected a decline, got {other:?}"),
            }
        }
        let tds = sb.attach_payment_method("cus_x", "tok_3ds_required").await.expect("attach");
        let outcome = sb.charge(&attempt(&tds.provider_payment_method_id, "k3")).await.expect("charge");
        let ChargeOutcome::RequiresAction { provider_payment_id, .. } = outcome else { panic!("{outcome:?}") };
        assert!(matches!(sb.complete_action(&provider_payment_id, true).await, Ok(ChargeOutcome::Succeeded { .. })));
        assert!(matches!(sb.attach_payment_method("cus_x", "tok_nope").await, Err(ProviderError::InvalidToken(_))));
    }

    #[tokio::test]
    async fn the_same_key_is_the_same_charge() {
        let sb = sandbox();
        let visa = sb.attach_payment_method("cus_x", "tok_visa").await.expect("attach");
        let a = sb.charge(&attempt(&visa.provider_payment_method_id, "same")).await.expect("charge");
        let b = sb.charge(&attempt(&visa.provider_payment_method_id, "same")).await.expect("charge");
        assert_eq!(a, b);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_card_charges_but_answers_too_late() {
        let sb = sandbox();
        let card = sb.attach_payment_method("cus_x", "tok_timeout").await.expect("attach");
        let pm = card.provider_payment_method_id;
        let r = tokio::time::timeout(Duration::from_secs(30), sb.charge(&attempt(&pm, "k"))).await;
        assert!(r.is_err(), "answered within 30 s");
        // Asked again with the same key, the charge that went through answers at once.
        assert!(matches!(sb.charge(&attempt(&pm, "k")).await, Ok(ChargeOutcome::Succeeded { .. })));
    }

    #[test]
    fn test_numbers_are_valid_card_numbers_and_tokenize() {
        let sb = sandbox();
        for c in CARDS {
            assert!(recur_proto::cards::contains_card_number(c.number), "{} fails Luhn", c.number);
            assert!(c.number.ends_with(c.last4), "{}", c.token);
            let cvc = if c.brand == "amex" { "1234" } else { "123" };
            assert_eq!(sb.tokenize_test_card(c.number, 12, 2030, cvc).as_deref(), Ok(c.token));
        }
        assert!(sb.tokenize_test_card("4242 4242 4242 4242", 12, 30, "123").is_ok(), "two-digit years and spaces");
        assert!(sb.tokenize_test_card("4242424242424242", 1, 2020, "123").is_err(), "expired");
        assert!(sb.tokenize_test_card("4242424242424242", 13, 2030, "123").is_err(), "month 13");
        assert!(sb.tokenize_test_card("4242424242424242", 12, 2030, "12").is_err(), "short cvc");
        assert!(sb.tokenize_test_card("4111111111111111", 12, 2030, "123").is_err(), "not a test card");
    }
}
