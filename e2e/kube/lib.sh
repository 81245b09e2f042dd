# Shared settings of the test Kubernetes (sourced by scripts/kube-up.sh,
# scripts/kube-down.sh and the build scripts beside this file).
#
# Every address here belongs to interfaces the test creates on this machine:
# nothing the cluster runs is given a route or a name outside them.

KUBE_VERSION=1.34.4
COREDNS_VERSION=1.13.1

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${BALLAST_KUBE_CACHE:-$HOME/.cache/ballast-kube}
# Binaries are keyed by version and by the recipe that built them, so that a
# warm run rebuilds nothing and a changed recipe rebuilds.
recipe() { (cd "$REPO/e2e/kube" && cat "$@" build-components.sh | sha256sum | cut -c1-12); }
KUBE_BIN=$CACHE/kubernetes-$KUBE_VERSION-$(recipe components/go.mod components/go.sum)/bin
COREDNS_BIN=$CACHE/coredns-$COREDNS_VERSION-$(recipe coredns/go.mod coredns/go.sum coredns/main.go)/bin
export GOMODCACHE=$CACHE/gomod GOCACHE=$CACHE/gocache GOFLAGS=-modcacherw
# The modules are served by the Go module proxy; nothing else is asked.
export GOTOOLCHAIN=local

# Everything the running cluster writes, and its sockets.
STATE=${BALLAST_KUBE_DIR:-/var/lib/ballast-kube}
RUN=/run/ballast-kube
PKI=$STATE/pki
LOGS=$STATE/logs
KUBECONFIG_ADMIN=$STATE/admin.kubeconfig

NODE_NAME=ballast-node
# The node's own bridge; the API server and the kubelet advertise its address.
NODE_BRIDGE=blk8s-node
NODE_IP=10.251.0.1
NODE_CIDR=10.251.0.0/24
# The pods' bridge (the CNI bridge plugin) and the ranges of pods and Services.
POD_BRIDGE=blk8s-pods
POD_CIDR=10.252.0.0/24
CLUSTER_CIDR=10.252.0.0/16
SERVICE_CIDR=10.253.0.0/16
KUBERNETES_SERVICE_IP=10.253.0.1
DNS_SERVICE_IP=10.253.0.10
CLUSTER_DOMAIN=cluster.local
APISERVER_PORT=6443
# iptables chain that drops pod traffic to anything but the ranges above.
EGRESS_CHAIN=BALLAST-KUBE-EGRESS

# The store kube-apiserver uses: three members on loopback (Ballast, or real
# etcd with BALLAST_KUBE_STORE=etcd), mutual TLS with a client certificate.
STORE=${BALLAST_KUBE_STORE:-ballast}
STORE_MEMBERS=3
store_client_port() { echo $((23790 + $1)); }
store_peer_port() { echo $((23800 + $1)); }
store_endpoints() {
  local i out=""
  for i in $(seq 1 $STORE_MEMBERS); do out+="${out:+,}https://127.0.0.1:$(store_client_port "$i")"; done
  echo "$out"
}

# Images the cluster runs, under the names the operator and the manifests use.
BALLAST_VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n1)
PAUSE_IMAGE=ballast.local/pause:1
COREDNS_IMAGE=ballast.local/coredns:$COREDNS_VERSION
TOOLS_IMAGE=ballast.local/e2e-tools:1
SERVER_IMAGE=docker.io/library/ballast:$BALLAST_VERSION
OPERATOR_IMAGE=docker.io/library/ballast-operator:$BALLAST_VERSION

log() { printf '[kube %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for SECONDS WHAT COMMAND...: runs COMMAND until it succeeds.
wait_for() {
  local limit=$1 what=$2 start=$SECONDS
  shift 2
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= limit )); then
      log "gave up after ${limit}s waiting for $what"
      return 1
    fi
    sleep 1
  done
}

# start_component NAME: runs the command kept in $RUN/cmd/NAME in the
# background, in a session of its own, logging to $LOGS/NAME.log.
start_component() {
  local name=$1 cmd
  mapfile -d '' cmd <"$RUN/cmd/$name"
  # Without job control the child is no group leader, so setsid execs in place: $! is its pid.
  setsid "${cmd[@]}" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/pids/$name.pid"
}

# stop_component NAME [SIGNAL]: signals the component's whole session and
# waits until it is gone.
stop_component() {
  local name=$1 signal=${2:-TERM} pid
  pid=$(cat "$RUN/pids/$name.pid" 2>/dev/null) || return 0
  kill -"$signal" -- "-$pid" 2>/dev/null || kill -"$signal" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null || true
}
