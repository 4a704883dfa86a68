#!/usr/bin/env bash
# A pool's real memory (PSS and USS, bench/pool_memory.py) at start and
# after 10,000 and 50,000 requests, with throughput and p99: ufork's
# serve_wsgi (defaults: the collector frozen before each fork; and with
# gc_freeze=False, to show what the default does) against gunicorn --preload,
# gunicorn and uWSGI --master, 4 workers each, every server with its own
# defaults otherwise, on a Django 3.2 site (bench/django_site: admin, auth,
# sessions, messages, a template page) or the hello app. One server at a
# time: start, measure, stop. ufork-refork: serve_wsgi with
# refork_after=[$REFORK_AFTER] (default 100,1000: a worker past 100 requests
# becomes the mold the others are forked from; one of theirs past 1,000, the next). Installs Debian's python3-django, gunicorn,
# uwsgi and wrk. Not part of `make test`.
#   [SERVERS="ufork uwsgi"] [CONNS=8] [SECS=10] [REFORK_AFTER=100,1000] bench/memory-vs-peers.sh [BUILD_DIR] [django|hello]
set -euo pipefail
build=$(realpath "${1:-build}")
app=${2:-django}
[ -d "$build/python/ufork" ] || { echo "build first: make (the Python module)" >&2; exit 2; }
here=$(dirname "$(realpath "$0")")
source "$here/common.sh"
mapfile -t need < <(wsgi_peers_missing)
install_packages "${need[@]}"

workers=4
conns=${CONNS:-8}
refork=${REFORK_AFTER:-100,1000}  # ufork-refork: refork_after, requests per worker, one threshold per generation
secs=${SECS:-10}
if [ "$app" = django ]; then
  dir=$here/django_site module=bench_django.wsgi callable=application
else
  dir=$here module=wsgi_hello callable=app
fi
cd "$dir"
export PYTHONPATH="$build/python:$dir" DJANGO_SETTINGS_MODULE=bench_django.settings

serve() {  # $1: name, $2: port: the server's command line, in cmd
  local port=$2 py="import ufork, $module; ufork.serve_wsgi($module.$callable, ('127.0.0.1', $2), size=$workers"
  case $1 in
    ufork) cmd=(/usr/bin/python3 -c "$py)") ;;
    ufork-nofreeze) cmd=(/usr/bin/python3 -c "$py, gc_freeze=False)") ;;
    ufork-refork) cmd=(/usr/bin/python3 -c "$py, refork_after=[$refork])") ;;
    gunicorn-preload) cmd=(/usr/bin/python3 -m gunicorn --preload -w $workers -b 127.0.0.1:$port $module:$callable) ;;
    gunicorn) cmd=(/usr/bin/python3 -m gunicorn -w $workers -b 127.0.0.1:$port $module:$callable) ;;
    uwsgi) cmd=(uwsgi --plugin python3 --master --processes $workers --http-socket 127.0.0.1:$port
                --module $module:$callable --die-on-term) ;;
  esac
}

# The workers up (the root and its children) and a second's settling for those
# that load the app after their fork.
wait_pool() {  # $1: root pid
  for _ in $(seq 200); do
    [ "$(/usr/bin/python3 "$here/pool_memory.py" "$1" | awk '{print $3}')" -ge $((workers + 1)) ] && break
    sleep 0.05
  done
  sleep 1
}

requests() {  # $1: url, $2: how many answers (each a 200, or the run ends)
  REQUESTS=$2 wrk -t1 -c"$conns" -d600s -s "$here/stop_after.lua" "$1" > /dev/null
}
rate() {  # $1: url; wrk's requests/s and p99 over $secs seconds
  wrk -t1 -c"$conns" -d"${secs}s" --latency "$1" > "$tmp/wrk.txt"
  # A read error is a server closing after its answer (uWSGI's --http-socket without keep-alive).
  ! grep -qE 'Non-2xx|connect [1-9]|write [1-9]|timeout [1-9]' "$tmp/wrk.txt" || { cat "$tmp/wrk.txt" >&2; echo "errors above" >&2; exit 1; }
  echo "$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$tmp/wrk.txt") $(awk '$1 == "99%" {print $2}' "$tmp/wrk.txt")"
}

port=7850
printf "%-17s %14s %14s %14s %14s %9s %9s\n" "$app, $workers workers" "PSS start" "PSS 10k" "PSS 50k" "USS 50k" "req/s" "p99"
for name in ${SERVERS:-ufork ufork-refork ufork-nofreeze gunicorn-preload gunicorn uwsgi}; do
  port=$((port + 1))
  serve $name $port
  "${cmd[@]}" </dev/null >"$tmp/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_port "$port"
  wait_pool "$pid"
  start=$(/usr/bin/python3 "$here/pool_memory.py" "$pid")
  requests "http://127.0.0.1:$port/" 10000
  at10k=$(/usr/bin/python3 "$here/pool_memory.py" "$pid")
  requests "http://127.0.0.1:$port/" 40000
  at50k=$(/usr/bin/python3 "$here/pool_memory.py" "$pid")
  rest=$(rate "http://127.0.0.1:$port/")
  printf "%-17s %10s MiB %10s MiB %10s MiB %10s MiB %9s %9s\n" "$name" "$(echo "$start" | cut -d' ' -f1)" \
    "$(echo "$at10k" | cut -d' ' -f1)" "$(echo "$at50k" | cut -d' ' -f1)" "$(echo "$at50k" | cut -d' ' -f2)" \
    "$(echo "$rest" | cut -d' ' -f1)" "$(echo "$rest" | cut -d' ' -f2)"
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  # What each generation did: kept (the pool's PSS went down) or let go.
  grep -hoE 'refork: (generation [0-9]+ done: .*|the mold of generation .* is let go: [^;]*)' "$tmp/$name.log" |
    sed 's/^/    /' || true
done
echo "(PSS and USS summed over the root process and its workers; req/s and p99: wrk -t1 -c$conns for ${secs} s after the 50,000)"
