#!/usr/bin/env bash
# Prints the path of a helm binary built from its Go module (the machines reach the Go
# module proxy, not get.helm.sh), building it into the cache on first use.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HELM_VERSION=4.3.2
dir=$CACHE/helm-$HELM_VERSION
if [ ! -x "$dir/helm" ]; then
  log "building helm $HELM_VERSION from helm.sh/helm/v4"
  mkdir -p "$dir.partial"
  # The version stamp helm's own Makefile sets, so `helm version` tells the release.
  CGO_ENABLED=0 GOBIN="$dir.partial" go install -trimpath \
    -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION" >&2
  rm -rf "$dir" && mv "$dir.partial" "$dir"
fi
echo "$dir/helm"
