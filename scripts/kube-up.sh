#!/usr/bin/env bash
# Starts a one-node Kubernetes for Ballast's end-to-end tests, in the
# background, and prints the `export KUBECONFIG=...` line to use it.
#
# Real components built from Kubernetes' source (e2e/kube/build-components.sh),
# kube-apiserver stored on a three-member Ballast cluster over mutual TLS
# (BALLAST_KUBE_STORE=etcd: real etcd with the same flags), a kubelet with
# containerd and runc, kube-proxy, CoreDNS and a default StorageClass.
# Nothing it runs can reach beyond this machine: see e2e/kube/README.md.
#
# Idempotent: a cluster that is up is left as it is; a half-started one is
# taken down first. Needs root. scripts/kube-down.sh removes everything.
set -euo pipefail
. "$(dirname "$0")/../e2e/kube/lib.sh"

[ "$(id -u)" = 0 ] || die "needs root (it runs a kubelet and makes bridges)"

if [ -f "$STATE/up" ] && KUBECONFIG=$KUBECONFIG_ADMIN "$KUBE_BIN/kubectl" get --raw /readyz >/dev/null 2>&1; then
  log "already up"
  echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
  echo "export PATH=$KUBE_BIN:\$PATH"
  exit 0
fi
"$REPO/scripts/kube-down.sh" >/dev/null 2>&1 || true

# What the node needs from Debian.
need=()
for pair in containerd:containerd runc:runc umoci:umoci iptables:iptables conntrack:conntrack \
  etcdctl:etcd-client etcd:etcd-server openssl:openssl ip:iproute2 gcc:gcc busybox:busybox-static; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

"$REPO/e2e/kube/build-components.sh"
# Our binaries: those of the test build unless BALLAST_BIN_DIR names others.
if [ -z "${BALLAST_BIN_DIR:-}" ]; then
  (cd "$REPO" && cargo build -q -p ballast -p ballast-operator -p ballast-e2e --bins)
  BALLAST_BIN_DIR=${CARGO_TARGET_DIR:-$REPO/target}/debug
fi
for b in ballast ballast-operator local-provisioner; do
  [ -x "$BALLAST_BIN_DIR/$b" ] || die "$BALLAST_BIN_DIR/$b is missing (cargo build -p ballast -p ballast-operator -p ballast-e2e)"
done

mkdir -p "$STATE" "$RUN/pids" "$RUN/cmd" "$LOGS"
"$REPO/e2e/kube/pki.sh"

# start NAME COMMAND...: runs COMMAND in the background, logging to $LOGS/NAME.log,
# and keeps the command so that e2e/kube/component.sh can restart it.
start() {
  local name=$1
  shift
  printf '%s\0' "$@" >"$RUN/cmd/$name"
  start_component "$name"
}
k() { KUBECONFIG=$KUBECONFIG_ADMIN "$KUBE_BIN/kubectl" "$@"; }

# --- Network: the node's bridge, forwarding, and the egress fence. ---
ip link add "$NODE_BRIDGE" type bridge
ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
ip link set "$NODE_BRIDGE" up
modprobe br_netfilter 2>/dev/null || true
cat /proc/sys/net/ipv4/ip_forward >"$RUN/ip_forward.saved"
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
# Pods may talk to pods, Services, the node and loopback; anything else is dropped.
iptables -N "$EGRESS_CHAIN"
for allowed in "$CLUSTER_CIDR" "$SERVICE_CIDR" "$NODE_CIDR"; do
  iptables -A "$EGRESS_CHAIN" -d "$allowed" -j RETURN
done
iptables -A "$EGRESS_CHAIN" -j DROP
iptables -I FORWARD 1 -s "$CLUSTER_CIDR" -j "$EGRESS_CHAIN"

# --- The store. ---
initial=""
for i in $(seq 1 $STORE_MEMBERS); do initial+="${initial:+,}store-$i=https://127.0.0.1:$(store_peer_port "$i")"; done
case "$STORE" in
  ballast) store_bin=$BALLAST_BIN_DIR/ballast ;;
  etcd) store_bin=$(command -v etcd) ;;
  *) die "BALLAST_KUBE_STORE must be ballast or etcd, not $STORE" ;;
esac
for i in $(seq 1 $STORE_MEMBERS); do
  mkdir -p "$STATE/store"
  start "store-$i" "$store_bin" --name "store-$i" --data-dir "$STATE/store/store-$i" \
    --listen-client-urls "https://127.0.0.1:$(store_client_port "$i")" \
    --advertise-client-urls "https://127.0.0.1:$(store_client_port "$i")" \
    --listen-peer-urls "https://127.0.0.1:$(store_peer_port "$i")" \
    --initial-advertise-peer-urls "https://127.0.0.1:$(store_peer_port "$i")" \
    --initial-cluster "$initial" --initial-cluster-token ballast-kube --initial-cluster-state new \
    --cert-file "$PKI/store-$i.crt" --key-file "$PKI/store-$i.key" --trusted-ca-file "$PKI/store-ca.crt" \
    --client-cert-auth \
    --peer-cert-file "$PKI/store-$i.crt" --peer-key-file "$PKI/store-$i.key" \
    --peer-trusted-ca-file "$PKI/store-ca.crt" --peer-client-cert-auth
