#!/usr/bin/env bash
# How ufork hello's keep-alive connections spread over its 2 workers: a
# fresh server each time, one wrk run of -c64 for 1 s, then each worker's
# answers from `ufork ctl workers`. Run with 1 and with 2 wrk threads.
#   bench/http-spread.sh [BUILD_DIR] [WRK_THREADS] [RUNS]
set -euo pipefail
build=${1:-build}
threads=${2:-1}
runs=${3:-5}
ufork=$build/cli/ufork
[ -x "$ufork" ] || { echo "build first: make" >&2; exit 2; }
source "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || install_packages wrk
for _ in $(seq "$runs"); do
  "$ufork" hello --workers 2 --bind 127.0.0.1:7812 --control "$tmp/s.sock" </dev/null >"$tmp/s.log" 2>&1 & pid=$!
  wait_port 7812
  rps=$(wrk -t"$threads" -c64 -d1s http://127.0.0.1:7812/ | awk '/Requests\/sec/ {print $2}')
  split=$("$ufork" ctl --socket "$tmp/s.sock" --json workers |
    /usr/bin/python3 -c "import json, sys; print(' '.join(str(w['requests']) for w in json.load(sys.stdin)['data']))")
  echo "wrk -t$threads -c64: $rps requests/s; answers per worker: $split"
  kill -TERM "$pid"; wait "$pid" || true
done
