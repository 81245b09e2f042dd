#!/usr/bin/env bash
# Builds etcd's own load generator, `benchmark` (tools/benchmark of the etcd 3.6 line, on
# the Go clientv3 that kube-apiserver uses), for bench/compare.py, which runs it beside
# ballast-bench so every figure exists for both clients.
#
# Why not `go install go.etcd.io/etcd/v3/tools/benchmark@v3.6.16`: the tool lives in the
# root module go.etcd.io/etcd/v3, whose go.mod has replace directives (which `go install
# pkg@version` refuses), and the module proxy does not serve every root-module version
# (v3.6.16 answers 403 here; v3.6.8 is served). tools/benchmark is unchanged from v3.6.8
# to v3.6.14 (git diff --stat in etcd's repository is empty), so this script takes the
# tool's source from the newest served root module, ETCD36_BENCHMARK_SOURCE (v3.6.8),
# and builds it as its own module against the $ETCD36_VERSION (v3.6.16) client, server
# and pkg modules: the same clientv3 and gRPC as etcd 3.6.16's etcdctl.
#
# The binary is cached as ~/.cache/ballast-tools/etcd-<version>/benchmark, so a warm run
# builds nothing. Prints its path. Needs Go and the module proxy on a cold run.
set -euo pipefail

version="${ETCD36_VERSION:-v3.6.16}"
source_version="${ETCD36_BENCHMARK_SOURCE:-v3.6.8}"
dir="${BALLAST_TOOLS_CACHE:-$HOME/.cache/ballast-tools}/etcd-$version"
bin="$dir/benchmark"

if [ ! -x "$bin" ]; then
  echo "building etcd's benchmark tool (source $source_version, modules $version) into $dir" >&2
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/etcd-benchmark-build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  export GOFLAGS=-modcacherw CGO_ENABLED=0
  # 1. The root module's source (only its tools/benchmark directory is used).
  root="$(cd "$tmp" && go mod download -json "go.etcd.io/etcd/v3@$source_version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$root/tools/benchmark" ] || { echo "no tools/benchmark in go.etcd.io/etcd/v3@$source_version" >&2; exit 1; }
  mkdir -p "$tmp/src"
  cp -r "$root/tools/benchmark/." "$tmp/src/"
  chmod -R u+w "$tmp/src"
  # 2. A go.mod for the tool alone. Its module path is the package's own import path, so
  # the tool's import of .../tools/benchmark/cmd resolves inside it without edits. The
  # requirements are the root module's (pinned versions, no replace directives), with
  # the etcd modules raised to $version and the modules the tool does not import left out.
  rootmod="$(cd "$tmp" && go mod download -json "go.etcd.io/etcd/v3@$source_version" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  {
    echo "module go.etcd.io/etcd/v3/tools/benchmark"
    echo
    sed -n '/^go [0-9]/p' "$rootmod"
    echo
    awk '/^require \(/{on=1; print; next} on && /^\)/{on=0; print; next} on' "$rootmod" |
      grep -v -e 'go.etcd.io/etcd/tests/v3' -e 'go.etcd.io/etcd/etcdctl/v3' -e 'go.etcd.io/etcd/etcdutl/v3' |
      sed -E "s#^([[:space:]]*go\.etcd\.io/etcd/[a-z/]+/v3) v[^ ]+#\1 $version#"
  } >"$tmp/src/go.mod"
  (
    cd "$tmp/src"
    go mod tidy >&2
    go build -trimpath -o "$tmp/benchmark" . >&2
  )
  mkdir -p "$dir"
  mv "$tmp/benchmark" "$bin"
fi
echo "$bin"