done
store_health() {
  ETCDCTL_API=3 etcdctl --endpoints "$(store_endpoints)" --cacert "$PKI/store-ca.crt" \
    --cert "$PKI/apiserver-etcd-client.crt" --key "$PKI/apiserver-etcd-client.key" endpoint health
}
wait_for 60 "the store ($STORE)" store_health || die "the store did not start: $LOGS/store-*.log"
log "store: $STORE, $(store_endpoints)"

# --- containerd and the images. ---
mkdir -p "$STATE/cni/net.d" "$STATE/containerd"
cat >"$STATE/containerd/config.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$RUN/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$RUN/containerd.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE, so no process may lower its OOM score
  # (the kubelet asks -998 for sandboxes): keep scores at containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
TOML
# Pods get routes to the cluster's own ranges only: no default route.
cat >"$STATE/cni/net.d/10-ballast.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "ballast-kube",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$POD_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "$CLUSTER_CIDR"}, {"dst": "$SERVICE_CIDR"}, {"dst": "$NODE_CIDR"}],
        "dataDir": "$STATE/cni/ipam"
      }
    },
    {"type": "loopback"}
  ]
}
JSON
start containerd containerd --config "$STATE/containerd/config.toml"
wait_for 30 containerd ctr --address "$RUN/containerd.sock" version || die "containerd did not start: $LOGS/containerd.log"
"$REPO/e2e/kube/images.sh" "$BALLAST_BIN_DIR"

# --- Control plane. ---
# ConfigMaps are not cached by the API server, so that lists, pages and watches
# of them reach the store itself (the tests use them for that); every other
# resource is served from the watch cache as usual.
start kube-apiserver "$KUBE_BIN/kube-apiserver" \
  --advertise-address="$NODE_IP" --bind-address="$NODE_IP" --secure-port="$APISERVER_PORT" \
  --etcd-servers="$(store_endpoints)" --etcd-cafile="$PKI/store-ca.crt" \
  --etcd-certfile="$PKI/apiserver-etcd-client.crt" --etcd-keyfile="$PKI/apiserver-etcd-client.key" \
  --etcd-compaction-interval="${BALLAST_KUBE_COMPACTION_INTERVAL:-5m}" \
  --watch-cache-sizes=configmaps#0 \
  --client-ca-file="$PKI/kube-ca.crt" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP \
  --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range="$SERVICE_CIDR" --authorization-mode=Node,RBAC \
  --enable-admission-plugins=NodeRestriction --allow-privileged=true --profiling=false
wait_for 120 kube-apiserver k get --raw /readyz || die "kube-apiserver is not ready: $LOGS/kube-apiserver.log"
log "kube-apiserver ready on https://$NODE_IP:$APISERVER_PORT"

start kube-controller-manager "$KUBE_BIN/kube-controller-manager" \
  --kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --cluster-name=ballast-kube \
  --root-ca-file="$PKI/kube-ca.crt" --service-account-private-key-file="$PKI/sa.key" \
  --use-service-account-credentials=true --allocate-node-cidrs=false \
  --cluster-signing-cert-file="$PKI/kube-ca.crt" --cluster-signing-key-file="$PKI/kube-ca.key"
start kube-scheduler "$KUBE_BIN/kube-scheduler" \
  --kubeconfig="$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
  --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false

# --- The node. ---
echo "# no upstream resolvers: cluster DNS only" >"$STATE/resolv.conf"
cat >"$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/kube-ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$RUN/containerd.sock
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $STATE/resolv.conf
podCIDR: $POD_CIDR
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
YAML
start kubelet "$KUBE_BIN/kubelet" --config="$STATE/kubelet.yaml" \
  --kubeconfig="$STATE/kubelet.kubeconfig" --root-dir="$STATE/kubelet" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
cat >"$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [$NODE_IP/32]
conntrack: {maxPerCore: 0}
YAML
start kube-proxy "$KUBE_BIN/kube-proxy" --config="$STATE/kube-proxy.yaml"
node_ready() { k get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True; }
wait_for 120 "node $NODE_NAME to be Ready" node_ready || die "the node is not Ready: $LOGS/kubelet.log"

# --- Add-ons. ---
start local-provisioner env KUBECONFIG="$KUBECONFIG_ADMIN" "$BALLAST_BIN_DIR/local-provisioner" "$STATE/volumes"
sed -e "s|@CLUSTER_DOMAIN@|$CLUSTER_DOMAIN|g" -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" \
  -e "s|@DNS_SERVICE_IP@|$DNS_SERVICE_IP|g" "$REPO/e2e/kube/manifests/addons.yaml" | k apply -f - >/dev/null
k -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null ||
  die "CoreDNS did not become ready: kubectl -n kube-system describe pods"

touch "$STATE/up"
log "up: one node, store $STORE"
echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
# The kubectl built with the cluster (the machine may have an older one).
echo "export PATH=$KUBE_BIN:\$PATH"
