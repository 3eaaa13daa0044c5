//! Server reflection (v1 and v1alpha) lists the five Recur services plus
//! health and reflection, and serves their descriptors, so grpcurl and ghz
//! work without proto files.

use recur_e2e::{Backend, TestApp};
use tokio_stream::StreamExt;

const EXPECTED: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "recur.catalog.v1.CatalogService",
    "recur.payment.v1.PaymentGatewayService",
    "recur.pricing.v1.PricingService",
    "recur.signup.v1.SignupService",
    "recur.subscription.v1.AccountService",
    "recur.subscription.v1.ClockService",
    "recur.subscription.v1.EventService",
    "recur.subscription.v1.InvoiceService",
    "recur.subscription.v1.SubscriptionService",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1_lists_and_describes_services() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn(Backend::SqliteMemory).await.expect("app");
    let mut client = ServerReflectionClient::new(app.channel());
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol("recur.signup.v1.SignupService".into())),
        },
    ];
    let mut responses =
        client.server_reflection_info(tokio_stream::iter(requests)).await.expect("reflection").into_inner();

    let first = responses.next().await.expect("a response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("expected a service list, got {first:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for expected in EXPECTED {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }

    let second = responses.next().await.expect("a response").expect("ok");
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!("expected descriptors, got {second:?}");
    };
    let decoded: Vec<prost_types::FileDescriptorProto> =
        files.file_descriptor_proto.iter().map(|b| prost::Message::decode(b.as_slice()).expect("descriptor")).collect();
    let signup = decoded.iter().find(|f| f.name() == "recur/signup/v1/signup.proto").expect("signup.proto");
    // Every import resolves by file name, as grpcurl asks for them, so a
    // client can decode every message.
    let mut pending: Vec<String> = signup.dependency.clone();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(file) = pending.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let req = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileByFilename(file.clone())),
        };
        let mut stream =
            client.server_reflection_info(tokio_stream::iter(vec![req])).await.expect("reflection").into_inner();
        let resp = stream.next().await.expect("a response").expect("ok");
        let Some(MessageResponse::FileDescriptorResponse(found)) = resp.message_response else {
            panic!("{file} did not resolve: {resp:?}");
        };
        for bytes in &found.file_descriptor_proto {
            let fd: prost_types::FileDescriptorProto = prost::Message::decode(bytes.as_slice()).expect("descriptor");
            pending.extend(fd.dependency.iter().cloned());
        }
    }
    for needed in ["google/protobuf/timestamp.proto", "recur/pricing/v1/pricing.proto", "recur/common/v1/common.proto"]
    {
        assert!(seen.contains(needed), "{needed} not reachable: {seen:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_v1alpha_lists_services() {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let app = TestApp::spawn(Backend::SqliteMemory).await.expect("app");
    let mut client = ServerReflectionClient::new(app.channel());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses =
        client.server_reflection_info(tokio_stream::iter(vec![request])).await.expect("reflection").into_inner();
    let first = responses.next().await.expect("a response").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("expected a service list, got {first:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in EXPECTED.iter().filter(|e| !e.starts_with("grpc.reflection")) {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    app.stop().await;
}
