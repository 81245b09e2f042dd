#!/usr/bin/env bash
# Builds the test cluster's images without Docker and imports them into its
# containerd: OCI layouts made with umoci, each holding our binaries and the
# host's C library they link (the content of the distroless `cc` base the
# Dockerfiles in operator/docker use), under the names the operator and the
# manifests refer to.
#
#   images.sh BIN_DIR     BIN_DIR holds ballast and ballast-operator
set -euo pipefail
. "$(dirname "$0")/lib.sh"

bin_dir=$1
work=$STATE/images
rm -rf "$work" && mkdir -p "$work"

# rootfs DIR FILE...: copies executables and the shared libraries they load.
rootfs() {
  local dir=$1 file lib
  shift
  mkdir -p "$dir/usr/local/bin" "$dir/etc" "$dir/tmp"
  chmod 1777 "$dir/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/etc/group"
  for file in "$@"; do
    install -m 0755 "$file" "$dir/usr/local/bin/$(basename "$file")"
    for lib in $(ldd "$file" 2>/dev/null | grep -o '/[^ ]*' || true); do
      mkdir -p "$dir$(dirname "$lib")"
      cp -L "$lib" "$dir$lib"
    done
  done
}

# image NAME ROOTFS USER ENTRYPOINT...: an OCI image imported as NAME.
image() {
  local name=$1 root=$2 user=$3
  shift 3
  local layout=$work/$(echo "$name" | tr '/:' '__')
  local entry=() arg
  for arg in "$@"; do entry+=(--config.entrypoint "$arg"); done
  umoci init --layout "$layout"
  umoci new --image "$layout:image"
  umoci insert --image "$layout:image" "$root" /
  umoci config --image "$layout:image" --config.user "$user" \
    --config.env PATH=/usr/local/bin:/usr/bin:/bin "${entry[@]}"
  umoci gc --layout "$layout"
  tar -C "$layout" -cf "$layout.tar" .
  ctr --address "$RUN/containerd.sock" -n k8s.io images import --base-name "${name%:*}" "$layout.tar" >/dev/null
  # The layout's tag is "image"; give the import the name pods use.
  ctr --address "$RUN/containerd.sock" -n k8s.io images rm "$name" >/dev/null 2>&1 || true
  ctr --address "$RUN/containerd.sock" -n k8s.io images tag "${name%:*}:image" "$name" >/dev/null
  ctr --address "$RUN/containerd.sock" -n k8s.io images rm "${name%:*}:image" >/dev/null
  log "image $name"
}

rootfs "$work/pause" "$CACHE/pause/pause"
image "$PAUSE_IMAGE" "$work/pause" 65535:65535 /usr/local/bin/pause

rootfs "$work/coredns" "$COREDNS_BIN/coredns"
image "$COREDNS_IMAGE" "$work/coredns" 65532:65532 /usr/local/bin/coredns

rootfs "$work/server" "$bin_dir/ballast"
image "$SERVER_IMAGE" "$work/server" 65532:65532 /usr/local/bin/ballast

rootfs "$work/operator" "$bin_dir/ballast-operator"
cp /etc/ssl/certs/ca-certificates.crt "$work/operator/etc/" 2>/dev/null || true
image "$OPERATOR_IMAGE" "$work/operator" 65532:65532 /usr/local/bin/ballast-operator

# A client host for the tests: real etcdctl, and busybox (static) for looking at the
# pod's network; it idles until a test execs into it.
rootfs "$work/tools" "$(command -v etcdctl)" "$(command -v busybox)" "$CACHE/pause/pause"
image "$TOOLS_IMAGE" "$work/tools" 65532:65532 /usr/local/bin/pause
