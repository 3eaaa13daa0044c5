//! One sign-up produces spans in signup, pricing, catalog, payment-gateway
//! and subscription that share one trace id: W3C trace context is extracted
//! from incoming metadata and injected into every outgoing call. Spans are
//! collected with an in-memory exporter; no collector is needed.

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use recur_config::LogFormat;
use recur_e2e::{Backend, TestApp, create_monthly_plan};
use recur_proto::pricing::v1 as pricing;
use recur_proto::signup::v1 as su;
use tracing_opentelemetry_ext::current_trace_id;

mod tracing_opentelemetry_ext {
    use opentelemetry::trace::{TraceContextExt, TraceId};

    /// The trace id the current span carries, through the subscriber's
    /// OpenTelemetry layer.
    pub fn current_trace_id() -> TraceId {
        let mut md = tonic::metadata::MetadataMap::new();
        recur_telemetry::inject_current(&mut md);
        let headers = md.into_headers();
        recur_telemetry::extract(&headers).span().span_context().trace_id()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_signup_is_one_trace_across_five_services() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    recur_telemetry::install("warn", LogFormat::Text, &provider).expect("the only subscriber of this test binary");

    let app = TestApp::spawn(Backend::SqliteMemory).await.expect("app");
    let mut c = app.clients("traced");
    let plan = create_monthly_plan(&mut c, "30", None).await;

    // The caller's own trace: its context rides in the request metadata.
    let root = tracing::info_span!("checkout page");
    let (request, client_trace) = {
        let _entered = root.enter();
        let mut request = tonic::Request::new(su::CreateSignupRequest {
            action: su::SignupAction::CreateAndFinalize as i32,
            customer: Some(su::CustomerInput {
                name: "Tess".into(),
                email: "tess@t.example".into(),
                ..Default::default()
            }),
            quote: Some(su::QuoteInput {
                offerings: vec![pricing::CartOffering {
                    offering_id: plan.offering_id.clone(),
                    rate_id: plan.rate_id.clone(),
                    items: vec![],
                }],
                ..Default::default()
            }),
            ..Default::default()
        });
        recur_telemetry::inject_current(request.metadata_mut());
        (request, current_trace_id())
    };
    assert_ne!(client_trace, TraceId::INVALID);
    let done = c.signup.create_signup(request).await.expect("sign-up").into_inner().signup.expect("signup");
    assert!(done.contract_id.starts_with("sub_"));
    assert!(done.payment.is_none(), "CREATE_AND_FINALIZE collects no payment method");
    drop(root);
    provider.force_flush().expect("flush spans");

    let spans = exporter.get_finished_spans().expect("spans");
    let in_trace: Vec<_> = spans.iter().filter(|s| s.span_context.trace_id() == client_trace).collect();
    let names: Vec<String> = in_trace.iter().map(|s| s.name.to_string()).collect();
    for service in [
        "recur.signup.v1.SignupService/CreateSignup",
        "recur.pricing.v1.PricingService/Quote",
        "recur.catalog.v1.CatalogService/",
        "recur.subscription.v1.AccountService/CreateAccount",
        "recur.subscription.v1.SubscriptionService/CreateSubscription",
    ] {
        assert!(names.iter().any(|n| n.starts_with(service)), "no {service} span in the caller's trace: {names:?}");
    }
    // Every server span has its parent inside the trace; the sign-up span's
    // parent is the caller's own span.
    let ids: Vec<SpanId> = in_trace.iter().map(|s| s.span_context.span_id()).collect();
    for s in in_trace.iter().filter(|s| s.name.starts_with("recur.")) {
        assert!(ids.contains(&s.parent_span_id), "{} has a parent outside the trace", s.name);
    }
    let caller_span = in_trace.iter().find(|s| s.name == "checkout page").expect("the caller's span");
    let signup = in_trace.iter().find(|s| s.name.starts_with("recur.signup")).expect("signup span");
    assert_eq!(signup.parent_span_id, caller_span.span_context.span_id());
    let tenant = signup.attributes.iter().find(|kv| kv.key.as_str() == "tenant_id").map(|kv| kv.value.to_string());
    assert_eq!(tenant.as_deref(), Some("traced"));

    // The payment gateway joins the trace when a payment is collected.
    let paid = c
        .signup
        .create_signup(su::CreateSignupRequest {
            action: su::SignupAction::CreateWithPaymentMethod as i32,
            customer: Some(su::CustomerInput {
                name: "Pat".into(),
                email: "pat@t.example".into(),
                ..Default::default()
            }),
            quote: Some(su::QuoteInput {
                offerings: vec![pricing::CartOffering {
                    offering_id: plan.offering_id.clone(),
                    rate_id: plan.rate_id.clone(),
                    items: vec![],
                }],
                ..Default::default()
            }),
            payment_method: Some(su::PaymentMethodInput {
                payment_method_name: String::new(),
                payment_token: "tok_visa".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("create")
        .into_inner()
        .signup
        .expect("signup");
    exporter.reset();
    c.signup
        .update_signup(su::UpdateSignupRequest {
            session_id: paid.session_id.clone(),
            action: su::SignupAction::Finalize as i32,
            ..Default::default()
        })
        .await
        .expect("finalize");
    provider.force_flush().expect("flush spans");
    let spans = exporter.get_finished_spans().expect("spans");
    let finalize =
        spans.iter().find(|s| s.name == "recur.signup.v1.SignupService/UpdateSignup").expect("finalize span");
    let trace = finalize.span_context.trace_id();
    let services: std::collections::BTreeSet<&str> =
        spans.iter().filter(|s| s.span_context.trace_id() == trace).filter_map(|s| s.name.split('/').next()).collect();
    for service in [
        "recur.signup.v1.SignupService",
        "recur.pricing.v1.PricingService",
        "recur.catalog.v1.CatalogService",
        "recur.payment.v1.PaymentGatewayService",
        "recur.subscription.v1.SubscriptionService",
    ] {
        assert!(services.contains(service), "{service} missing from the FINALIZE trace: {services:?}");
    }
    app.stop().await;
}
