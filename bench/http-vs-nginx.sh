#!/usr/bin/env bash
# ufork hello against nginx, measured in the same run with wrk: requests/s
# and p99 latency at -c64 and -c256, 2 workers each, plus the read errors
# wrk sees when each server is stopped gracefully mid-run. Not part of
# `make test`: run it on a quiet machine, as root (installs wrk and nginx).
#   bench/http-vs-nginx.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
build=${1:-build}
secs=${2:-10}
ufork=$build/cli/ufork
[ -x "$ufork" ] || { echo "build first: make" >&2; exit 2; }

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  # Keep the package's own nginx service from starting on port 80.
  policy=/usr/sbin/policy-rc.d
  [ -e $policy ] || { printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; trap 'rm -f /usr/sbin/policy-rc.d' EXIT; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

wait_port() {  # until something answers on 127.0.0.1:$1
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing answers on port $1" >&2; exit 1
}

# The same body as ufork hello, at the same length (a 5-digit pid).
cat > "$tmp/nginx.conf" <<CONF
worker_processes 2;
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

# wrk's "Requests/sec" and the p99 of its --latency distribution.
measure() {  # $1: url, $2: connections
  wrk -t2 -c"$2" -d"${secs}s" --latency "$1" > "$tmp/wrk.txt"
  rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
  p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk.txt")
  errors=$(grep -o 'Socket errors:.*' "$tmp/wrk.txt" || echo "Socket errors: none")
  echo "$rps $p99 $errors"
}

# Stop the server gracefully 2 s into a 5 s wrk run; wrk's read errors are
# requests dropped mid-flight (connect errors afterwards are expected).
graceful() {  # $1: url, $2: pid, $3: signal
  wrk -t2 -c64 -d5s "$1" > "$tmp/wrk-stop.txt" & local w=$!
  sleep 2; kill -"$3" "$2"; wait $w || true
  grep -o 'Socket errors:.*' "$tmp/wrk-stop.txt" || echo "Socket errors: connect 0, read 0, write 0, timeout 0"
}

echo "| server | connections | requests/s | p99 | ratio to nginx | wrk errors |"
echo "|---|---|---|---|---|---|"
start_nginx
start_ufork 7802 ""
start_ufork 7803 "--reuseport"
ufork_reuseport_pid=$ufork_pid
for c in 64 256; do
  read -r n_rps n_p99 n_err <<<"$(measure http://127.0.0.1:7801/ $c)"
  echo "| nginx | $c | $n_rps | $n_p99 | 1.00 | $n_err |"
  for port in 7802 7803; do
    read -r u_rps u_p99 u_err <<<"$(measure http://127.0.0.1:$port/ $c)"
    name="ufork hello"; [ $port = 7803 ] && name="ufork hello --reuseport"
    echo "| $name | $c | $u_rps | $u_p99 | $(awk -v a="$u_rps" -v b="$n_rps" 'BEGIN {printf "%.2f", a / b}') | $u_err |"
  done
done

echo
echo "| graceful stop during wrk -c64 | wrk socket errors |"
echo "|---|---|"
echo "| nginx, SIGQUIT (graceful) | $(graceful http://127.0.0.1:7801/ "$nginx_pid" QUIT) |"
start_ufork 7804 ""
echo "| ufork hello, SIGTERM | $(graceful http://127.0.0.1:7804/ "$ufork_pid" TERM) |"
echo "| ufork hello --reuseport, SIGTERM | $(graceful http://127.0.0.1:7803/ "$ufork_reuseport_pid" TERM) |"
