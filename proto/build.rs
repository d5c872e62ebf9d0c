//! Generates the `io.cloudevents.v1` messages and the `CloudEventService` client and server.
//!
//! The `.proto` is compiled by protox, in pure Rust, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/io/cloudevents/v1/cloudevent.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Sorted maps: attributes encode in a stable order, so encodings can be compared byte
        // for byte (Go encodes its map in random order; a receiver must not care either way).
        .btree_map(".")
        // Small per-stream buffers (see src/codec.rs).
        .codec_path("crate::codec::SmallBufferCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
