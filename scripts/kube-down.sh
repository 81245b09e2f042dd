#!/usr/bin/env bash
# Stops the test Kubernetes of scripts/kube-up.sh and removes everything it
# made: processes and containers, mounts, the pods' network namespaces, the
# bridges, the iptables rules, and its state directory. Idempotent: safe to
# run when nothing, or only part, is up.
set -uo pipefail
. "$(dirname "$0")/../e2e/kube/lib.sh"

[ "$(id -u)" = 0 ] || die "needs root"

# Containers first (their shims outlive containerd), then our processes.
if [ -S "$RUN/containerd.sock" ]; then
  for task in $(ctr --address "$RUN/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr --address "$RUN/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$task" >/dev/null 2>&1
  done
fi
if [ -d "$RUN/pids" ]; then
  for pidfile in "$RUN"/pids/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
  done
  for _ in $(seq 1 20); do
    alive=0
    for pidfile in "$RUN"/pids/*.pid; do
      [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && alive=1
    done
    [ $alive = 0 ] && break
    sleep 0.5
  done
  for pidfile in "$RUN"/pids/*.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  done
fi
# Shims started by our containerd, and anything still running our binaries.
pkill -KILL -f "containerd-shim.*-address $RUN/containerd.sock" 2>/dev/null
pkill -KILL -f "^$KUBE_BIN/" 2>/dev/null
pkill -KILL -f -- "--data-dir $STATE/store/" 2>/dev/null
# A container's processes outlive its shim (a member's sidecar being stopped when the shims
# were killed was found running afterwards); they are still in the kubelet's pod cgroups.
for procs in $(find /sys/fs/cgroup -path '*/kubepods*' -name cgroup.procs 2>/dev/null); do
  xargs -r kill -KILL <"$procs" 2>/dev/null
done

# Mounts under our directories, deepest first.
for _ in 1 2 3; do
  mounts=$(findmnt -rn -o TARGET | grep -E "^($STATE|$RUN)(/|$)" | sort -r)
  [ -z "$mounts" ] && break
  echo "$mounts" | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
done

# The pods' network namespaces (named by the CNI plugins' cni- prefix).
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-'); do
  ip netns delete "$ns" 2>/dev/null
done
ip link delete "$POD_BRIDGE" 2>/dev/null
ip link delete "$NODE_BRIDGE" 2>/dev/null

# Rules: our egress fence and the chains kube-proxy and the kubelet made.
iptables -D FORWARD -s "$CLUSTER_CIDR" -j "$EGRESS_CHAIN" 2>/dev/null
for cmd in iptables ip6tables; do
  command -v "$cmd-save" >/dev/null 2>&1 || continue
  rules=$("$cmd-save" 2>/dev/null)
  if grep -qE "KUBE-|$EGRESS_CHAIN" <<<"$rules"; then
    grep -vE "KUBE-|$EGRESS_CHAIN" <<<"$rules" | "$cmd-restore"
  fi
done
if [ -f "$RUN/ip_forward.saved" ]; then
  sysctl -qw "net.ipv4.ip_forward=$(cat "$RUN/ip_forward.saved")"
fi

rm -rf "$STATE" "$RUN"
log "down"
exit 0
