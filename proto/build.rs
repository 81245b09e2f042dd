//! Generates the Rust code for the etcd v3 API and Ballast's internal protos.
//!
//! Uses `PROTOC` if set, else `protoc` on `PATH`, else the `protoc` binary
//! shipped inside the `protoc-bin-vendored` crate, so that a fresh machine
//! builds without installing anything.

use std::path::PathBuf;
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

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_protos(PROTOS, &[PROTO_ROOT])
        .unwrap_or_else(|e| panic!("compiling the .proto files failed: {e}"));
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
