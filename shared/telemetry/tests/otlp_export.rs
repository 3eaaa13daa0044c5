//! With OTEL_EXPORTER_OTLP_ENDPOINT set, spans reach an OTLP/gRPC collector
//! (here a real gRPC server on port 0 speaking the OTLP trace protocol).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use recur_config::Config;

#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received.lock().expect("lock").push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_to_the_configured_collector() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(collector.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);

    let vars: HashMap<String, String> = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), format!("http://{addr}")),
        ("OTEL_SERVICE_NAME".to_string(), "recur-otlp-test".to_string()),
        ("RECUR_LOG".to_string(), "warn".to_string()),
    ]
    .into_iter()
    .collect();
    let config = Config::from_map(&vars).expect("config");
    let telemetry = recur_telemetry::init("unused-default", &config).expect("telemetry");
    {
        let span = tracing::info_span!("rpc", otel.name = "recur.test.v1.TestService/Ping");
        let _entered = span.enter();
        tracing::info!("inside");
    }
    // Shutdown flushes the batch to the collector.
    telemetry.shutdown();

    let received = collector.received.lock().expect("lock").clone();
    let spans: Vec<_> = received.iter().flat_map(|r| &r.resource_spans).collect();
    let service_names: Vec<String> = spans
        .iter()
        .filter_map(|rs| rs.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(|kv| kv.value.as_ref())
        .map(|v| format!("{:?}", v.value))
        .collect();
    assert!(service_names.iter().any(|n| n.contains("recur-otlp-test")), "{service_names:?}");
    let names: Vec<String> =
        spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans).map(|s| s.name.clone()).collect();
    assert!(names.contains(&"recur.test.v1.TestService/Ping".to_string()), "{names:?}");
}
