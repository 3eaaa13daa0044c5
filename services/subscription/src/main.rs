// mimalloc: markedly less allocator contention than glibc under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    recur_server::run_service(
        "recur-subscription",
        recur_subscription::DEFAULT_ADDR,
        recur_subscription::SERVICE_NAMES,
        recur_subscription::register,
    )
    .await
}
