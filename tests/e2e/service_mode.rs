//! Service mode: the five services on five ports, each with its own
//! database, finding each other only through the peer addresses they are
//! given — the shape of a Kubernetes deployment, in one test process.

use std::collections::HashMap;
use std::sync::Arc;

use recur_config::{Config, Peers};
use recur_e2e::{Bearer, create_monthly_plan};
use recur_proto::pricing::v1 as pricing;
use recur_proto::signup::v1 as su;
use recur_proto::signup::v1::signup_service_client::SignupServiceClient;
use recur_server::{RunningServer, ServerOptions, ServiceEnv};
use tonic::service::RoutesBuilder;

const SECRET: &str = "recur-service-mode-test-key-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_services_on_five_ports() {
    let dir = std::env::temp_dir().join(format!("recur-service-mode-{}", std::process::id()));
    let vars: HashMap<String, String> = [
        ("RECUR_DATA_DIR".to_string(), dir.display().to_string()),
        ("RECUR_JWT_SECRET".to_string(), SECRET.to_string()),
    ]
    .into_iter()
    .collect();
    let config = Arc::new(Config::from_map(&vars).expect("config"));
    let key = recur_auth::TokenKey::new(SECRET.as_bytes().to_vec());

    let mut listeners = Vec::new();
    for _ in 0..5 {
        listeners.push(recur_server::bind("127.0.0.1:0").await.expect("bind"));
    }
    let addr = |i: usize| listeners[i].local_addr().expect("addr").to_string();
    let peers = Peers { catalog: addr(0), pricing: addr(1), payment: addr(2), subscription: addr(3), signup: addr(4) };
    assert_eq!(
        [&peers.catalog, &peers.pricing, &peers.payment, &peers.subscription, &peers.signup]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        5,
        "five distinct ports"
    );
    let env = ServiceEnv {
        config: config.clone(),
        clock: recur_clock::system(),
        key: key.clone(),
        peers: peers.clone(),
        public_url: format!("http://{}", peers.payment),
        tasks: Default::default(),
        in_process: None,
    };

    let serve = |routes: RoutesBuilder, names: &'static [&'static str], listener| -> RunningServer {
        let options = ServerOptions {
            key: key.clone(),
            clock: env.clock.clone(),
            service_names: names.to_vec(),
            max_call_time: std::time::Duration::from_secs(60),
            shutdown_grace: std::time::Duration::from_secs(5),
            rate_limits: recur_server::RateLimiter::off(),
        };
        recur_server::spawn(listener, routes.routes(), options, std::future::pending()).expect("serve")
    };
    let mut listeners = listeners.into_iter();
    let mut next = || listeners.next().expect("a listener per service");
    let fresh = RoutesBuilder::default;
    let running: Vec<RunningServer> = vec![
        serve(
            recur_catalog::register(env.clone(), fresh()).await.expect("catalog"),
            recur_catalog::SERVICE_NAMES,
            next(),
        ),
        serve(
            recur_pricing::register(env.clone(), fresh()).await.expect("pricing"),
            recur_pricing::SERVICE_NAMES,
            next(),
        ),
        serve(
            recur_payment::register(env.clone(), fresh()).await.expect("payment"),
            recur_payment::SERVICE_NAMES,
            next(),
        ),
        serve(
            recur_subscription::register(env.clone(), fresh()).await.expect("subscription"),
            recur_subscription::SERVICE_NAMES,
            next(),
        ),
        serve(recur_signup::register(env.clone(), fresh()).await.expect("signup"), recur_signup::SERVICE_NAMES, next()),
    ];
    // Each service has its own database file.
    for service in ["catalog", "payment", "subscription", "signup"] {
        assert!(dir.join(format!("{service}.db")).exists(), "{service}.db");
    }

    let token = key.mint("acme", chrono::Utc::now(), chrono::Duration::hours(1));
    let channel_to =
        |a: &str| tonic::transport::Endpoint::from_shared(format!("http://{a}")).expect("endpoint").connect_lazy();
    // The catalog is reached on its own port...
    let mut c = recur_e2e::Clients {
        catalog: recur_proto::catalog::v1::catalog_service_client::CatalogServiceClient::with_interceptor(
            channel_to(&peers.catalog),
            Bearer::new(&token),
        ),
        ..recur_e2e::Clients::new(channel_to(&peers.signup), Bearer::new(&token))
    };
    let plan = create_monthly_plan(&mut c, "15", None).await;
    // ...and the sign-up on its own, calling the other four over the network.
    let mut signup = SignupServiceClient::with_interceptor(channel_to(&peers.signup), Bearer::new(&token));
    let done = signup
        .create_signup(su::CreateSignupRequest {
            action: su::SignupAction::CreateWithPaymentMethod as i32,
            customer: Some(su::CustomerInput {
                name: "Sam".into(),
                email: "sam@s.example".into(),
                ..Default::default()
            }),
            quote: Some(su::QuoteInput {
                offerings: vec![pricing::CartOffering {
                    offering_id: plan.offering_id,
                    rate_id: plan.rate_id,
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
    let done = signup
        .update_signup(su::UpdateSignupRequest {
            session_id: done.session_id,
            action: su::SignupAction::Finalize as i32,
            ..Default::default()
        })
        .await
        .expect("finalize across five processes' worth of ports")
        .into_inner()
        .signup
        .expect("signup");
    assert!(done.contract_id.starts_with("sub_"));
    assert_eq!(done.payment.map(|p| p.amount.map(|m| m.amount)), Some(Some("15.00".to_string())));

    for server in running {
        server.shutdown().await.expect("shutdown");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
