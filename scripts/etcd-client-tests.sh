#!/usr/bin/env bash
# Runs the Rust `etcd-client` crate's own integration tests and examples (the published
# source of the version in Cargo.lock, with its tests/ and examples/) against Ballast, set up
# the way the crate's CI sets up etcd: one member serving localhost:2379 (the address the
# tests and examples have built in, so the port is fixed), --auth-token-ttl 2 (the token
# refresh tests wait for tokens to expire), --max-request-bytes 1572864, and the user
# root/rootpwd holding the role root, created with etcdctl (the tests enable auth themselves).
#
#   scripts/etcd-client-tests.sh          against Ballast ($CARGO_TARGET_DIR/debug/ballast,
#                                         built with `cargo build` only when missing)
#   scripts/etcd-client-tests.sh --etcd   against real etcd 3.6 (the crate targets 3.5-3.7),
#                                         which shows the tests themselves pass on this machine
#
# What runs is what the crate's CI (.github/workflows/ci.yml) runs against one etcd:
# `cargo test` (its default tests), then the examples. Left out: the ignored tests, which its
# CI runs only in other setups (test_get_stream*: against etcd 3.7 alone, for its RangeStream,
# which neither Ballast nor etcd 3.6 has; test_cluster: in a job of its own, on a cluster
# whose fourth member, at the host name node4, is started once the test has added it), and
# the `cluster` example, which its CI does not run either: it adds a voting member that never
# starts (the one-member cluster then loses its quorum; etcd and Ballast both refuse its
# promotion with the same error). The `auth` and `namespace` examples,
# which its CI does not run, are run too: they work against one server.
#
# The crate is built from the registry source in place (read only: `--locked`, so its
# Cargo.lock is not rewritten) with its own target directory, kept between runs under
# ~/.cache/ballast-tools/etcd-client-target (ETCD_CLIENT_TARGET_DIR overrides it). It needs
# protoc and protobuf's well-known types (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

server=ballast
case "${1:-}" in
  "") ;;
  --etcd) server=etcd ;;
  *) echo "usage: $0 [--etcd]" >&2; exit 2 ;;
esac

tools="${BALLAST_TOOLS_CACHE:-$HOME/.cache/ballast-tools}"
etcd36_dir="${BALLAST_TEST_ETCD36_DIR:-$tools/etcd-v3.6.16}"
client_target="${ETCD_CLIENT_TARGET_DIR:-$tools/etcd-client-target}"
ballast_target="${CARGO_TARGET_DIR:-$PWD/target}"
client_port=2379
peer_port=2380

# The crate's source: the version this workspace locks, from cargo's registry checkout
# (`cargo metadata` downloads it when it is not there yet; this platform's packages only).
host="$(rustc -vV | sed -n 's/^host: //p')"
manifest="$(cargo metadata --locked --format-version 1 --filter-platform "$host" |
  jq -r '.packages[] | select(.name == "etcd-client") | .manifest_path')"
if [ -z "$manifest" ] || [ ! -f "$manifest" ]; then
  echo "etcd-client-tests: the etcd-client crate is not in this workspace's Cargo.lock" >&2
  exit 1
fi
crate_dir="$(dirname "$manifest")"
for d in tests examples; do
  [ -d "$crate_dir/$d" ] || { echo "etcd-client-tests: $crate_dir has no $d/" >&2; exit 1; }
done

if [ -x "$etcd36_dir/etcdctl" ]; then
  etcdctl="$etcd36_dir/etcdctl"
else
  etcdctl="$(command -v etcdctl)"
fi

if [ "$server" = etcd ]; then
  bin="$etcd36_dir/etcd"
  [ -x "$bin" ] || { echo "etcd-client-tests: no etcd 3.6 at $bin (scripts/etcd36-tools.sh builds it)" >&2; exit 1; }
else
  bin="$ballast_target/debug/ballast"
  if [ ! -x "$bin" ]; then
    echo "etcd-client-tests: building $bin" >&2
    cargo build -p ballast --bin ballast
  fi
fi

export CARGO_TARGET_DIR="$client_target"
# Without debug info or incremental state: a faster cold build and a third of the disk
# (nobody debugs the crate here; a failing test's message and backtrace need neither).
export CARGO_PROFILE_DEV_DEBUG=false CARGO_PROFILE_TEST_DEBUG=false CARGO_INCREMENTAL=0
cargo_client() { cargo "$1" --locked --manifest-path "$manifest" "${@:2}"; }

# Built before the server starts (a cold build takes minutes), so each `cargo run` below
# only runs; `cargo test` builds the tests and examples alike.
cargo_client test --no-run
cargo_client build --examples

# The tests reach the server at localhost:2379 only: a port in use is an error, not a reason
# to pick another.
port_in_use() {
  # /dev/tcp connects; a refused connection means nobody listens there.
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
for p in "$client_port" "$peer_port"; do
  if port_in_use "$p"; then
    echo "etcd-client-tests: port $p on 127.0.0.1 is already in use; the etcd-client tests need" \
      "localhost:$client_port (and this script uses $peer_port for the peer port): stop what listens there" >&2
    exit 1
  fi
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/etcd-client-tests.XXXXXX")"
pid=""
cleanup() {
  status=$?
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$tmp/server.log" ]; then
    echo "etcd-client-tests: failed; the last lines of the $server log:" >&2
    tail -n 40 "$tmp/server.log" >&2 || true
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

client_url="http://127.0.0.1:$client_port"
peer_url="http://127.0.0.1:$peer_port"
# The settings come as ETCD_* variables, as in the crate's CI (its docker run sets them so);
# any other ETCD_* variable of the caller's environment is left out.
env -i PATH="$PATH" HOME="$HOME" \
  ETCD_AUTH_TOKEN_TTL=2 \
  ETCD_MAX_REQUEST_BYTES=1572864 \
  "$bin" \
  --name default \
  --data-dir "$tmp/data" \
  --listen-client-urls "$client_url" \
  --advertise-client-urls "http://localhost:$client_port" \
  --listen-peer-urls "$peer_url" \
  --initial-advertise-peer-urls "$peer_url" \
  --initial-cluster "default=$peer_url" \
  >"$tmp/server.log" 2>&1 &
pid=$!

ctl() { ETCDCTL_API=3 "$etcdctl" --endpoints "$client_url" "$@"; }

# Waits for the member to serve (a new one-member cluster elects itself within seconds).
ready=""
for _ in $(seq 300); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "etcd-client-tests: $bin exited before serving" >&2
    exit 1
  fi
  if ctl --command-timeout=1s endpoint health >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.2
done
[ -n "$ready" ] || { echo "etcd-client-tests: $bin did not become healthy within 60 s" >&2; exit 1; }

ctl user add root --new-user-password=rootpwd >/dev/null
ctl user grant-role root root >/dev/null
echo "etcd-client-tests: $server ($bin) serves localhost:$client_port; user root/rootpwd has role root"

cargo_client test
for example in kv lease lock maintenance watch election auth_role auth_user auth namespace; do
  echo "etcd-client-tests: example $example"
  cargo_client run --quiet --example "$example"
done
echo "etcd-client-tests: the etcd-client tests and examples pass against $server"
