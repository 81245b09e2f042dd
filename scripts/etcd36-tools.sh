#!/usr/bin/env bash
# Builds real etcd, etcdctl and etcdutl of the 3.6 series from the Go module proxy, for the
# tests that compare Ballast with etcd 3.6: server/tests/seed_restore.rs (`etcdutl snapshot
# restore --bump-revision --mark-compacted`, which etcd 3.4 does not have), etcdutl36.rs
# (etcdutl's status and restore of Ballast's snapshots), and the etcdctl tests run with
# etcdctl 3.6 (`BALLAST_TEST_ETCDCTL=3.6`) against Ballast and etcd 3.6
# (`BALLAST_TEST_SERVER=etcd36`).
#
# The binaries are cached under ~/.cache/ballast-tools/etcd-<version>/, so a warm run builds
# nothing. Prints that directory. Needs Go (and network access to the module proxy on a cold run).
set -euo pipefail

version="${ETCD36_VERSION:-v3.6.16}"
dir="${BALLAST_TOOLS_CACHE:-$HOME/.cache/ballast-tools}/etcd-$version"

if [ ! -x "$dir/etcd" ] || [ ! -x "$dir/etcdctl" ] || [ ! -x "$dir/etcdutl" ]; then
  echo "building etcd, etcdctl and etcdutl $version into $dir" >&2
  tmp="$dir.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  # The modules' go.mod files have replace directives, which `go install pkg@version`
  # refuses; so the three commands are built as dependencies of a throwaway module (where
  # those directives do not apply).
  mkdir -p "$tmp/build"
  (
    cd "$tmp/build"
    export GOFLAGS=-modcacherw CGO_ENABLED=0
    go mod init ballast-etcd36-build >/dev/null 2>&1
    for module in server etcdctl etcdutl; do
      go get "go.etcd.io/etcd/$module/v3@$version" >&2
    done
    go build -o "$tmp/etcd" go.etcd.io/etcd/server/v3 >&2
    go build -o "$tmp/etcdctl" go.etcd.io/etcd/etcdctl/v3 >&2
    go build -o "$tmp/etcdutl" go.etcd.io/etcd/etcdutl/v3 >&2
  )
  mkdir -p "$dir"
  for bin in etcd etcdctl etcdutl; do
    mv "$tmp/$bin" "$dir/$bin"
  done
fi
echo "$dir"
