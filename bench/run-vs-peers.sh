#!/usr/bin/env bash
# `ufork run` with default options, measured from outside in the same run:
#   1. respawn of an exec'd worker: SIGKILL one of 2 workers, time until a new
#      child runs the program again (its /proc/PID/exe), against supervisord
#      (Debian's supervisor, numprocs 2, its defaults), kills 1.5 s apart (so
#      every victim has run past ufork's --ready-after 1 s and supervisord's
#      startsecs 1: both count it as started);
#   2. what supervision costs a server: bench/fd_server (C, one epoll loop per
#      process) behind `ufork run --workers 2 --bind` against the same
#      program started alone with 2 processes, wrk -t2 -c64 -d5s, 3 rounds
#      interleaved; requests/s and p99 each, and the ratio of the medians.
# Not part of `make test`: run it on a quiet machine, as root (it installs
# supervisor and wrk).
#   bench/run-vs-peers.sh [BUILD_DIR] [KILLS]
set -euo pipefail
build=${1:-build}
kills=${2:-200}
ufork=$(realpath "$build/cli/ufork")
probe=$build/bench/respawn_peers
server=$(realpath "$build/bench/fd_server")
[ -x "$ufork" ] && [ -x "$probe" ] && [ -x "$server" ] || { echo "build first: make" >&2; exit 2; }

need=()
[ -x /usr/bin/supervisord ] || need+=(supervisor)
command -v wrk >/dev/null || need+=(wrk)
source "$(dirname "$0")/common.sh"
install_packages "${need[@]}"
sleep_exe=$(realpath /bin/sleep)

wait_execs() {  # until master $1 has $2 children running $3
  for _ in $(seq 400); do
    local n=0
    for c in $(cat /proc/"$1"/task/"$1"/children); do [ "$(readlink /proc/"$c"/exe)" = "$3" ] && n=$((n + 1)); done
    [ $n -ge "$2" ] && return 0; sleep 0.05
  done
  echo "master $1 runs fewer than $2 of $3" >&2; exit 1
}

echo "# run-vs-peers: default options of each; $(nproc) cores; $(date -u +%FT%TZ)"

"$ufork" run --workers 2 -- "$sleep_exe" 100000 </dev/null >"$tmp/ufork.log" 2>&1 &
master=$!; pids+=("$master")
wait_execs "$master" 2 "$sleep_exe"; sleep 1.5
echo "ufork run respawn (SIGKILL -> a new worker running the program, 2 workers, $kills kills 1.5 s apart): $("$probe" respawn-exec "$master" "$kills" 1500 "$sleep_exe")"
kill -TERM "$master"; wait "$master" 2>/dev/null || true

cat > "$tmp/supervisord.conf" <<CONF
[supervisord]
nodaemon=true
logfile=$tmp/supervisord.log
pidfile=$tmp/supervisord.pid
[program:sleep]
command=$sleep_exe 100000
process_name=%(program_name)s_%(process_num)s
numprocs=2
CONF
/usr/bin/supervisord -c "$tmp/supervisord.conf" </dev/null >/dev/null 2>&1 &
master=$!; pids+=("$master")
wait_execs "$master" 2 "$sleep_exe"; sleep 1.5
echo "supervisord respawn (the same, its defaults: autorestart unexpected, startsecs 1): $("$probe" respawn-exec "$master" "$kills" 1500 "$sleep_exe")"
kill -TERM "$master"; wait "$master" 2>/dev/null || true

# 2. The cost of supervision for a server.
round() {  # $1: alone|ufork, $2: port; prints "RPS P99_MS"
  if [ "$1" = alone ]; then
    setsid "$server" "$2" 2 </dev/null >/dev/null 2>&1 &
  else
    "$ufork" run --workers 2 --bind 127.0.0.1:"$2" --notify -- "$server" </dev/null >"$tmp/run-$2.log" 2>&1 &
  fi
  local pid=$!
  wait_port "$2"; sleep 0.5
  local out
  out=$(wrk -t2 -c64 -d5s --latency http://127.0.0.1:"$2"/)
  if [ "$1" = alone ]; then kill -TERM -- -"$pid"; else kill -TERM "$pid"; fi
  wait "$pid" 2>/dev/null || true
  local rps p99
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
  echo "$rps $p99"
}
port=7990
declare -A rps p99
for r in 1 2 3; do
  for who in alone ufork; do
    read -r a b < <(round $who $((port += 1)))
    rps[$who]+="$a "; p99[$who]+="$b "
    echo "round $r $who: $a requests/s, p99 $b ms"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | sed -n 2p; }
ra=$(median <<<"${rps[alone]}"); ru=$(median <<<"${rps[ufork]}")
pa=$(median <<<"${p99[alone]}"); pu=$(median <<<"${p99[ufork]}")
echo "fd_server alone (2 processes): median $ra requests/s, p99 $pa ms"
echo "fd_server behind ufork run --workers 2 --notify: median $ru requests/s, p99 $pu ms"
echo "ratio ufork run / alone: $(awk -v u="$ru" -v a="$ra" 'BEGIN {printf "%.3f", u / a}') requests/s"
