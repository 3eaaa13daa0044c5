//! Compiles `proto/` with protox (a pure-Rust protobuf compiler), so building
//! Recur never needs a system `protoc`.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "recur/common/v1/common.proto",
        "recur/catalog/v1/catalog.proto",
        "recur/pricing/v1/pricing.proto",
        "recur/payment/v1/payment.proto",
        "recur/subscription/v1/account.proto",
        "recur/subscription/v1/subscription.proto",
        "recur/subscription/v1/invoice.proto",
        "recur/subscription/v1/event.proto",
        "recur/subscription/v1/clock.proto",
        "recur/signup/v1/signup.proto",
    ];
    println!("cargo:rerun-if-changed={}", root.display());
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("recur_descriptor.bin"), fds.encode_to_vec())?;
    // Every message names its proto type (prost's `Name`), so the codec
    // can check each request by its descriptor.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .codec_path("crate::codec::CheckedCodec")
        .btree_map(".")
        .generate_default_stubs(true)
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
