//! Compiles `berth/v1/*.proto` with a vendored `protoc`, so no system compiler is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "berth/v1/model.proto",
        "berth/v1/elb.proto",
        "berth/v1/api.proto",
        "berth/agent/v1/agent.proto",
        "berth/v1/trust.proto",
        "berth/v1/operator.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("berth_descriptor.bin"))
        .type_attribute(
            ".berth.v1",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(rename_all = \"camelCase\", default)]",
        )
        // A private key must never reach a log line: this Debug is written by hand (src/lib.rs).
        .skip_debug([".berth.v1.TlsCertificate"])
        // The services are compiled only with the `grpc` feature; the messages always.
        .client_mod_attribute(".", "#[cfg(feature = \"grpc\")]")
        .server_mod_attribute(".", "#[cfg(feature = \"grpc\")]")
        .compile_protos(&protos, &["."])?;
    Ok(())
}
