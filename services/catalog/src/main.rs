// mimalloc: markedly less allocator contention than glibc under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
