//! A local HTTP server that answers like Stripe's REST API, as Stripe's
//! documentation describes it: form-encoded requests, bearer-key auth, JSON
//! objects and error objects (`card_error` with `decline_code`, `402`s,
//! `resource_missing`), idempotency keys (a repeated key replays the first
//! result with `Idempotent-Replayed: true`; a reused key with other
//! parameters is an `idempotency_error`; a key still in progress is a
//! `409`), Stripe's test payment methods (`pm_card_visa`,
//! `pm_card_chargeDeclinedInsufficientFunds`, …), and signed webhook events.
//!
//! Tests can make it fail the next calls of a path with a status (`500`),
//! or answer slowly (after doing the work), and read what it received.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "sk_test_recur_fake_0123456789";
pub const PUBLISHABLE_KEY: &str = "pk_test_recur_fake_0123456789";
pub const WEBHOOK_SECRET: &str = "whsec_recur_fake_0123456789";

/// A request the fake received.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub form: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Behaviour {
    Succeed,
    Decline(&'static str, &'static str),
    AuthenticationRequired,
    /// Stays `processing` (as bank debits do) until [`FakeStripe::settle_intent`].
    Processing,
}

/// Stripe's test payment methods.
const TEST_METHODS: &[(&str, &str, &str, Behaviour)] = &[
    ("pm_card_visa", "visa", "4242", Behaviour::Succeed),
    ("pm_card_mastercard", "mastercard", "4444", Behaviour::Succeed),
    ("pm_card_chargeDeclined", "visa", "0002", Behaviour::Decline("generic_decline", "Your card was declined.")),
    (
        "pm_card_chargeDeclinedInsufficientFunds",
        "visa",
        "9995",
        Behaviour::Decline("insufficient_funds", "Your card has insufficient funds."),
    ),
    ("pm_card_chargeDeclinedExpiredCard", "visa", "0069", Behaviour::Decline("expired_card", "Your card has expired.")),
    (
        "pm_card_chargeDeclinedIncorrectCvc",
        "visa",
        "0127",
        Behaviour::Decline("incorrect_cvc", "Your card's security code is incorrect."),
    ),
    ("pm_card_authenticationRequired", "visa", "3184", Behaviour::AuthenticationRequired),
    ("pm_usBankAccount_processing", "us_bank_account", "6789", Behaviour::Processing),
];

#[derive(Default)]
struct Books {
    customers: HashMap<String, Value>,
    setup_intents: HashMap<String, Value>,
    /// id → (object, behaviour)
    methods: HashMap<String, (Value, Behaviour)>,
    intents: HashMap<String, Value>,
    refunded: HashMap<String, i64>,
    /// key → (request fingerprint, stored answer; None while in progress)
    idempotency: HashMap<String, (String, Option<(u16, Value)>)>,
    received: Vec<Received>,
    fail_next: HashMap<String, VecDeque<u16>>,
    delay_next: HashMap<String, VecDeque<Duration>>,
    intents_created: usize,
    refunds_created: usize,
}

#[derive(Clone)]
pub struct FakeStripe {
    pub base_url: String,
    books: Arc<Mutex<Books>>,
    stop: Arc<Mutex<Option<tokio::sync::oneshot::Sender<()>>>>,
}

/// Ids shaped like Stripe's: a prefix and 24 random alphanumerics.
fn random_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_body())
}

fn random_body() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    (0..24).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

fn error(status: u16, kind: &str, message: &str, extra: Value) -> (u16, Value) {
    let mut e = json!({"type": kind, "message": message});
    if let (Value::Object(e), Value::Object(x)) = (&mut e, extra) {
        e.extend(x);
    }
    (status, json!({"error": e}))
}

fn missing(param: &str, id: &str, what: &str) -> (u16, Value) {
    error(
        404,
        "invalid_request_error",
        &format!("No such {what}: '{id}'"),
        json!({"code": "resource_missing", "param": param}),
    )
}

