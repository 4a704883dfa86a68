#!/usr/bin/env bash
# What reforking costs a request: serve_wsgi on the Django site
# (bench/django_site), 4 workers, with the defaults (A) and with
# refork_after (B; default [100, 1000]), both up at once; 50,000 requests to
# each first (past both thresholds: B's generations are done), then wrk -t1
# -c8 on each in turn, round after round (a noisy neighbour hits both
# alike). Medians of req/s, p99 and the workers' CPU per request, B's ratio
# to A, each pool's PSS after, and what B's generations did.
#   [REFORK_AFTER=100,1000] [ROUNDS=8] [SECS=5] bench/refork-ab.sh [BUILD_DIR]
set -euo pipefail
build=$(realpath "${1:-build}")
here=$(dirname "$(realpath "$0")")
[ -d "$build/python/ufork" ] || { echo "build first: make (the Python module)" >&2; exit 2; }
source "$here/common.sh"
need=()
command -v wrk >/dev/null || need+=(wrk)
/usr/bin/python3 -c 'import django' 2>/dev/null || need+=(python3-django)
install_packages "${need[@]}"
rounds=${ROUNDS:-8}
secs=${SECS:-5}
refork=${REFORK_AFTER:-100,1000}
threads=1  # measure(): wrk -t1
cd "$here/django_site"
export PYTHONPATH="$build/python:$here/django_site" DJANGO_SETTINGS_MODULE=bench_django.settings
py="import ufork, bench_django.wsgi as w; ufork.serve_wsgi(w.application, ('127.0.0.1', PORT), size=4"
/usr/bin/python3 -c "${py/PORT/7861})" </dev/null >"$tmp/a.log" 2>&1 &
pids+=($!) a_pid=$!
/usr/bin/python3 -c "${py/PORT/7862}, refork_after=[$refork])" </dev/null >"$tmp/b.log" 2>&1 &
pids+=($!) b_pid=$!
wait_port 7861
wait_port 7862
for port in 7861 7862; do
  REQUESTS=50000 wrk -t1 -c8 -d600s -s "$here/stop_after.lua" "http://127.0.0.1:$port/" > /dev/null
done
for _ in $(seq "$rounds"); do
  measure A http://127.0.0.1:7861/ 8 "$a_pid"
  measure B http://127.0.0.1:7862/ 8 "$b_pid"
done
ra=$(median "$tmp/A-8.txt" 1)
echo "| pool | req/s, median of $rounds | p99, median | workers' CPU per request, median | B / A req/s | runs with socket errors | PSS after |"
echo "|---|---|---|---|---|---|---|"
for x in A B; do
  pid=$a_pid
  [ $x = B ] && pid=$b_pid
  f="$tmp/$x-8.txt"
  rps=$(median "$f" 1)
  echo "| $x | $rps | $(median "$f" 2) ms | $(median "$f" 4) us | $(awk -v a="$rps" -v b="$ra" 'BEGIN {printf "%.3f", a / b}') |" \
    "$(awk '{s += $3} END {print s}' "$f") | $(/usr/bin/python3 "$here/pool_memory.py" "$pid" | cut -d' ' -f1) MiB |"
done
echo "(A: serve_wsgi's defaults; B: refork_after=[$refork]; wrk -t1 -c8, ${secs} s a round, the pools in turn)"
grep -hoE 'refork: (generation [0-9]+ done: .*|the mold of generation .* is let go: [^;]*)' "$tmp/b.log" | sed 's/^/    /' || true
