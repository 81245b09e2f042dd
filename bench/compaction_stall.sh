#!/usr/bin/env bash
# How long one compaction holds up writes: a 3-member cluster on loopback is loaded with
# REVISIONS puts over 100 000 keys (1000 clients, etcd's benchmark tool), then
# `etcdctl compact --physical` runs to the newest revision while a single client puts
# 100 times a second. The slowest of those puts is the stall. Works with any server that
# takes etcd's flags (Ballast, etcd 3.4, 3.6). The first line printed is the load itself
# (throughput, p99, p99.9 and slowest of 1000 clients' puts), which docs/benchmarks.md also
# quotes for the put-1000 tail.
#
#   bench/compaction_stall.sh BINARY [REVISIONS]     # e.g. target/release/ballast 300000
#
# Needs Go and the module proxy on the first run (scripts/etcd36-benchmark.sh and
# scripts/etcd36-tools.sh build etcd's benchmark and etcdctl 3.6 into ~/.cache).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1")
total=${2:-300000}
bench=$(scripts/etcd36-benchmark.sh)
ctl="$(scripts/etcd36-tools.sh | tail -n 1)/etcdctl"
[ -x "$ctl" ] || { echo "no etcdctl 3.6 at $ctl" >&2; exit 1; }

dir=$(mktemp -d /tmp/compaction-stall.XXXX)
source bench/three_members.sh
trap 'stop_three_members; rm -rf "$dir"' EXIT
start_three_members "$bin" "$dir" --initial-cluster-token "stall-$$" \
  --quota-backend-bytes 8589934592 --snapshot-count 10000
"$bench" --endpoints "$endpoints" --conns 100 --clients 1000 put --key-size 8 --val-size 256 \
  --sequential-keys --key-space-size 100000 --total "$total" >"$dir/load.txt" 2>&1
echo "load:" $(grep -E "Requests/sec|99% in|99.9% in|Slowest" "$dir/load.txt" | tr -s ' \t' ' ')
rev=$("$ctl" --endpoints "$endpoints" endpoint status -w json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
"$bench" --endpoints "$endpoints" --conns 1 --clients 1 put --key-size 8 --val-size 256 \
  --total 300 --rate 100 >"$dir/probe.txt" 2>&1 &
probe=$!
sleep 0.5
started=$(date +%s%N)
"$ctl" --endpoints "$endpoints" compact "$rev" --physical >/dev/null
echo "compact --physical to revision $rev: $(( ($(date +%s%N) - started) / 1000000 )) ms"
wait "$probe"
echo "puts at 100/s meanwhile:" $(grep -E "Slowest|Average|99%" "$dir/probe.txt" | tr -s ' \t' ' ')