impl FakeStripe {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> FakeStripe {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake Stripe");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let fake = FakeStripe {
            base_url,
            books: Arc::new(Mutex::new(Books::default())),
            stop: Arc::new(Mutex::new(Some(tx))),
        };
        let app = Router::new().fallback(handle).with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        fake
    }

    pub fn stop(&self) {
        if let Some(tx) = self.books_stop() {
            let _ = tx.send(());
        }
    }

    fn books_stop(&self) -> Option<tokio::sync::oneshot::Sender<()>> {
        self.stop.lock().ok()?.take()
    }

    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next `n` calls to `path` (e.g. `/v1/payment_intents`) fail with
    /// `status` before doing anything.
    pub fn fail_next(&self, path: &str, status: u16, n: usize) {
        self.books().fail_next.entry(path.to_string()).or_default().extend(std::iter::repeat_n(status, n));
    }

    /// The next call to `path` does its work, then answers after `delay`.
    pub fn delay_next(&self, path: &str, delay: Duration) {
        self.books().delay_next.entry(path.to_string()).or_default().push_back(delay);
    }

    pub fn received(&self) -> Vec<Received> {
        self.books().received.clone()
    }

    /// PaymentIntents created (a replayed key creates none).
    pub fn intents_created(&self) -> usize {
        self.books().intents_created
    }

    pub fn refunds_created(&self) -> usize {
        self.books().refunds_created
    }

    /// Moves a `processing` PaymentIntent to `status` (e.g. `succeeded`),
    /// as the bank's answer would.
    pub fn settle_intent(&self, id: &str, status: &str) {
        if let Some(pi) = self.books().intents.get_mut(id) {
            pi["status"] = json!(status);
        }
    }

    pub fn intent(&self, id: &str) -> Option<Value> {
        self.books().intents.get(id).cloned()
    }

    /// The customer confirmed a SetupIntent in Stripe.js with `test_pm`.
    pub fn confirm_setup_intent(&self, seti: &str, test_pm: &str) -> Option<String> {
        let mut b = self.books();
        let customer = b.setup_intents.get(seti)?.get("customer")?.as_str()?.to_string();
        let (pm, behaviour) = new_method(test_pm, Some(&customer))?;
        let id = pm["id"].as_str()?.to_string();
        b.methods.insert(id.clone(), (pm, behaviour));
        let s = b.setup_intents.get_mut(seti)?;
        s["status"] = json!("succeeded");
        s["payment_method"] = json!(id);
        Some(id)
    }

    /// The customer finished (or failed) 3-D Secure on Stripe's page.
    pub fn complete_authentication(&self, pi: &str, approve: bool) -> Option<Value> {
        let mut b = self.books();
        let intent = b.intents.get_mut(pi)?;
        if approve {
            intent["status"] = json!("succeeded");
            intent["next_action"] = Value::Null;
        } else {
            intent["status"] = json!("requires_payment_method");
            intent["next_action"] = Value::Null;
            intent["last_payment_error"] = json!({"type": "card_error", "code": "payment_intent_authentication_failure",
                "message": "The provided PaymentMethod has failed authentication."});
        }
        Some(intent.clone())
    }

    /// A webhook event for `object` and its `Stripe-Signature` header,
    /// signed at unix time `t`.
    pub fn event(kind: &str, object: Value, t: i64) -> (Vec<u8>, String) {
        let body = json!({
            "id": random_id("evt"),
            "object": "event",
            "api_version": "2024-06-20",
            "created": t,
            "type": kind,
            "livemode": false,
            "data": {"object": object},
        })
        .to_string()
        .into_bytes();
        let header = recur_payment::domain::webhook::sign(&body, WEBHOOK_SECRET, t);
        (body, header)
    }
}

fn new_method(test_pm: &str, customer: Option<&str>) -> Option<(Value, Behaviour)> {
    let (_, brand, last4, behaviour) = TEST_METHODS.iter().find(|(id, ..)| *id == test_pm)?;
    let pm = json!({
        "id": random_id("pm"),
        "object": "payment_method",
        "type": "card",
        "customer": customer,
        "card": {"brand": brand, "last4": last4, "exp_month": 8, "exp_year": 2031, "funding": "credit"},
    });
    Some((pm, *behaviour))
}

fn form_of(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn get<'a>(form: &'a [(String, String)], key: &str) -> Option<&'a str> {
    form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn metadata(form: &[(String, String)]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in form {
        if let Some(key) = k.strip_prefix("metadata[").and_then(|r| r.strip_suffix(']')) {
            m.insert(key.to_string(), json!(v));
        }
    }
    Value::Object(m)
}

