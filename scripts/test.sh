#!/usr/bin/env bash
# Runs Ballast's whole test suite: formatting, lints, unit tests, the
# integration tests that drive the real server with real etcdctl, and the
# end-to-end tests on a real Kubernetes built from source (e2e/tests/kube_*.rs
# start it with scripts/kube-up.sh, which installs and builds what it needs), the
# robustness suite (e2e/robustness: random traffic and faults on a 3-member cluster, the
# histories checked for linearizability and watch/lease guarantees; about 3 minutes) and
# the disk-full tests (tmpfs volumes), which need root like the e2e tests, and a brief run
# of every fuzz target.
# Installs what the tests need (Debian's etcdctl, a reference etcd, Prometheus) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
# The JSON gateway tests (server/tests/gateway.rs) speak HTTP with curl.
command -v curl >/dev/null 2>&1 || need+=(curl)
# The etcd-client crate (an independent client used by the tests) builds its protos with protoc.
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
# ...and imports protobuf's well-known types, which protoc finds under /usr/include.
[ -f /usr/include/google/protobuf/descriptor.proto ] || need+=(libprotobuf-dev)
# The operator's PKI tests check certificates with the real openssl.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The e2e pod runner: network namespaces (ip), mount/UTS namespaces and user switch.
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v mount >/dev/null 2>&1 || need+=(mount)
# The chart's Argo CD health check is Lua 5.1 (Argo CD's dialect).
command -v lua5.1 >/dev/null 2>&1 || need+=(lua5.1)
# The monitoring tests (server/tests/monitoring.rs): promtool checks the chart's alert rules,
# and a Prometheus of their own (own config, data dir and port; the package's service is
# not used) scrapes a live cluster.
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing ${need[*]} (what the integration tests run)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Real etcd, etcdctl and etcdutl 3.6 (server/tests/seed_restore.rs compares `snapshot restore
# --bump-revision --mark-compacted` with them; etcdutl36.rs restores Ballast's snapshots with
# them; the etcdctl tests run a second time with etcdctl 3.6, below): built from the Go module
# proxy on the first run, then cached under ~/.cache/ballast-tools.
BALLAST_TEST_ETCD36_DIR="$(scripts/etcd36-tools.sh)"
export BALLAST_TEST_ETCD36_DIR

# The operator's tests validate rendered objects with kubernetes-validate (PyPI), strict mode.
python3 -c 'import kubernetes_validate' 2>/dev/null || python3 -m pip install --quiet kubernetes-validate
# server/tests/backup.rs backs up to moto's S3 server, started as a process of its own.
python3 -c 'import moto.server' 2>/dev/null || python3 -m pip install --quiet 'moto[server]'

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

# The etcd-client crate's own integration tests and examples, against Ballast set up as that
# crate's CI sets up etcd (one member on localhost:2379, a 2 s token TTL, user root/rootpwd);
# `scripts/etcd-client-tests.sh --etcd` runs them against etcd 3.6. Uses the Ballast binary
# the line above built; builds the crate in ~/.cache/ballast-tools/etcd-client-target, kept
# between runs (360 MB). Measured on 2 shared cores (load 4-7): cold 3 min 22 s, of which
# about 2 min 40 s build the crate; warm 42-45 s, of which 35 s are the tests' waits for
# tokens to expire.
scripts/etcd-client-tests.sh

# The etcdctl tests again with etcdctl 3.6 (server/tests/common/mod.rs keeps the outputs that
# differ from 3.4 in one place): against Ballast, with the TLS tests too (a newer Go gRPC
# client over TLS), and against real etcd 3.6, which keeps the 3.6 expectations checked
# against etcd itself. Measured on 2 busy shared cores (load 6-7), binaries already built:
# 172 s (of which tls.rs 32 s) and 41 s; most of the first is Ballast's ~3 s start per test.
etcdctl_tests=()
for t in server/tests/etcdctl_*.rs server/tests/etcdutl36.rs; do
  etcdctl_tests+=(--test "$(basename "$t" .rs)")
done
BALLAST_TEST_ETCDCTL=3.6 cargo test --workspace "${etcdctl_tests[@]}" --test tls
BALLAST_TEST_ETCDCTL=3.6 BALLAST_TEST_SERVER=etcd36 cargo test --workspace "${etcdctl_tests[@]}"

# Every fuzz target (server/fuzz/, libFuzzer through cargo fuzz) briefly on its committed seed
# corpus; crashes fail the run with the input's path. An unoptimised build (FUZZ_PROFILE=dev),
# since a cold optimised build of the instrumented server takes too long for CI; kept between
# runs in ~/.cache. The long run by hand: `scripts/fuzz.sh 600`.
FUZZ_PROFILE=dev FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/ballast-fuzz-target}" scripts/fuzz.sh 10
