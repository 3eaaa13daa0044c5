// mimalloc: markedly less allocator contention than glibc under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    recur_server::run_service(
        "recur-payment-gateway",
        recur_payment::DEFAULT_ADDR,
        recur_payment::SERVICE_NAMES,
        recur_payment::register,
    )
    .await
}
