# Sourced by the bench scripts: Debian's packages for the peers, a scratch
# directory whose servers are stopped at exit, and a wait for a port.

install_packages() {  # $@: missing packages; nginx's own service is kept from starting on port 80
  [ $# -gt 0 ] || return 0
  local policy=/usr/sbin/policy-rc.d made=""
  [ -e $policy ] || { printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; made=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  [ -z "$made" ] || rm -f $policy
}

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

wait_port() {  # until something answers on 127.0.0.1:$1
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing answers on port $1" >&2; exit 1
}
