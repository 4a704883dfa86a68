#!/usr/bin/env bash
# serve_wsgi (`import ufork`: the C++ HTTP helper calling a Python WSGI app)
# against Debian's gunicorn, sync and gevent workers, on the same hello app
# (bench/wsgi_hello.py), 2 workers each, every server with its own defaults:
# wrk's requests/s and p99 at -c64, the servers taking turns for ROUNDS
# rounds (default 3), medians. Not part of `make test`; as root on a quiet
# machine (installs wrk and gunicorn).
#   bench/wsgi-vs-gunicorn.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
build=$(realpath "${1:-build}")
secs=${2:-10}
[ -d "$build/python/ufork" ] || { echo "build first: make (the Python module)" >&2; exit 2; }
here=$(dirname "$(realpath "$0")")

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v gunicorn >/dev/null || need+=(gunicorn)
/usr/bin/python3 -c 'import gevent' 2>/dev/null || need+=(python3-gevent)
source "$here/common.sh"
install_packages "${need[@]}"

start() {  # $1: name, $2: port, $3...: the command
  local name=$1 port=$2
  shift 2
  "$@" </dev/null >"$tmp/$name.log" 2>&1 & pids+=($!)
  eval "${name}_pid=$!"
  wait_port "$port"
}
cd "$here"
start ufork 7811 env PYTHONPATH="$build/python" /usr/bin/python3 -c \
  "import ufork, wsgi_hello; ufork.serve_wsgi(wsgi_hello.app, ('127.0.0.1', 7811), size=2)"
start sync 7812 /usr/bin/python3 -m gunicorn -w 2 -b 127.0.0.1:7812 wsgi_hello:app
start gevent 7813 /usr/bin/python3 -m gunicorn -w 2 -k gevent -b 127.0.0.1:7813 wsgi_hello:app

rounds=${ROUNDS:-3}
c=64
for r in $(seq "$rounds"); do
  measure ufork http://127.0.0.1:7811/ $c "$ufork_pid"
  measure sync http://127.0.0.1:7812/ $c "$sync_pid"
  measure gevent http://127.0.0.1:7813/ $c "$gevent_pid"
done
echo "| WSGI server (2 workers, wrk -c$c, ${secs} s) | requests/s, median of $rounds | p99, median | ratio to gunicorn sync | worker CPU per request, median | runs with socket errors |"
echo "|---|---|---|---|---|---|"
s=$(median "$tmp/sync-$c.txt" 1)
for name in ufork sync gevent; do
  f="$tmp/$name-$c.txt"
  case $name in ufork) label="ufork.serve_wsgi";; sync) label="gunicorn (sync)";; gevent) label="gunicorn -k gevent";; esac
  rps=$(median "$f" 1)
  echo "| $label | $rps | $(median "$f" 2) ms | $(awk -v a="$rps" -v b="$s" 'BEGIN {printf "%.2f", a / b}') | $(median "$f" 4) us | $(awk '{s += $3} END {print s}' "$f") |"
done
