#!/usr/bin/env bash
# Makes the test cluster's certificates with openssl, as kubeadm lays them
# out: one CA for Kubernetes, one for the store (kubeadm's pki/etcd), a leaf
# per component, and kubeconfigs that point at the node's address.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

mkdir -p "$PKI"
cd "$PKI"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

ca() { # name cn
  [ -f "$1.crt" ] && return
  key "$1"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 30 -out "$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

leaf() { # ca name subject extended-key-usage [subject-alt-names]
  local ca=$1 name=$2 subject=$3 eku=$4 sans=${5:-}
  [ -f "$name.crt" ] && return
  key "$name"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } >"$name.ext"
  openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA "$ca.crt" -CAkey "$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 30 -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

ca kube-ca kubernetes
leaf kube-ca apiserver /CN=kube-apiserver serverAuth \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost,IP:$NODE_IP,IP:$KUBERNETES_SERVICE_IP,IP:127.0.0.1"
leaf kube-ca apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
leaf kube-ca admin "/O=system:masters/CN=kubernetes-admin" clientAuth
leaf kube-ca controller-manager /CN=system:kube-controller-manager clientAuth
leaf kube-ca scheduler /CN=system:kube-scheduler clientAuth
leaf kube-ca kube-proxy /CN=system:kube-proxy clientAuth
leaf kube-ca kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
leaf kube-ca kubelet-serving "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,IP:$NODE_IP"
[ -f sa.key ] || { key sa; openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null; }

# The store's CA and certificates, as kubeadm's pki/etcd: members serve
# clients and peers with one certificate; kube-apiserver has its own client one.
ca store-ca etcd-ca
for i in $(seq 1 "$STORE_MEMBERS"); do
  leaf store-ca "store-$i" "/CN=store-$i" serverAuth,clientAuth "DNS:localhost,IP:127.0.0.1"
done
leaf store-ca apiserver-etcd-client /CN=kube-apiserver-etcd-client clientAuth

kubeconfig() { # name user
  cat >"$STATE/$1.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: ballast-kube
  cluster:
    server: https://$NODE_IP:$APISERVER_PORT
    certificate-authority: $PKI/kube-ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$1.crt
    client-key: $PKI/$1.key
contexts:
- name: ballast-kube
  context:
    cluster: ballast-kube
    user: $2
current-context: ballast-kube
KUBECONFIG
}
kubeconfig admin kubernetes-admin
kubeconfig controller-manager system:kube-controller-manager
kubeconfig scheduler system:kube-scheduler
kubeconfig kube-proxy system:kube-proxy
kubeconfig kubelet "system:node:$NODE_NAME"
