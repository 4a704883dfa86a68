#!/usr/bin/env bash
# ufork hello against nginx, measured in the same run with wrk: requests/s
# and p99 latency at -c64 and -c256, 2 workers each, keep-alive with two
# client shapes (wrk -t1 and -t2: one client thread spreads its connections
# differently), and with a new connection per request (5 rounds; see
# round() below), plus the read errors
# wrk sees when each server is stopped gracefully mid-run. Not part of
# `make test`: run it on a quiet machine, as root (installs wrk and nginx).
#   bench/http-vs-nginx.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
build=${1:-build}
secs=${2:-10}
ufork=$build/cli/ufork
idle=$build/bench/idle_connections
[ -x "$ufork" ] && [ -x "$idle" ] || { echo "build first: make" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || true  # 4,000 idle connections, below, on both sides

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
source "$(dirname "$0")/common.sh"
install_packages "${need[@]}"
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)


# The same body as ufork hello, at the same length (a 5-digit pid).
cat > "$tmp/nginx.conf" <<CONF
worker_processes 2;
worker_rlimit_nofile 65536;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:7801;
    location / { default_type text/plain; return 200 "Hello, World! (from PID 12345)\n"; }
  }
}
CONF

start_nginx() { "$nginx_bin" -c "$tmp/nginx.conf" & pids+=($!); nginx_pid=$!; wait_port 7801; }
start_ufork() {  # $1: port, $2: extra flags
  "$ufork" hello --workers 2 --bind 127.0.0.1:"$1" $2 </dev/null >"$tmp/ufork-$1.log" 2>&1 & pids+=($!)
  ufork_pid=$!; wait_port "$1"
}

# Stop the server gracefully 2 s into a 5 s wrk run; wrk's read errors are
# requests dropped mid-flight (connect errors afterwards are expected).
graceful() {  # $1: url, $2: pid, $3: signal
  wrk -t2 -c64 -d5s "$1" > "$tmp/wrk-stop.txt" & local w=$!
  sleep 2; kill -"$3" "$2"; wait $w || true
  grep -o 'Socket errors:.*' "$tmp/wrk-stop.txt" || echo "Socket errors: connect 0, read 0, write 0, timeout 0"
}

