//! Logs and traces for every Recur process.
//!
//! - Logs are JSON lines on stderr (or plain text), filtered by `RECUR_LOG`.
//! - Every `tracing` span is also an OpenTelemetry span, so trace ids exist
//!   and propagate even when nothing is exported; when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are exported there by OTLP/gRPC.
//! - [`extract`] and [`inject`] carry W3C trace context (`traceparent`,
//!   `tracestate`) across gRPC calls.

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use recur_config::{Config, LogFormat};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

pub use opentelemetry_sdk::trace::SdkTracerProvider as TracerProvider;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("RECUR_LOG: {0}")]
    Filter(String),
    #[error("OTLP exporter: {0}")]
    Exporter(String),
    #[error("a global subscriber is already installed")]
    AlreadyInstalled,
}

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes spans.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Flushes and stops span export. Call once, at the end of the process.
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "telemetry shutdown");
        }
    }
}

/// Installs the global subscriber for a process. Must run inside a Tokio
/// runtime when an OTLP endpoint is configured (the exporter uses tonic).
pub fn init(default_service_name: &str, config: &Config) -> Result<Telemetry, TelemetryError> {
    let service_name = config.otel_service_name.clone().unwrap_or_else(|| default_service_name.to_string());
    let mut builder =
        SdkTracerProvider::builder().with_resource(Resource::builder().with_service_name(service_name).build());
    if let Some(endpoint) = &config.otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    install(&config.log_filter, config.log_format, &provider)?;
    Ok(Telemetry { provider })
}

/// Installs the global subscriber with a given tracer provider (tests use an
/// in-memory exporter this way).
pub fn install(filter: &str, format: LogFormat, provider: &SdkTracerProvider) -> Result<(), TelemetryError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|e| TelemetryError::Filter(e.to_string()))?;
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(std::io::stderr).boxed(),
    };
    // Spans are traced at INFO and above whatever the log filter says, so a
    // quiet log does not break traces.
    let traces = tracing_opentelemetry::layer().with_tracer(provider.tracer("recur")).with_filter(LevelFilter::INFO);
    Registry::default()
        .with(logs.with_filter(env_filter))
        .with(traces)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The trace context a caller sent in its request headers.
pub fn extract(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes `cx` into outgoing request metadata as W3C trace context.
pub fn inject(cx: &Context, metadata: &mut tonic::metadata::MetadataMap) {
    TraceContextPropagator::new().inject_context(cx, &mut MetadataInjector(metadata));
}

/// Writes the current span's context into outgoing request metadata.
pub fn inject_current(metadata: &mut tonic::metadata::MetadataMap) {
    inject(&tracing::Span::current().context(), metadata);
}

/// Makes `span` a child of the caller's trace context.
pub fn set_parent(span: &tracing::Span, parent: Context) {
    let _ = span.set_parent(parent);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;
    use opentelemetry_sdk::trace::InMemorySpanExporter;

    #[test]
    fn trace_context_round_trips_through_metadata() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        let subscriber = Registry::default().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t")));
        tracing::subscriber::with_default(subscriber, || {
            let caller = tracing::info_span!("caller");
            let _in = caller.enter();
            let mut md = tonic::metadata::MetadataMap::new();
            inject_current(&mut md);
            let traceparent = md.get("traceparent").and_then(|v| v.to_str().ok()).expect("traceparent set");
            let caller_trace = caller.context().span().span_context().trace_id();
            assert!(traceparent.contains(&caller_trace.to_string()), "{traceparent}");

            // The server side: extract from the headers and parent a new span.
            let headers = md.clone().into_headers();
            let parent = extract(&headers);
            assert_eq!(parent.span().span_context().trace_id(), caller_trace);
            let server = tracing::info_span!("server");
            set_parent(&server, parent);
            assert_eq!(server.context().span().span_context().trace_id(), caller_trace);
        });
    }

    #[test]
    fn missing_or_garbage_traceparent_yields_no_parent() {
        let mut headers = http::HeaderMap::new();
        assert!(!extract(&headers).span().span_context().is_valid());
        headers.insert("traceparent", http::HeaderValue::from_static("not-a-traceparent"));
        assert!(!extract(&headers).span().span_context().is_valid());
    }
}
