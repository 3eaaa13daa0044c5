//! The hosted pages, served over plain HTTP on the service's own port under
//! `/hosted/`: adding a card (the sandbox plays the provider's card form),
//! the 3-D Secure challenge, and the billing portal. No JavaScript: forms
//! post back to the page, every piece of data is escaped, and the only
//! credential is the signed, expiring token in the URL. Also the endpoint a
//! provider's webhooks can be pointed at.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use recur_error::AppError;

use crate::domain::pages::{PageKind, PageToken, PageTokenError, escape, layout, with_query};
use crate::domain::{Payment, PaymentStatus};
use crate::gateway::{Gateway, PAYMENT_METHOD_PAGE_TTL};

type Shared = Arc<Gateway>;

pub fn router(gateway: Shared) -> Router {
    Router::new()
        .route("/hosted/done", get(done))
        .route("/hosted/payment-method/{token}", get(card_form).post(card_submit))
        .route("/hosted/3ds/{token}", get(challenge).post(challenge_submit))
        .route("/hosted/portal/{token}", get(portal))
        .route("/hosted/portal/{token}/add", get(portal_add))
        .route("/hosted/portal/{token}/default", post(portal_default))
        .route("/hosted/portal/{token}/remove", post(portal_remove))
        .route("/hosted/webhooks/{provider}/{tenant}", post(webhook))
        .with_state(gateway)
}

/// A page, with headers that keep it out of caches, frames and referrers.
fn html(status: StatusCode, title: &str, body: &str) -> Response {
    let mut r = (status, layout(title, body)).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    r
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    html(status, title, &format!("<p>{}</p>", escape(text)))
}

fn app_error(e: AppError) -> Response {
    let status = match e.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument => StatusCode::UNPROCESSABLE_ENTITY,
        tonic::Code::FailedPrecondition | tonic::Code::AlreadyExists | tonic::Code::Aborted => StatusCode::CONFLICT,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e.message(), "hosted page failed");
        return message(status, "Something went wrong", "Please try again in a moment.");
    }
    message(status, "That did not work", e.message())
}

/// Opens the page token, or answers with why not.
fn open(g: &Gateway, token: &str, kind: PageKind) -> Result<PageToken, Box<Response>> {
    match PageToken::open(token, &g.settings.page_key, g.clock.now()) {
        Ok(t) if t.kind == kind => Ok(t),
        Err(PageTokenError::Expired) => {
            Err(Box::new(message(StatusCode::GONE, "This link has expired", "Ask for a new link where you started.")))
        }
        _ => Err(Box::new(message(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "Check the address, or ask for a new link.",
        ))),
    }
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(|s| s.trim()).unwrap_or_default()
}

async fn done() -> Response {
    message(StatusCode::OK, "All done", "You can close this window and return to where you started.")
}

