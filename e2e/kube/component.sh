#!/usr/bin/env bash
# Stops, kills or restarts one process of the running test cluster, for tests
# that take a component away under load (a store member, kube-apiserver).
#
#   component.sh stop|kill|start|restart NAME     e.g. restart kube-apiserver, kill store-2
set -euo pipefail
. "$(dirname "$0")/lib.sh"

action=${1:-}
name=${2:-}
[ -f "$RUN/cmd/$name" ] || die "no component '$name' (have: $(ls "$RUN/cmd" 2>/dev/null | tr '\n' ' '))"
case "$action" in
  stop) stop_component "$name" TERM ;;
  kill) stop_component "$name" KILL ;;
  start) start_component "$name" ;;
  restart) stop_component "$name" TERM && start_component "$name" ;;
  *) die "usage: component.sh stop|kill|start|restart NAME" ;;
esac