async fn handle(State(fake): State<FakeStripe>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let form = form_of(&body);
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    fake.books().received.push(Received {
        method: method.to_string(),
        path: path.clone(),
        idempotency_key: key.clone(),
        form: form.clone(),
    });
    let respond = |(status, body): (u16, Value), replayed: bool| {
        let mut r = (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), body.to_string())
            .into_response();
        r.headers_mut().insert("content-type", "application/json".parse().expect("header"));
        r.headers_mut().insert("request-id", random_id("req").parse().expect("header"));
        if replayed {
            r.headers_mut().insert("idempotent-replayed", "true".parse().expect("header"));
        }
        r
    };
    let authorized =
        headers.get("authorization").and_then(|v| v.to_str().ok()).is_some_and(|v| v == format!("Bearer {SECRET_KEY}"));
    if !authorized {
        return respond(
            error(401, "invalid_request_error", "Invalid API Key provided: sk_test_****", json!({})),
            false,
        );
    }
    // Failures injected before the endpoint runs: nothing is stored.
    let injected = fake.books().fail_next.get_mut(&path).and_then(VecDeque::pop_front);
    if let Some(status) = injected {
        return respond(error(status, "api_error", "Sorry, something went wrong on Stripe's end.", json!({})), false);
    }
    let fingerprint = format!("{method} {path} {}", String::from_utf8_lossy(&body));
    if method == Method::POST {
        let Some(key) = key.clone() else {
            // Recur always sends one; the fake insists, to prove it.
            return respond(
                error(400, "invalid_request_error", "This fake requires an Idempotency-Key on every POST.", json!({})),
                false,
            );
        };
        let mut b = fake.books();
        match b.idempotency.get(&key) {
            Some((fp, _)) if *fp != fingerprint => {
                return respond(
                    error(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                        json!({}),
                    ),
                    false,
                );
            }
            Some((_, None)) => {
                return respond(
                    error(
                        409,
                        "idempotency_error",
                        "There is currently another in-progress request using this Idempotent Key.",
                        json!({"code": "idempotency_key_in_use"}),
                    ),
                    false,
                );
            }
            Some((_, Some(stored))) => return respond(stored.clone(), true),
            None => {
                b.idempotency.insert(key, (fingerprint, None));
            }
        }
    }
    // The work goes on even when the client stops waiting (as on Stripe):
    // its answer is what a retry with the same key gets.
    let worker = fake.clone();
    let post_key = if method == Method::POST { key } else { None };
    let work = tokio::spawn(async move {
        let answer = {
            let mut b = worker.books();
            route(&mut b, &worker.base_url, &method, &path, &form)
        };
        let delay = worker.books().delay_next.get_mut(&path).and_then(VecDeque::pop_front);
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if let Some(key) = post_key {
            let mut b = worker.books();
            if let Some(entry) = b.idempotency.get_mut(&key) {
                entry.1 = Some(answer.clone());
            }
        }
        answer
    });
    let answer =
        work.await.unwrap_or_else(|_| (500, json!({"error": {"type": "api_error", "message": "fake failed"}})));
    respond(answer, false)
}

fn route(b: &mut Books, base: &str, method: &Method, path: &str, form: &[(String, String)]) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["v1", "customers"]) => {
            let c = json!({"id": random_id("cus"), "object": "customer", "email": get(form, "email"),
                "name": get(form, "name"), "metadata": metadata(form)});
            b.customers.insert(c["id"].as_str().unwrap_or_default().to_string(), c.clone());
            (200, c)
        }
        ("POST", ["v1", "setup_intents"]) => {
            let customer = get(form, "customer").unwrap_or_default();
            if !b.customers.contains_key(customer) {
                return missing("customer", customer, "customer");
            }
            let id = random_id("seti");
            let s = json!({"id": id, "object": "setup_intent", "client_secret": format!("{id}_secret_{}", random_body()),
                "customer": customer, "status": "requires_payment_method", "usage": get(form, "usage"),
                "payment_method": null});
            b.setup_intents.insert(id, s.clone());
            (200, s)
        }
        ("GET", ["v1", "setup_intents", id]) => match b.setup_intents.get(*id) {
            Some(s) => (200, s.clone()),
            None => missing("intent", id, "setupintent"),
        },
        ("POST", ["v1", "payment_methods"]) => {
            let token = get(form, "card[token]").unwrap_or_default();
            let test_pm = match token {
                "tok_visa" => "pm_card_visa",
                "tok_mastercard" => "pm_card_mastercard",
                "tok_chargeDeclined" => "pm_card_chargeDeclined",
                _ => return missing("card[token]", token, "token"),
            };
            let Some((pm, behaviour)) = new_method(test_pm, None) else { return missing("card", token, "token") };
            b.methods.insert(pm["id"].as_str().unwrap_or_default().to_string(), (pm.clone(), behaviour));
            (200, pm)
        }
        ("GET", ["v1", "payment_methods", id]) => match b.methods.get(*id) {
            Some((pm, _)) => (200, pm.clone()),
            None => missing("payment_method", id, "PaymentMethod"),
        },
        ("POST", ["v1", "payment_methods", id, "attach"]) => {
            let customer = get(form, "customer").unwrap_or_default().to_string();
            if !b.customers.contains_key(&customer) {
                return missing("customer", &customer, "customer");
            }
            // A test method attaches as a new method, as on Stripe.
            if let Some((pm, behaviour)) = new_method(id, Some(&customer)) {
                b.methods.insert(pm["id"].as_str().unwrap_or_default().to_string(), (pm.clone(), behaviour));
                return (200, pm);
            }
            match b.methods.get_mut(*id) {
                Some((pm, _)) => {
                    pm["customer"] = json!(customer);
                    (200, pm.clone())
                }
                None => missing("payment_method", id, "PaymentMethod"),
            }
        }
        ("POST", ["v1", "payment_methods", id, "detach"]) => match b.methods.get_mut(*id) {
            Some((pm, _)) => {
                pm["customer"] = Value::Null;
                (200, pm.clone())
            }
            None => missing("payment_method", id, "PaymentMethod"),
        },
        ("POST", ["v1", "payment_intents"]) => create_intent(b, form),
        ("POST", ["v1", "payment_intents", id, "confirm"]) => {
            let Some(pi) = b.intents.get_mut(*id) else { return missing("intent", id, "payment_intent") };
            let return_url = get(form, "return_url").unwrap_or_default();
            pi["status"] = json!("requires_action");
            pi["next_action"] = json!({"type": "redirect_to_url",
                "redirect_to_url": {"url": format!("{base}/3d_secure/{id}"), "return_url": return_url}});
            (200, pi.clone())
        }
        ("GET", ["v1", "payment_intents", id]) => match b.intents.get(*id) {
            Some(pi) => (200, pi.clone()),
            None => missing("intent", id, "payment_intent"),
        },
        ("POST", ["v1", "refunds"]) => {
            let pi_id = get(form, "payment_intent").unwrap_or_default().to_string();
            let Some(pi) = b.intents.get(&pi_id).cloned() else {
                return missing("payment_intent", &pi_id, "payment_intent");
            };
            if pi["status"] != json!("succeeded") {
                return error(
                    400,
                    "invalid_request_error",
                    "This PaymentIntent has no successful charge to refund.",
                    json!({"code": "charge_not_refundable"}),
                );
            }
            let total = pi["amount"].as_i64().unwrap_or_default();
            let done = b.refunded.get(&pi_id).copied().unwrap_or_default();
            let amount = get(form, "amount").and_then(|a| a.parse::<i64>().ok()).unwrap_or(total - done);
            if done >= total {
                return error(
                    400,
                    "invalid_request_error",
                    "Charge has already been refunded.",
                    json!({"code": "charge_already_refunded"}),
                );
            }
            if amount > total - done {
                return error(
                    400,
                    "invalid_request_error",
                    &format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({})", total - done),
                    json!({"code": "amount_too_large", "param": "amount"}),
                );
            }
            b.refunded.insert(pi_id.clone(), done + amount);
            b.refunds_created += 1;
            (
                200,
                json!({"id": random_id("re"), "object": "refund", "amount": amount, "currency": pi["currency"],
                "payment_intent": pi_id, "status": "succeeded", "reason": get(form, "reason"), "metadata": metadata(form)}),
            )
        }
        _ => error(404, "invalid_request_error", &format!("Unrecognized request URL ({method} {path})."), json!({})),
    }
}

