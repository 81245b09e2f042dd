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
source bench/three_members.sh
trap 'stop_three_members; rm -rf "$dir"' EXIT
start_three_members "$bin" "$dir" --snapshot-count 10000
leader=$(leader_number etcdctl)
follower=$((leader % 3 + 1))
put() { "$bench" --endpoints "$(client_addr "$leader")" --total "$1" put --key-size 8 --val-size 256; }
put 300 >/dev/null # warm-up: connections, first WAL segment
if $sched; then
  command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
  perf sched record -a -o "$dir/sched.data" -- sleep 3600 >/dev/null 2>&1 &
  recorder=$!
  sleep 1
  put "$puts" | grep -E "Average|Requests/sec" | sed 's/^ */under perf: /'
  # The members' threads only: the bench client's tokio workers have the same name.
  tids=$(for p in "${member_pids[@]}"; do ls "/proc/$p/task"; done | tr '\n' ' ')
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
strace -f -c -o "$dir/leader.strace" -p "${member_pids[$((leader - 1))]}" 2>/dev/null &
tracers=($!)
strace -f -c -o "$dir/follower.strace" -p "${member_pids[$((follower - 1))]}" 2>/dev/null &
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
