#!/usr/bin/env bash
# System calls per put of a single client, on the Raft leader and on one follower of a
# 3-member cluster on loopback: the load-independent evidence behind the single-client
# latency work in docs/benchmarks.md (sched_yield, futex wake-ups, fsyncs and socket
# writes per put). Works with any server that takes etcd's flags (Ballast, etcd 3.4, 3.6).
#
#   bench/strace_put.sh BINARY [PUTS]          # e.g. target/release/ballast 1000
#   bench/strace_put.sh --sched BINARY [PUTS]  # scheduler view instead of system calls
#
# Needs strace, etcdctl and ballast-bench (CARGO_TARGET_DIR or target/, release build).
# Under strace every system call costs far more than without, so the latency it prints
# only compares servers measured the same way; the counts are what to read.
# With --sched, `perf sched record` watches the whole machine during the puts instead
# (nothing is slowed much): per thread kind of the three members, how often it was switched
# in per put and how long a woken thread waited for a CPU (perf sched latency).
set -euo pipefail
cd "$(dirname "$0")/.."
sched=false
if [ "${1:-}" = --sched ]; then
  sched=true
  shift
fi
bin=$(realpath "$1")
puts=${2:-1000}
bench="${CARGO_TARGET_DIR:-target}/release/ballast-bench"
[ -x "$bench" ] || { echo "$bench is missing: cargo build --release -p ballast-bench" >&2; exit 1; }
command -v strace >/dev/null || { echo "strace is missing (apt-get install strace)" >&2; exit 1; }

dir=$(mktemp -d /tmp/strace-put.XXXX)
base=$((20000 + RANDOM % 20000))
client() { echo "127.0.0.1:$((base + $1))"; }
peer() { echo "http://127.0.0.1:$((base + 10 + $1))"; }
cluster="m1=$(peer 1),m2=$(peer 2),m3=$(peer 3)"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for i in 1 2 3; do
  "$bin" --name "m$i" --data-dir "$dir/m$i" --snapshot-count 10000 \
    --listen-client-urls "http://$(client $i)" --advertise-client-urls "http://$(client $i)" \
    --listen-peer-urls "$(peer $i)" --initial-advertise-peer-urls "$(peer $i)" \
    --initial-cluster "$cluster" --initial-cluster-state new >"$dir/m$i.log" 2>&1 &
  pids+=($!)
done
endpoints="$(client 1),$(client 2),$(client 3)"
for _ in $(seq 150); do
  ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && break
  sleep 0.2
done
# The leader is the member whose status names itself as leader.
leader=$(ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w json | python3 -c '
import json, sys
for i, e in enumerate(json.load(sys.stdin), 1):
    if e["Status"]["header"]["member_id"] == e["Status"]["leader"]:
        print(i)')
follower=$((leader % 3 + 1))
put() { "$bench" --endpoints "$(client "$leader")" --total "$1" put --key-size 8 --val-size 256; }
put 300 >/dev/null # warm-up: connections, first WAL segment
if $sched; then
  command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
  perf sched record -a -o "$dir/sched.data" -- sleep 3600 >/dev/null 2>&1 &
  recorder=$!
  sleep 1
  put "$puts" | grep -E "Average|Requests/sec" | sed 's/^ */under perf: /'
  # The members' threads only: the bench client's tokio workers have the same name.
  tids=$(for p in "${pids[@]}"; do ls "/proc/$p/task"; done | tr '\n' ' ')
  kill -INT "$recorder"
  wait "$recorder" 2>/dev/null || true
  # perf sched latency -p rows: Task:TID | Runtime ms | Switches | Avg delay ms | Max delay ms | ...
  perf sched latency -p -i "$dir/sched.data" 2>/dev/null | awk -F'|' -v n="$puts" -v tids=" $tids" '
    $1 ~ /^ *(raft|apply|tokio-rt-worker):[0-9]+ *$/ {
      split($1, t, ":"); gsub(/ /, "", t[1]); gsub(/ /, "", t[2])
      if (index(tids, " " t[2] " ") == 0) next
      switches[t[1]] += $3; split($4, a, " "); delay[t[1]] += a[2] * $3
    }
    END {
      printf "  %-16s %18s %22s\n", "thread", "switched in / put", "avg wake-up delay ms"
      for (k in switches) printf "  %-16s %18.2f %22.3f\n", k, switches[k] / n, delay[k] / switches[k]
    }'
  exit 0
fi
strace -f -c -o "$dir/leader.strace" -p "${pids[$((leader - 1))]}" 2>/dev/null &
tracers=($!)
strace -f -c -o "$dir/follower.strace" -p "${pids[$((follower - 1))]}" 2>/dev/null &
tracers+=($!)
sleep 1 # strace attaches to every thread
put "$puts" | grep -E "Average|Requests/sec" | sed 's/^ */under strace: /'
kill -INT "${tracers[@]}"
wait "${tracers[@]}" 2>/dev/null || true
for role in leader follower; do
  echo "$role, per put ($puts puts):"
  # strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall
  awk -v n="$puts" '$1 ~ /^[0-9.]+$/ && $NF ~ /^(futex|sched_yield|fdatasync|fsync|write|writev|pwrite64|read|recvfrom|epoll_wait|epoll_pwait|nanosleep)$/ {
    printf "  %-12s %6.2f\n", $NF, $4 / n }' "$dir/$role.strace"
done
