// mimalloc: markedly less allocator contention than glibc under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
