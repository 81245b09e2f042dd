#!/usr/bin/env bash
# Memory of one member (any server taking etcd's flags): /proc/PID/status after its first
# start, after a restart on the same data dir, right after a load of KEYS puts of 1 KiB
# (1000 clients, distinct keys), and 11 s later (one heap-trim period of Ballast). The
# figures behind docs/benchmarks.md's single-member memory notes.
#
#   bench/member_rss.sh BINARY [KEYS] [SERVER FLAGS...]   # e.g. target/release/ballast 100000
#
# Needs etcdctl and ballast-bench (CARGO_TARGET_DIR or target/, release build).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1")
keys=${2:-100000}
shift $(($# < 2 ? $# : 2))
bench="${CARGO_TARGET_DIR:-target}/release/ballast-bench"
[ -x "$bench" ] || { echo "$bench is missing: cargo build --release -p ballast-bench" >&2; exit 1; }

dir=$(mktemp -d /tmp/member-rss.XXXX)
port=$((20000 + RANDOM % 20000))
client="127.0.0.1:$port"
peer="http://127.0.0.1:$((port + 1))"
pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

start() {
  "$bin" --name m --data-dir "$dir/data" --listen-client-urls "http://$client" \
    --advertise-client-urls "http://$client" --listen-peer-urls "$peer" \
    --initial-advertise-peer-urls "$peer" --initial-cluster "m=$peer" "$@" >>"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 150); do
    ETCDCTL_API=3 etcdctl --endpoints "$client" put rss-probe x >/dev/null 2>&1 && return
    sleep 0.1
  done
  echo "the member did not start; its log:" >&2
  tail -20 "$dir/log" >&2
  exit 1
}
report() {
  printf '%-22s %s\n' "$1:" "$(grep -E '^(VmHWM|VmRSS|RssAnon|RssFile)' "/proc/$pid/status" | tr -s ' \t' ' ' | tr '\n' ' ')"
}

start "$@"
report "first start"
kill "$pid"; wait "$pid" 2>/dev/null || true
start "$@"
report "restart"
"$bench" --endpoints "$client" --conns 100 --clients 1000 --total "$keys" \
  put --key-size 16 --val-size 1024 --sequential-keys --key-space-size "$keys" >/dev/null
report "after $keys puts"
sleep 11
report "11 s later"
