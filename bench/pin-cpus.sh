#!/usr/bin/env bash
# What --pin-cpus does to `ufork hello` on this machine: 2 workers, pinned
# (worker i on CPU i) or not, wrk -t2 -c64 -d5s on the same machine, 3 rounds
# interleaved. Prints each round and the medians' ratio.
#   bench/pin-cpus.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
ufork=$build/cli/ufork
[ -x "$ufork" ] || { echo "build first: make" >&2; exit 2; }
need=()
command -v wrk >/dev/null || need+=(wrk)
source "$(dirname "$0")/common.sh"
install_packages "${need[@]}"

round() {  # $1: flags, $2: port; prints requests/s
  # shellcheck disable=SC2086
  "$ufork" hello --workers 2 --bind 127.0.0.1:"$2" $1 </dev/null >/dev/null 2>&1 &
  local pid=$!
  wait_port "$2"; sleep 0.5
  wrk -t2 -c64 -d5s http://127.0.0.1:"$2"/ | awk '/^Requests\/sec/ {print $2}'
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
}
echo "# pin-cpus: ufork hello --workers 2, $(nproc) cores; $(date -u +%FT%TZ)"
port=8300
plain=() pinned=()
for r in 1 2 3; do
  a=$(round "" $((port += 1))); b=$(round --pin-cpus $((port += 1)))
  plain+=("$a"); pinned+=("$b")
  echo "round $r: not pinned $a requests/s, pinned $b requests/s"
done
median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
mp=$(median "${plain[@]}"); mq=$(median "${pinned[@]}")
echo "median: not pinned $mp, pinned $mq requests/s; ratio pinned / not $(awk -v a="$mq" -v b="$mp" 'BEGIN {printf "%.3f", a / b}')"