# A round: each server measured for SECONDS in all, in $slices turns of
# SECONDS / $slices taking turns (nginx, ufork, ufork --reuseport, nginx,
# ...), so that the slow swings of a shared machine fall on all of them
# alike (with one 10 s turn each, a round's ratio moved by up to 0.2 either
# way on this 2-core VM). The round's figures: requests/s and worker CPU
# per request over its turns (their means: the turns are equally long),
# the highest of the turns' p99s, their socket errors summed (and wrk's
# own CPU per request, a mean too).
rounds=${ROUNDS:-5}
slices=${SLICES:-5}
fold() {  # the turns in $1, one line for the round appended to $2
  awk '{ r += $1; p = $2; if (p ~ /us$/) p /= 1000; else if (p ~ /ms$/) p += 0; else if (p ~ /s$/) p *= 1000
         if (p > m) m = p; e += $3; c += $4; w += $5; n++ }
       END { printf "%.2f %.3fms %d %.2f %.2f\n", r / n, m, e, c / n, w / n }' "$1" >> "$2"
  rm -f "$1"
}
round() {  # $1: connections, $2: keep-alive or close, then NAME PORT PID for each server
  local c=$1 kind=$2 total=$secs k i
  shift 2
  local -a s=("$@")
  secs=$((total / slices > 0 ? total / slices : 1))
  for k in $(seq "$slices"); do
    for ((i = 0; i < ${#s[@]}; i += 3)); do
      if [ "$kind" = close ]; then
        measure "turn-${s[i]}" "http://127.0.0.1:${s[i+1]}/" "$c" "${s[i+2]}" -H "Connection: close"
      else
        measure "turn-${s[i]}" "http://127.0.0.1:${s[i+1]}/" "$c" "${s[i+2]}"
      fi
    done
  done
  secs=$total
  for ((i = 0; i < ${#s[@]}; i += 3)); do fold "$tmp/turn-${s[i]}-$c.txt" "$tmp/${s[i]}-$c.txt"; done
}
start_nginx
start_ufork 7802 ""
ufork_shared_pid=$ufork_pid
start_ufork 7803 "--reuseport"
ufork_reuseport_pid=$ufork_pid

# Memory first, on servers that have not been loaded yet (memory a load
# leaves freed but kept would hide what idle connections cost).
idle_nginx=$("$idle" 7801 "$nginx_pid" 4000)
idle_ufork=$("$idle" 7802 "$ufork_shared_pid" 4000)
for threads in 1 2; do
  for c in 64 256; do
    for r in $(seq "$rounds"); do
      round $c keep-alive nginx-t$threads 7801 "$nginx_pid" ufork-t$threads 7802 "$ufork_shared_pid" \
        reuseport-t$threads 7803 "$ufork_reuseport_pid"
    done
  done
done
threads=2
# A new connection per request: accept, answer, close, each time.
for r in $(seq "$rounds"); do
  round 64 close nginx-close 7801 "$nginx_pid" ufork-close 7802 "$ufork_shared_pid"
done
# Each round's ratio to nginx's run just before it, and p99 against nginx's.
rounds_of() {  # $1: file, $2: nginx's file
  paste -d' ' "$1" "$2" | awk '{
    k = NF / 2  # columns per file, nginx from k + 1
    p = $2; if (p ~ /us$/) p /= 1000; else if (p ~ /ms$/) p += 0; else if (p ~ /s$/) p *= 1000
    q = $(k + 2); if (q ~ /us$/) q /= 1000; else if (q ~ /ms$/) q += 0; else if (q ~ /s$/) q *= 1000
    printf "%s%.2f%s", (NR > 1 ? ", " : ""), $1 / $(k + 1), (p <= q ? "" : " (p99 above)") }'
}
echo "| server (2 workers) | wrk threads | connections | requests/s, median of $rounds | p99, median | ratio to nginx | each round | worker CPU per request, median | wrk's CPU per request, median | runs with socket errors |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for t in 1 2; do
  for c in 64 256; do
    n=$(median "$tmp/nginx-t$t-$c.txt" 1)
    for name in nginx ufork reuseport; do
      f="$tmp/$name-t$t-$c.txt"
      label=$name; [ $name = ufork ] && label="ufork hello"; [ $name = reuseport ] && label="ufork hello --reuseport"
      rps=$(median "$f" 1)
      echo "| $label | $t | $c | $rps | $(median "$f" 2) ms | $(awk -v a="$rps" -v b="$n" 'BEGIN {printf "%.2f", a / b}') | $(rounds_of "$f" "$tmp/nginx-t$t-$c.txt") | $(median "$f" 4) us | $(median "$f" 5) us | $(awk '{s += $3} END {print s}' "$f") |"
    done
  done
done

echo
echo "| a new connection per request (Connection: close), 2 workers, -c64 | requests/s, median of $rounds | p99, median | ratio to nginx | each round | worker CPU per request, median | wrk's CPU per request, median |"
echo "|---|---|---|---|---|---|---|"
n=$(median "$tmp/nginx-close-64.txt" 1)
for name in nginx-close ufork-close; do
  f="$tmp/$name-64.txt"
  rps=$(median "$f" 1)
  echo "| ${name%-close} | $rps | $(median "$f" 2) ms | $(awk -v a="$rps" -v b="$n" 'BEGIN {printf "%.2f", a / b}') | $(rounds_of "$f" "$tmp/nginx-close-64.txt") | $(median "$f" 4) us | $(median "$f" 5) us |"
done

echo
echo "| 4,000 idle keep-alive connections, one request each | the workers' memory |"
echo "|---|---|"
echo "| nginx | $idle_nginx |"
echo "| ufork hello | $idle_ufork |"

echo
echo "| graceful stop during wrk -c64 | wrk socket errors |"
echo "|---|---|"
echo "| nginx, SIGQUIT (graceful) | $(graceful http://127.0.0.1:7801/ "$nginx_pid" QUIT) |"
start_ufork 7804 ""
echo "| ufork hello, SIGTERM | $(graceful http://127.0.0.1:7804/ "$ufork_pid" TERM) |"
echo "| ufork hello --reuseport, SIGTERM | $(graceful http://127.0.0.1:7803/ "$ufork_reuseport_pid" TERM) |"

# An idle server's graceful stop: from the signal to the process's exit,
# each server started afresh, 5 times, the median.
stop_ms() {  # $1: pid, $2: signal
  local t0 t1
  t0=$(date +%s%N); kill -"$2" "$1"; wait "$1" 2>/dev/null || true; t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}
for _ in 1 2 3 4 5; do
  start_nginx; sleep 0.2; stop_ms "$nginx_pid" QUIT >> "$tmp/stop-nginx"
  start_ufork 7805 ""; sleep 0.2; stop_ms "$ufork_pid" TERM >> "$tmp/stop-ufork"
done
echo
echo "| an idle server's graceful stop, signal to exit | median of 5 |"
echo "|---|---|"
echo "| nginx, SIGQUIT | $(sort -n "$tmp/stop-nginx" | sed -n 3p) us |"
echo "| ufork hello, SIGTERM | $(sort -n "$tmp/stop-ufork" | sed -n 3p) us |"
