// mimalloc: markedly less allocator contention than glibc under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    recur_server::run_service(
        "recur-pricing",
        recur_pricing::DEFAULT_ADDR,
        recur_pricing::SERVICE_NAMES,
        recur_pricing::register,
    )
    .await
}