fn card_form_html(token: &str, name: &str, exp_month: &str, exp_year: &str, error: Option<&str>) -> String {
    let error = error.map(|e| format!(r#"<p class="error" role="alert">{}</p>"#, escape(e))).unwrap_or_default();
    format!(
        r#"{error}
<form method="post" action="/hosted/payment-method/{token}" autocomplete="off">
<label for="name">Name on card</label>
<input type="text" id="name" name="name" value="{name}" maxlength="100">
<label for="number">Card number</label>
<input type="text" id="number" name="number" inputmode="numeric" autocomplete="off" maxlength="23" required>
<div class="row">
<div><label for="exp_month">Expiry month</label><input type="number" id="exp_month" name="exp_month" min="1" max="12" value="{exp_month}" required></div>
<div><label for="exp_year">Expiry year</label><input type="number" id="exp_year" name="exp_year" min="2000" max="2100" value="{exp_year}" required></div>
<div><label for="cvc">Security code</label><input type="text" id="cvc" name="cvc" inputmode="numeric" maxlength="4" required></div>
</div>
<button type="submit" id="save">Save card</button>
</form>
<p class="note">Sandbox: use a test card such as 4242 4242 4242 4242, any future expiry and any 3-digit code.</p>"#,
        token = escape(token),
        name = escape(name),
        exp_month = escape(exp_month),
        exp_year = escape(exp_year),
    )
}

async fn card_form(State(g): State<Shared>, Path(token): Path<String>) -> Response {
    let t = match open(&g, &token, PageKind::PaymentMethod) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let customer = match g.customer(&t.tenant, &t.subject, "customer").await {
        Ok(c) => c,
        Err(e) => return app_error(e),
    };
    html(StatusCode::OK, "Add a payment method", &card_form_html(&token, &customer.name, "", "", None))
}

async fn card_submit(
    State(g): State<Shared>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let t = match open(&g, &token, PageKind::PaymentMethod) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let raw_name = field(&form, "name");
    // A card number typed into the name is never echoed back; a NUL
    // character cannot be stored.
    let refused = if recur_proto::cards::contains_card_number(raw_name) {
        Some("That looks like a card number: put it in the card number field, not the name.")
    } else if raw_name.contains('\0') {
        Some("The name holds a character that cannot be saved: type it again.")
    } else {
        None
    };
    let name = if refused.is_some() { "" } else { raw_name };
    let (month, year) = (field(&form, "exp_month"), field(&form, "exp_year"));
    let again = |error: &str| {
        html(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Add a payment method",
            &card_form_html(&token, name, month, year, Some(error)),
        )
    };
    if let Some(why) = refused {
        return again(why);
    }
    let (Ok(exp_month), Ok(exp_year)) = (month.parse::<u32>(), year.parse::<u32>()) else {
        return again("Enter the expiry month and year as numbers.");
    };
    let customer = match g.customer(&t.tenant, &t.subject, "customer").await {
        Ok(c) => c,
        Err(e) => return app_error(e),
    };
    let Some(provider) = g.providers.named(&t.tenant, &customer.provider).filter(|p| p.uses_hosted_pages()) else {
        return message(StatusCode::CONFLICT, "Not available", "This customer adds cards on the provider's own page.");
    };
    // The number goes to the provider's tokenizer and nowhere else: it is
    // neither stored nor logged, and never echoed back.
    let token_id = match provider.tokenize_test_card(field(&form, "number"), exp_month, exp_year, field(&form, "cvc")) {
        Ok(t) => t,
        Err(e) => return again(&e),
    };
    let exp_year = if exp_year < 100 { 2000 + exp_year } else { exp_year };
    match g.attach(&t.tenant, &customer.id, &token_id, name, false, Some((exp_month, exp_year))).await {
        Ok((pm, _)) if !t.return_url.is_empty() => {
            Redirect::to(&with_query(&t.return_url, &[("payment_method_id", &pm.id), ("status", "succeeded")]))
                .into_response()
        }
        Ok((pm, _)) => html(
            StatusCode::OK,
            "Card saved",
            &format!(
                r#"<p id="result">Saved {} ending in {}.</p><p>You can close this window.</p>"#,
                escape(&pm.brand),
                escape(&pm.last4)
            ),
        ),
        Err(e) => app_error(e),
    }
}

fn payment_summary(p: &Payment) -> String {
    let description =
        if p.description.is_empty() { String::new() } else { format!("<p>{}</p>", escape(&p.description)) };
    format!(
        r#"<p id="amount"><strong>{} {}</strong></p>{description}"#,
        escape(&p.amount.amount().to_string()),
        escape(p.amount.currency().code())
    )
}

fn continue_link(return_url: &str, p: &Payment) -> String {
    if return_url.is_empty() {
        "<p>You can close this window.</p>".into()
    } else {
        let url = with_query(return_url, &[("payment_id", &p.id), ("status", p.status.as_str())]);
        format!(r#"<p><a id="continue" href="{}">Continue</a></p>"#, escape(&url))
    }
}

async fn challenge(State(g): State<Shared>, Path(token): Path<String>) -> Response {
    let t = match open(&g, &token, PageKind::ThreeDSecure) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let p = match g.get_payment(&t.tenant, &t.subject, "payment").await {
        Ok(p) => p,
        Err(e) => return app_error(e),
    };
    if p.status != PaymentStatus::RequiresAction {
        return html(
            StatusCode::OK,
            "Payment authentication",
            &format!(
                r#"{}<p id="result">This payment is {}.</p>{}"#,
                payment_summary(&p),
                escape(p.status.as_str()),
                continue_link(&t.return_url, &p)
            ),
        );
    }
    html(
        StatusCode::OK,
        "Confirm this payment",
        &format!(
            r#"{}<p>Your bank asks you to confirm this payment (3-D Secure, sandbox).</p>
<form method="post" action="/hosted/3ds/{token}">
<button type="submit" name="action" value="approve" id="approve">Complete authentication</button>
<button type="submit" name="action" value="fail" id="fail">Fail authentication</button>
</form>"#,
            payment_summary(&p),
            token = escape(&token)
        ),
    )
}

async fn challenge_submit(
    State(g): State<Shared>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let t = match open(&g, &token, PageKind::ThreeDSecure) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let approve = match field(&form, "action") {
        "approve" => true,
        "fail" => false,
        _ => return message(StatusCode::UNPROCESSABLE_ENTITY, "That did not work", "Choose one of the two buttons."),
    };
    match g.complete_action(&t.tenant, &t.subject, approve).await {
        Ok(p) if !t.return_url.is_empty() => {
            Redirect::to(&with_query(&t.return_url, &[("payment_id", &p.id), ("status", p.status.as_str())]))
                .into_response()
        }
        Ok(p) => html(
            StatusCode::OK,
            "Payment authentication",
            &format!(
                r#"{}<p id="result">This payment is {}.</p><p>You can close this window.</p>"#,
                payment_summary(&p),
                escape(p.status.as_str())
            ),
        ),
        Err(e) => app_error(e),
    }
}

async fn portal(State(g): State<Shared>, Path(token): Path<String>) -> Response {
    let t = match open(&g, &token, PageKind::Portal) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let (customer, methods) = match g.list_methods(&t.tenant, &t.subject).await {
        Ok(x) => x,
        Err(e) => return app_error(e),
    };
    let tok = escape(&token);
    let mut rows = String::new();
    for m in &methods {
        let is_default = customer.default_payment_method_id.as_deref() == Some(m.id.as_str());
        let id = escape(&m.id);
        let make_default = if is_default {
            r#"<span class="badge">Default</span>"#.to_string()
        } else {
            format!(
                r#"<form class="inline" method="post" action="/hosted/portal/{tok}/default"><input type="hidden" name="payment_method_id" value="{id}"><button type="submit" id="default-{id}">Make default</button></form>"#
            )
        };
        rows.push_str(&format!(
            r#"<tr id="pm-{id}"><td>{brand} ···· {last4}<br><span class="note">{name} · expires {month:02}/{year}</span></td><td>{make_default}<form class="inline" method="post" action="/hosted/portal/{tok}/remove"><input type="hidden" name="payment_method_id" value="{id}"><button type="submit" id="remove-{id}">Remove</button></form></td></tr>"#,
            brand = escape(&m.brand),
            last4 = escape(&m.last4),
            name = escape(&m.name),
            month = m.exp_month,
            year = m.exp_year,
        ));
    }
    let list = if methods.is_empty() {
        r#"<p id="empty">No payment methods yet.</p>"#.to_string()
    } else {
        format!("<table>{rows}</table>")
    };
    let add = if g.providers.named(&t.tenant, &customer.provider).is_some_and(|p| p.uses_hosted_pages()) {
        format!(r#"<p><a id="add" href="/hosted/portal/{tok}/add">Add a payment method</a></p>"#)
    } else {
        String::new()
    };
    let back = if t.return_url.is_empty() {
        String::new()
    } else {
        format!(r#"<p><a id="return" href="{}">Return</a></p>"#, escape(&t.return_url))
    };
    let who = if customer.name.is_empty() { customer.email.clone() } else { customer.name.clone() };
    html(
        StatusCode::OK,
        "Billing",
        &format!(r#"<p>Payment methods of <strong>{}</strong></p>{list}{add}{back}"#, escape(&who)),
    )
}

fn back_to_portal(token: &str) -> Response {
    Redirect::to(&format!("/hosted/portal/{token}")).into_response()
}

async fn portal_add(State(g): State<Shared>, Path(token): Path<String>) -> Response {
    let t = match open(&g, &token, PageKind::Portal) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    // Back to this portal afterwards (an absolute URL, as return URLs are).
    let portal_url = format!("{}/hosted/portal/{token}", g.settings.public_url);
    let (url, _) = g.page_url(PageKind::PaymentMethod, &t.tenant, &t.subject, &portal_url, PAYMENT_METHOD_PAGE_TTL);
    Redirect::to(&url).into_response()
}

async fn portal_default(
    State(g): State<Shared>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let t = match open(&g, &token, PageKind::Portal) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match g.set_default(&t.tenant, &t.subject, field(&form, "payment_method_id")).await {
        Ok(()) => back_to_portal(&token),
        Err(e) => app_error(e),
    }
}

async fn portal_remove(
    State(g): State<Shared>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let t = match open(&g, &token, PageKind::Portal) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match g.remove_method(&t.tenant, &t.subject, field(&form, "payment_method_id")).await {
        Ok(_) => back_to_portal(&token),
        Err(e) => app_error(e),
    }
}

/// Where a provider delivers events: `/hosted/webhooks/stripe/<tenant>`.
/// The signature (checked with the tenant's secret) is the credential.
async fn webhook(
    State(g): State<Shared>,
    Path((provider, tenant)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = |status: StatusCode, value: serde_json::Value| {
        (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
    };
    if !recur_auth::is_valid_tenant_id(&tenant) {
        return json(StatusCode::NOT_FOUND, serde_json::json!({"error": "unknown tenant"}));
    }
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match g.handle_webhook(&tenant, &provider, &body, signature).await {
        Ok(r) => json(
            StatusCode::OK,
            serde_json::json!({"received": true, "handled": r.handled, "event": r.event_id, "payment": r.payment_id}),
        ),
        Err(e) if e.code() == tonic::Code::Internal || e.code() == tonic::Code::Unavailable => {
            tracing::warn!(error = %e.message(), "webhook not processed; the provider will deliver it again");
            json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"error": "try again"}))
        }
        Err(e) => json(StatusCode::BAD_REQUEST, serde_json::json!({"error": e.reason(), "message": e.message()})),
    }
}
