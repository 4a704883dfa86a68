#!/usr/bin/env bash
# The in-place upgrade against a reload, under wrk: `ufork hello` (2 workers,
# default options) serves wrk -t2 -c64 in 2 s windows, 10 of each kind in
# the same run: undisturbed, with an upgrade 0.5 s into the window
# (`ufork ctl upgrade`: the arbiter execs its own file again and replaces
# every worker), and with a reload there (`ufork ctl reload`). Prints, per
# kind, the requests/s and p99 of the windows (median, and the worst p99),
# and the socket errors and non-2xx answers summed over the 10 windows (the
# target for both switches: 0 and 0). Not part of `make test`; installs wrk.
#   bench/upgrade-vs-reload.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
source "$(dirname "$0")/common.sh"
need=()
command -v wrk >/dev/null || need+=(wrk)
install_packages "${need[@]}"
ufork=$build/cli/ufork
port=18091
"$ufork" hello --bind 127.0.0.1:$port --workers 2 --control "$tmp/ctl.sock" > "$tmp/hello.log" 2>&1 < /dev/null &
pids+=($!)
server=$!
wait_port $port

window() {  # $1: kind, $2: the command 0.5 s in ("" for none); appends "req/s p99 errors non2xx" to $tmp/$1
  wrk -t2 -c64 -d2s --latency "http://127.0.0.1:$port/" > "$tmp/wrk.txt" & local w=$!
  if [ -n "$2" ]; then
    sleep 0.5
    "$ufork" ctl --socket "$tmp/ctl.sock" "$2" > "$tmp/ctl.txt" || { cat "$tmp/ctl.txt"; exit 1; }
  fi
  wait $w
  local errors
  errors=$(grep -o 'Socket errors:.*' "$tmp/wrk.txt" | grep -o '[0-9]\+' | awk '{s += $1} END {print s + 0}' || true)
  echo "$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt") $(awk '$1 == "99%" {print $2}' "$tmp/wrk.txt")" \
    "${errors:-0} $(awk '/Non-2xx/ {print $NF}' "$tmp/wrk.txt" | grep . || echo 0)" >> "$tmp/$1"
}
for _ in $(seq 10); do  # the kinds take turns, so a noisy neighbour hits them alike
  window undisturbed ""
  window upgrade upgrade
  window reload reload
done

echo "ufork hello, 2 workers, wrk -t2 -c64, 10 windows of 2 s per kind; $(nproc) CPUs"
echo "| kind | requests/s (median) | p99 (median) | p99 (worst) | socket errors | non-2xx |"
echo "|---|---|---|---|---|---|"
for kind in undisturbed upgrade reload; do
  worst=$(awk '{v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; print v}' \
    "$tmp/$kind" | sort -g | tail -1)
  printf '| %s | %s | %s ms | %s ms | %s | %s |\n' "$kind" "$(median "$tmp/$kind" 1)" "$(median "$tmp/$kind" 2)" \
    "$worst" "$(awk '{s += $3} END {print s}' "$tmp/$kind")" "$(awk '{s += $4} END {print s}' "$tmp/$kind")"
done
echo "arbiter pid $server throughout: $(grep -c "^\[ufork\] upgraded: pid $server " "$tmp/hello.log") upgrades logged by it," \
  "$(kill -0 $server && echo running)"
