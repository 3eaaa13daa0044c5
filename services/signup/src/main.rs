#[tokio::main]
async fn main() -> std::process::ExitCode {
    recur_server::run_service(
        "recur-signup",
        recur_signup::DEFAULT_ADDR,
        recur_signup::SERVICE_NAMES,
        recur_signup::register,
    )
    .await
}
