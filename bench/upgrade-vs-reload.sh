#!/usr/bin/env bash
# The in-place upgrade against a reload, under wrk: `ufork hello` (2 workers,
# default options) serves wrk -t2 -c64 for SECS seconds three times in the
# same run: undisturbed, during 10 upgrades (`ufork ctl upgrade`: the
# arbiter execs its own file again and replaces every worker), and during
# 10 reloads (`ufork ctl reload`), one a second. Prints what wrk saw of each:
# requests/s, p99, socket errors and non-2xx answers (the target for both
# switches is 0 errors and 0 non-2xx). Not part of `make test`; installs wrk.
#   bench/upgrade-vs-reload.sh BUILD_DIR [SECS]
set -euo pipefail
build=$(cd "$1" && pwd) secs=${2:-12}
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

run() {  # $1: name, $2: the command every second ("" for none)
  wrk -t2 -c64 -d"${secs}s" --latency "http://127.0.0.1:$port/" > "$tmp/wrk-$1.txt" & local w=$!
  local done=0
  if [ -n "$2" ]; then
    sleep 1
    for _ in $(seq 10); do
      "$ufork" ctl --socket "$tmp/ctl.sock" "$2" > "$tmp/ctl.txt" || { cat "$tmp/ctl.txt"; exit 1; }
      done=$((done + 1))
      sleep 1
    done
  fi
  wait $w
  local f="$tmp/wrk-$1.txt"
  printf '| %-22s | %5d | %10s | %7s | %s | %s |\n' "$1" "$done" "$(awk '/Requests\/sec/ {print $2}' "$f")" \
    "$(awk '$1 == "99%" {print $2}' "$f")" \
    "$(grep -o 'Socket errors:.*' "$f" | sed 's/Socket errors: //' || echo 'none')" \
    "$(awk '/Non-2xx/ {print $NF}' "$f" | grep . || echo 0)"
}

echo "ufork hello, 2 workers, wrk -t2 -c64 -d${secs}s; $(nproc) CPUs"
echo "| run                    | times | requests/s |     p99 | socket errors | non-2xx |"
echo "|------------------------|-------|------------|---------|---------------|---------|"
run undisturbed ""
run "10 upgrades" upgrade
run "10 reloads" reload
[ "$(readlink /proc/$server/exe)" = "$(readlink -f "$ufork")" ] && echo "arbiter pid $server throughout"
grep -c '^\[ufork\] upgraded: pid '"$server" "$tmp/hello.log" | sed 's/$/ upgrades logged by the same pid/'
