# Sourced by the bench scripts that need a 3-member cluster on loopback of any server that
# takes etcd's flags (Ballast, etcd 3.4, 3.6):
#
#   source bench/three_members.sh
#   trap 'stop_three_members; rm -rf "$dir"' EXIT
#   start_three_members BINARY DIR [SERVER FLAGS...]   # sets $endpoints and member_pids
#   leader=$(leader_number ETCDCTL)                      # 1, 2 or 3
#
# Ports are below 32768: ephemeral ports start there, and a client's port could take a
# member's.

three_members_base=$((20000 + RANDOM % 10000))
member_pids=()
endpoints=""

# host:port of member N's client URL (N = 1, 2, 3).
client_addr() { echo "127.0.0.1:$((three_members_base + $1))"; }
peer_url() { echo "http://127.0.0.1:$((three_members_base + 10 + $1))"; }

# Starts the members with their data and logs under DIR and waits until each is healthy.
start_three_members() {
  local bin=$1 dir=$2 i
  shift 2
  local cluster
  cluster="m1=$(peer_url 1),m2=$(peer_url 2),m3=$(peer_url 3)"
  for i in 1 2 3; do
    "$bin" --name "m$i" --data-dir "$dir/m$i" \
      --listen-client-urls "http://$(client_addr "$i")" --advertise-client-urls "http://$(client_addr "$i")" \
      --listen-peer-urls "$(peer_url "$i")" --initial-advertise-peer-urls "$(peer_url "$i")" \
      --initial-cluster "$cluster" --initial-cluster-state new "$@" >"$dir/m$i.log" 2>&1 &
    member_pids+=($!)
  done
  endpoints="$(client_addr 1),$(client_addr 2),$(client_addr 3)"
  for i in 1 2 3; do
    for _ in $(seq 300); do
      curl -sf "http://$(client_addr "$i")/health" >/dev/null && continue 2
      kill -0 "${member_pids[$((i - 1))]}" 2>/dev/null || { tail -n 5 "$dir/m$i.log" >&2; return 1; }
      sleep 0.1
    done
    echo "member $i did not become healthy in 30 s" >&2
    return 1
  done
}

# Which member leads, as the members' own status says; ETCDCTL is the etcdctl to ask with.
leader_number() {
  ETCDCTL_API=3 "$1" --endpoints "$endpoints" endpoint status -w json | python3 -c '
import json, sys
for i, e in enumerate(json.load(sys.stdin), 1):
    if e["Status"]["header"]["member_id"] == e["Status"]["leader"]:
        print(i)'
}

stop_three_members() {
  kill "${member_pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
