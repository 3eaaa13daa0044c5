#[tokio::main]
async fn main() -> std::process::ExitCode {
    recur_server::run_service(
        "recur-catalog",
        recur_catalog::DEFAULT_ADDR,
        recur_catalog::SERVICE_NAMES,
        recur_catalog::register,
    )
    .await
}
