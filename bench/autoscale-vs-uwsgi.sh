#!/usr/bin/env bash
# Autoscaling against uWSGI's cheaper subsystem, in one run: a WSGI app that
# spends 10 ms of CPU per request (bench/wsgi_cpu.py), load stepping from
# wrk -c1 (5 s) to -t2 -c64 (10 s) and back to -c1 (5 s), then none
# (bench/autoscale_step.py). For each server: the time from the step until
# it has 8 worker processes (forked; sampled every 2 ms from /proc), the p99
# of the 10 s after the step, failed requests throughout, and the pool's PSS
# and workers IDLE seconds after the load stopped (default 20: ufork's
# default idle timeout, 10 s, plus 10 s). The references: ufork fixed at 8
# (the p99) and at 1 worker (the memory). Every server with its defaults but
# the flags printed beside it. Installs Debian's uwsgi and wrk. Not part of
# `make test`.
#   [SERVERS="ufork-auto uwsgi-spare"] [IDLE=20] bench/autoscale-vs-uwsgi.sh [BUILD_DIR]
set -euo pipefail
build=$(realpath "${1:-build}")
[ -d "$build/python/ufork" ] || { echo "build first: make (the Python module)" >&2; exit 2; }
here=$(dirname "$(realpath "$0")")
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v uwsgi >/dev/null || need+=(uwsgi)
[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || need+=(uwsgi-plugin-python3)
source "$here/common.sh"
install_packages "${need[@]}"
idle=${IDLE:-20}
cd "$here"
export PYTHONPATH="$build/python:$here"

flags() {  # $1: name, $2: port: the command line in cmd, its distinctive flags in shown
  local serve="import ufork, wsgi_cpu; ufork.serve_wsgi(wsgi_cpu.app, ('127.0.0.1', $2)"
  local uwsgi=(uwsgi --plugin python3 --master --http-socket 127.0.0.1:$2 --module wsgi_cpu:app --die-on-term
               --disable-logging)
  case $1 in
    ufork-auto) shown="min_workers=1, max_workers=8"; cmd=(/usr/bin/python3 -c "$serve, $shown)") ;;
    ufork-8) shown="size=8"; cmd=(/usr/bin/python3 -c "$serve, $shown)") ;;
    ufork-1) shown="size=1"; cmd=(/usr/bin/python3 -c "$serve, $shown)") ;;
    uwsgi-spare) shown="--processes 8 --cheaper 1"; cmd=("${uwsgi[@]}" $shown) ;;
    uwsgi-busyness) shown="--processes 8 --cheaper 1 --cheaper-algo busyness"
                    cmd=("${uwsgi[@]}" --plugin cheaper_busyness $shown) ;;
    uwsgi-backlog) shown="--processes 8 --cheaper 1 --cheaper-algo backlog"; cmd=("${uwsgi[@]}" $shown) ;;
  esac
}

echo "ufork $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'); $(uwsgi --version | sed 's/^/uWSGI /'); $(/usr/bin/python3 --version); wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'); $(nproc) CPUs"
echo "load: wrk -c1 5 s, -t2 -c64 10 s (the step), -c1 5 s; memory ${idle} s after"
printf "%-15s %-52s %9s %9s %7s %7s %9s %8s\n" server flags "to 8" "p99 step" failed "PSS" "workers" "PSS/1w"
port=7950
declare -A row
for name in ${SERVERS:-ufork-8 ufork-1 ufork-auto uwsgi-spare uwsgi-busyness uwsgi-backlog}; do
  port=$((port + 1))
  flags $name $port
  "${cmd[@]}" </dev/null >"$tmp/$name.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_port $port
  sleep 1
  row[$name]=$(/usr/bin/python3 "$here/autoscale_step.py" "$pid" "http://127.0.0.1:$port/" 8 "$idle")
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  read -r to8 p99 failed pss left <<<"${row[$name]}"
  ratio=-
  [ -n "${row[ufork-1]:-}" ] && ratio=$(awk -v a="$pss" -v b="$(awk '{print $4}' <<<"${row[ufork-1]}")" 'BEGIN {printf "%.2f", a / b}')
  printf "%-15s %-52s %8ss %7sms %7s %6sM %9s %8s\n" "$name" "$shown" "$to8" "$p99" "$failed" "$pss" "$left" "$ratio"
done
