#!/usr/bin/env bash
# Two builds of `ufork hello` against each other, wrk -t2: keep-alive at
# -c64 and -c256, and a new connection per request at -c64 ("close"), the
# two taking turns round after round (a noisy neighbour hits both alike):
# did a change make the helper faster or slower? Medians of the rounds, and
# B's ratio to A. Default options, 2 workers each.
#   bench/http-ab.sh BUILD_A BUILD_B [ROUNDS] [SECONDS]
set -euo pipefail
a=$1/cli/ufork
b=$2/cli/ufork
rounds=${3:-10}
secs=${4:-5}
[ -x "$a" ] && [ -x "$b" ] || { echo "usage: bench/http-ab.sh BUILD_A BUILD_B [ROUNDS] [SECONDS]" >&2; exit 2; }
source "$(dirname "$0")/common.sh"
command -v wrk >/dev/null || install_packages wrk

"$a" hello --workers 2 --bind 127.0.0.1:7811 </dev/null >"$tmp/a.log" 2>&1 & pids+=($!); a_pid=$!
"$b" hello --workers 2 --bind 127.0.0.1:7812 </dev/null >"$tmp/b.log" 2>&1 & pids+=($!); b_pid=$!
wait_port 7811
wait_port 7812
for c in 64 256; do
  for _ in $(seq "$rounds"); do
    measure A http://127.0.0.1:7811/ $c "$a_pid"
    measure B http://127.0.0.1:7812/ $c "$b_pid"
  done
done
for _ in $(seq "$rounds"); do
  measure A-close http://127.0.0.1:7811/ 64 "$a_pid" -H "Connection: close"
  measure B-close http://127.0.0.1:7812/ 64 "$b_pid" -H "Connection: close"
done
echo "| build | connections (close: 64, a new one per request) | requests/s, median of $rounds | p99, median | worker CPU per request, median | wrk's CPU per request, median | B / A requests/s | runs with socket errors |"
echo "|---|---|---|---|---|---|---|---|"
for c in 64 256 close; do
  [ $c = close ] && a_file="$tmp/A-close-64.txt" || a_file="$tmp/A-$c.txt"
  ra=$(median "$a_file" 1)
  for x in A B; do
    [ $c = close ] && f="$tmp/$x-close-64.txt" || f="$tmp/$x-$c.txt"
    rps=$(median "$f" 1)
    echo "| $x | $c | $rps | $(median "$f" 2) ms | $(median "$f" 4) us | $(median "$f" 5) us | $(awk -v a="$rps" -v b="$ra" 'BEGIN {printf "%.3f", a / b}') | $(awk '{s += $3} END {print s}' "$f") |"
  done
done
