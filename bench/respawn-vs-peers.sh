#!/usr/bin/env bash
# When workers die: ufork hello against nginx and gunicorn, each with its
# default options, measured in the same run by one outside process
# (respawn_peers) that sends the SIGKILL and watches the master's children.
#   1. respawn: SIGKILL one of 2 workers, time until the next fork;
#   2. outage: 1 worker, SIGKILL it and send a request at once: time until
#      the answer (kills 0.2 s apart);
#   3. kill-all: SIGKILL all 4 workers at once, time until 4 new ones are
#      forked (ufork forks one at a time, each after the previous is ready:
#      max_starting 1), 20 rounds 1 s apart.
#   4. ufork only (its peers have no such clock): a SIGSTOPped worker, from
#      its last heartbeat + timeout to its successor's fork, with the default
#      10 s timeout (5 hangs) and with --timeout 1 (30 hangs).
# Not part of `make test`: run it on a quiet machine, as root (it installs
# nginx and gunicorn).
#   bench/respawn-vs-peers.sh [BUILD_DIR] [KILLS]
set -euo pipefail
build=${1:-build}
kills=${2:-1000}
ufork=$build/cli/ufork
probe=$build/bench/respawn_peers
[ -x "$ufork" ] && [ -x "$probe" ] || { echo "build first: make" >&2; exit 2; }

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -x /usr/bin/gunicorn ] || need+=(gunicorn)
source "$(dirname "$0")/common.sh"
install_packages "${need[@]}"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

wait_children() {  # until master $1 has $2 children
  for _ in $(seq 400); do
    [ "$(wc -w < /proc/"$1"/task/"$1"/children)" -ge "$2" ] && return 0; sleep 0.05
  done
  echo "master $1 has fewer than $2 workers" >&2; exit 1
}

cat > "$tmp/app.py" <<'PY'
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!\n"]
PY

start() {  # $1: server, $2: workers, $3: port; sets master
  case $1 in
    ufork)
      "$ufork" hello --workers "$2" --bind 127.0.0.1:"$3" </dev/null >"$tmp/ufork-$3.log" 2>&1 & ;;
    nginx)
      cat > "$tmp/nginx-$3.conf" <<CONF
worker_processes $2;
daemon off;
pid $tmp/nginx-$3.pid;
error_log $tmp/error-$3.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$3; location / { return 200 "Hello, World!\n"; } } }
CONF
      "$nginx_bin" -c "$tmp/nginx-$3.conf" & ;;
    gunicorn)
      /usr/bin/gunicorn --workers "$2" --bind 127.0.0.1:"$3" --chdir "$tmp" app:app >"$tmp/gunicorn-$3.log" 2>&1 & ;;
  esac
  master=$!
  pids+=("$master")
  wait_port "$3"
  wait_children "$master" "$2"
  sleep 0.5  # every worker ready, and older than ufork's 100 ms minimum interval
}
stop() { kill -TERM "$master"; wait "$master" 2>/dev/null || true; }

echo "# respawn-vs-peers: default options of each server; $(nproc) cores; $(date -u +%FT%TZ)"
port=7900
for server in ufork nginx gunicorn; do
  start $server 2 $((port += 1))
  echo "$server respawn (SIGKILL -> next fork, 2 workers, $kills kills 150 ms apart): $("$probe" respawn "$master" "$kills" 150)"
  stop
  start $server 1 $((port += 1))
  echo "$server outage (1 worker, SIGKILL -> next answer, 50 kills 200 ms apart): $("$probe" outage "$master" "$port" 50 200)"
  stop
  start $server 4 $((port += 1))
  echo "$server kill-all (4 workers -> 4 new forks, 20 rounds): $("$probe" killall "$master" 4 20)"
  stop
done

for timeout in 10 1; do
  hangs=$([ $timeout = 10 ] && echo 5 || echo 30)
  port=$((port + 1))  # not inside the backgrounded command: that runs in a subshell
  "$ufork" hello --workers 2 --timeout $timeout --bind 127.0.0.1:$port --control "$tmp/c$timeout.sock" \
    </dev/null >"$tmp/hang-$timeout.log" 2>&1 &
  master=$!
  pids+=("$master")
  wait_port "$port"
  wait_children "$master" 2
  echo "ufork hang (SIGSTOP -> successor forked, past last heartbeat + ${timeout} s, $hangs hangs): $("$probe" hang "$master" "$tmp/c$timeout.sock" $((timeout * 1000)) $hangs)"
  stop
done
