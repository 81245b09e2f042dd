#!/usr/bin/env bash
# Builds the test cluster's Kubernetes components from the k8s.io/kubernetes
# module, CoreDNS from its module, and our pause program, into the cache
# (keyed by version: a warm run finds them and builds nothing).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

complete() {
  local dir=$1
  shift
  for c in "$@"; do [ -x "$dir/$c" ] || return 1; done
}

if ! complete "$KUBE_BIN" "${KUBE_COMMANDS[@]}"; then
  log "building Kubernetes $KUBE_VERSION (${KUBE_COMMANDS[*]}); a cold build takes a while"
  mkdir -p "$KUBE_BIN.partial"
  pkgs=()
  for c in "${KUBE_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  # One go invocation: the commands share most packages, built once.
  # The version stamp Kubernetes' own build sets (hack/lib/version.sh), so that
  # `kubectl version` and the node report the release.
  stamp=""
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    stamp+=" -X $pkg.gitVersion=v$KUBE_VERSION -X $pkg.gitMajor=${KUBE_VERSION%%.*}"
    stamp+=" -X $pkg.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X $pkg.gitTreeState=clean"
  done
  # They run on the host only, so they may link the host's C library.
  (cd "$REPO/e2e/kube/components" &&
    go build -trimpath -ldflags="-s -w$stamp" -o "$KUBE_BIN.partial/" "${pkgs[@]}")
  rm -rf "$KUBE_BIN" && mv "$KUBE_BIN.partial" "$KUBE_BIN"
fi

if ! complete "$COREDNS_BIN" coredns; then
  log "building CoreDNS $COREDNS_VERSION"
  mkdir -p "$COREDNS_BIN.partial"
  # Static: its image holds nothing but the binary.
  (cd "$REPO/e2e/kube/coredns" &&
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$COREDNS_BIN.partial/coredns" .)
  rm -rf "$COREDNS_BIN" && mv "$COREDNS_BIN.partial" "$COREDNS_BIN"
fi

pause=$CACHE/pause/pause
src=$REPO/e2e/kube/images/pause.c
if [ ! -x "$pause" ] || [ "$src" -nt "$pause" ]; then
  mkdir -p "$(dirname "$pause")"
  gcc -static -Os -Wall -Wextra -Werror -o "$pause.partial" "$src"
  mv "$pause.partial" "$pause"
fi
