#!/usr/bin/env bash
# Where a 3-member cluster's CPU and system calls go under one of the comparison's 1000-client
# workloads: requests/s and latency tail, CPU ticks per second of the members, of the bench
# client and idle, server CPU per request, and system calls per request summed over the
# members (socket writes and reads, epoll, futex, fdatasync) counted with perf's syscall
# tracepoints for 3 s in the middle of a 5 s run. Works with any server that takes etcd's
# flags (Ballast, etcd 3.4, 3.6), so the counts compare directly: the evidence behind the
# write batching and the disk-space gauge in docs/benchmarks.md (session 16).
#
#   bench/syscalls_per_request.sh BINARY [range-s|range-l|put-1000] [--snapshot-count N]
#
# Needs perf, and etcdctl and ballast-bench (CARGO_TARGET_DIR or target/, release build).
# Single runs move by 5-10 %: compare binaries in alternating runs.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: bench/syscalls_per_request.sh BINARY [range-s|range-l|put-1000] [--snapshot-count N]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
bin=$(realpath "$1")
workload=${2:-range-s}
snapshot_count=10000
if [ "${3:-}" = --snapshot-count ]; then
  [ -n "${4:-}" ] || { echo "$usage" >&2; exit 2; }
  snapshot_count=$4
fi
bench="${CARGO_TARGET_DIR:-target}/release/ballast-bench"
[ -x "$bench" ] || { echo "$bench is missing: cargo build --release -p ballast-bench" >&2; exit 1; }
command -v perf >/dev/null || { echo "perf is missing (apt-get install linux-perf)" >&2; exit 1; }
command -v etcdctl >/dev/null || { echo "etcdctl is missing (apt-get install etcd-client)" >&2; exit 1; }

dir=$(mktemp -d /tmp/syscalls-per-request.XXXX)
source bench/three_members.sh
trap 'stop_three_members; rm -rf "$dir"' EXIT
start_three_members "$bin" "$dir" --snapshot-count "$snapshot_count"
ETCDCTL_API=3 etcdctl --endpoints "$endpoints" put foo bar >/dev/null
leader=$(leader_number etcdctl)
load=(--conns 100 --clients 1000 --total 10000000 --duration 5s)
case $workload in
  range-s | range-l) args=(--endpoints "$endpoints" "${load[@]}" range foo --consistency "${workload#range-}") ;;
  put-1000) args=(--endpoints "$(client_addr "$leader")" "${load[@]}" put --key-size 8 --val-size 256
                  --sequential-keys --key-space-size 100000) ;;
  *) echo "unknown workload $workload: range-s, range-l or put-1000" >&2; exit 2 ;;
esac
"$bench" "${args[@]}" >"$dir/bench.out" 2>&1 &
bench_pid=$!
sleep 1
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
idle() { awk '/^cpu /{print $5 + $6}' /proc/stat; }
s0=$(ticks "${member_pids[@]}"); c0=$(ticks "$bench_pid"); i0=$(idle); t0=$(date +%s.%N)
events=write,writev,sendmsg,sendto,read,recvfrom,recvmsg,epoll_wait,epoll_pwait,futex,sched_yield,fdatasync
perf stat -e "$(echo "$events" | sed 's/\([a-z_]*\)/syscalls:sys_enter_\1/g'),context-switches" \
  -p "$(IFS=,; echo "${member_pids[*]}")" -- sleep 3 2>"$dir/stat.txt" || true
s1=$(ticks "${member_pids[@]}"); c1=$(ticks "$bench_pid"); i1=$(idle); t1=$(date +%s.%N)
wait "$bench_pid"
if ! grep -q 'syscalls:' "$dir/stat.txt"; then
  echo "perf counted nothing (kernel.perf_event_paranoid? no syscall tracepoints?):" >&2
  cat "$dir/stat.txt" >&2
  exit 1
fi
# The run's average rate stands for the window's: the load is steady after its first second.
rps=$(awk '/Requests\/sec/ {print $2}' "$dir/bench.out")
hz=$(getconf CLK_TCK)
echo "$(basename "$bin") $workload: $rps req/s; $(grep -E '99%|99.9%|Slowest' "$dir/bench.out" | tr -s ' \t' ' ' | tr '\n' ';')"
python3 - "$rps" "$hz" "$t0" "$t1" "$s0" "$s1" "$c0" "$c1" "$i0" "$i1" <<'EOF'
import sys
rps, hz, t0, t1, s0, s1, c0, c1, i0, i1 = map(float, sys.argv[1:])
secs = t1 - t0
per_s = lambda a, b: (b - a) / secs
print(f"  CPU ticks/s over {secs:.1f} s ({int(hz)} per core): members {per_s(s0, s1):.0f}, "
      f"client {per_s(c0, c1):.0f}, idle+iowait {per_s(i0, i1):.0f}")
print(f"  CPU µs per request: members {per_s(s0, s1) / hz / rps * 1e6:.1f}, client {per_s(c0, c1) / hz / rps * 1e6:.1f}")
EOF
# perf counted for the 3 s of its `sleep`.
awk -v r="$rps" '/syscalls:|context-switches/ {
  gsub(",", "", $1); sub("syscalls:sys_enter_", "", $2)
  if ($1 + 0 > 0) printf "  %-16s %9d  per request %.3f\n", $2, $1, $1 / (r * 3) }' "$dir/stat.txt"
