//! Generates the Rust code for the etcd v3 API and Ballast's internal protos.
//!
//! Besides the prost messages and tonic services, it generates serde
//! `Serialize`/`Deserialize` impls for the etcd packages with `pbjson-build`:
//! the proto3 JSON mapping that etcd's gRPC JSON gateway speaks (bytes as
//! base64, 64-bit integers as strings, enums by name, default values left
//! out), keyed by the .proto field names as etcd's gateway keys them.
//!
//! Uses `PROTOC` if set, else `protoc` on `PATH`, else the `protoc` binary
//! shipped inside the `protoc-bin-vendored` crate, so that a fresh machine
//! builds without installing anything.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROTO_ROOT: &str = "proto";

const PROTOS: &[&str] = &[
    "proto/mvccpb/kv.proto",
    "proto/authpb/auth.proto",
    "proto/etcdserverpb/rpc.proto",
    "proto/v3lockpb/v3lock.proto",
    "proto/v3electionpb/v3election.proto",
    "proto/ballast/internal.proto",
];

fn main() {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for p in PROTOS {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-env-changed=PROTOC");

    if std::env::var_os("PROTOC").is_none() && !runs(&PathBuf::from("protoc")) {
        match protoc_bin_vendored::protoc_bin_path() {
            // Build scripts run single-threaded, so setting the variable is sound.
            Ok(p) => unsafe { std::env::set_var("PROTOC", p) },
            Err(e) => println!("cargo:warning=no vendored protoc for this platform: {e}"),
        }
    }
    check_protoc();

    let out_dir = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let descriptors = Path::new(&out_dir).join("descriptors.bin");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(&descriptors)
        .compile_protos(PROTOS, &[PROTO_ROOT])
        .unwrap_or_else(|e| panic!("compiling the .proto files failed: {e}"));
    json_impls(&descriptors);
}

/// serde impls for the packages the JSON gateway exposes (not `ballast.internal`).
///
/// `preserve_proto_field_names`: etcd's gateway (grpc-gateway with `OrigName` in
/// 3.4/3.5, `UseProtoNames` in 3.6) keys JSON by the names written in the .proto
/// (`cluster_id`, `dbSize`, `ID`), not by protobuf's lowerCamelCase json_name.
/// Deserializing still accepts both spellings, as protojson does.
/// `ignore_unknown_fields`: etcd's gateway discards unknown fields.
fn json_impls(descriptors: &Path) {
    let set = std::fs::read(descriptors)
        .unwrap_or_else(|e| panic!("reading {}: {e}", descriptors.display()));
    pbjson_build::Builder::new()
        .register_descriptors(&set)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", descriptors.display()))
        .preserve_proto_field_names()
        .ignore_unknown_fields()
        .build(&[".etcdserverpb", ".mvccpb", ".authpb"])
        .unwrap_or_else(|e| panic!("generating the JSON (serde) impls failed: {e}"));
}

fn runs(protoc: &PathBuf) -> bool {
    Command::new(protoc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Fails early, with an actionable message, when no usable `protoc` exists.
fn check_protoc() {
    let protoc = std::env::var_os("PROTOC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("protoc"));
    match Command::new(&protoc).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`{} --version` failed ({}): {}\n\
             ballast-proto needs the Protocol Buffers compiler. On Debian/Ubuntu run \
             `apt-get install protobuf-compiler`, or point PROTOC at a protoc binary.",
            protoc.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "could not run protoc (`{}`): {e}\n\
             ballast-proto needs the Protocol Buffers compiler. On Debian/Ubuntu run \
             `apt-get install protobuf-compiler`, or point PROTOC at a protoc binary.",
            protoc.display()
        ),
    }
}