fn create_intent(b: &mut Books, form: &[(String, String)]) -> (u16, Value) {
    let amount = get(form, "amount").and_then(|a| a.parse::<i64>().ok()).unwrap_or_default();
    if amount < 1 {
        return error(400, "invalid_request_error", "Amount must be at least 1", json!({"param": "amount"}));
    }
    let customer = get(form, "customer").unwrap_or_default();
    if !b.customers.contains_key(customer) {
        return missing("customer", customer, "customer");
    }
    let pm_id = get(form, "payment_method").unwrap_or_default();
    let Some((_, behaviour)) = b.methods.get(pm_id).cloned() else {
        return missing("payment_method", pm_id, "PaymentMethod");
    };
    b.intents_created += 1;
    let id = random_id("pi");
    let mut pi = json!({"id": id, "object": "payment_intent", "amount": amount, "currency": get(form, "currency"),
        "customer": customer, "payment_method": pm_id, "description": get(form, "description"),
        "metadata": metadata(form), "status": "succeeded", "latest_charge": random_id("ch"), "next_action": null,
        "last_payment_error": null});
    let answer = match behaviour {
        Behaviour::Succeed => (200, pi.clone()),
        Behaviour::Processing => {
            pi["status"] = json!("processing");
            (200, pi.clone())
        }
        Behaviour::Decline(code, message) => {
            pi["status"] = json!("requires_payment_method");
            pi["last_payment_error"] =
                json!({"type": "card_error", "code": "card_declined", "decline_code": code, "message": message});
            error(
                402,
                "card_error",
                message,
                json!({"code": "card_declined", "decline_code": code, "payment_intent": pi.clone()}),
            )
        }
        Behaviour::AuthenticationRequired => {
            pi["status"] = json!("requires_payment_method");
            pi["last_payment_error"] = json!({"type": "card_error", "code": "authentication_required",
                "decline_code": "authentication_required", "message": "This payment requires authentication."});
            error(
                402,
                "card_error",
                "Your card was declined. This transaction requires authentication.",
                json!({"code": "authentication_required", "decline_code": "authentication_required", "payment_intent": pi.clone()}),
            )
        }
    };
    b.intents.insert(id, pi);
    answer
}
