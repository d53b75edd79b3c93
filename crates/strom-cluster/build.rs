//! Generates the quorum's gRPC code from `proto/quorum.proto`. protox parses the .proto
//! in Rust, so building needs no `protoc` binary.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto/quorum.proto");
    let descriptors = protox::compile(["quorum.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
