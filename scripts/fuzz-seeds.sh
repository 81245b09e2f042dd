#!/usr/bin/env bash
# Regenerates the fuzz targets' seed corpus (server/fuzz/corpus/): snapshot files made by
# real etcd 3.4 (`etcdctl snapshot save` of a member holding keys, a lease, a compaction and
# auth users and roles), and the seeds Ballast's own code makes (WAL segments, HTTP/2 client
# streams, config files, command lines, peer messages; tests/fuzz_regressions.rs
# write_seed_corpus). Commit the result; scripts/fuzz.sh runs the targets on it.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=server/fuzz/corpus
mkdir -p "$corpus/snapshot"

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))
ep=http://127.0.0.1:$port
etcd --name seed --data-dir "$tmp/data" --listen-client-urls "$ep" --advertise-client-urls "$ep" \
  --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
  --initial-cluster "seed=http://127.0.0.1:$((port + 1))" >"$tmp/etcd.log" 2>&1 &
pid=$!
ctl() { ETCDCTL_API=3 etcdctl --endpoints "$ep" "$@"; }
for _ in $(seq 100); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

ctl snapshot save "$tmp/empty.db" >/dev/null 2>&1
cp "$tmp/empty.db" "$corpus/snapshot/etcd34-empty.db"
for i in $(seq 1 20); do ctl put "key-$i" "value-$i" >/dev/null; done
ctl del key-3 >/dev/null
lease=$(ctl lease grant 600 | awk '{print $2}')
ctl put --lease="$lease" leased v >/dev/null
ctl compact 10 >/dev/null
ctl user add root:root >/dev/null
ctl role add reader >/dev/null
ctl role grant-permission reader read /k --prefix >/dev/null
ctl user add alice:alice >/dev/null
ctl user grant-role alice reader >/dev/null
ctl snapshot save "$tmp/full.db" >/dev/null 2>&1
cp "$tmp/full.db" "$corpus/snapshot/etcd34-keys-lease-auth.db"

CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target} cargo test -q -p ballast --test fuzz_regressions \
  -- --ignored write_seed_corpus
du -sh "$corpus"
