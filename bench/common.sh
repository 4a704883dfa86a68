# Sourced by the bench scripts: Debian's packages for the peers, a scratch
# directory whose servers are stopped at exit, a wait for a port, and wrk's
# measurements (measure, median; they use $secs and $tmp).

install_packages() {  # $@: missing packages; nginx's own service is kept from starting on port 80
  [ $# -gt 0 ] || return 0
  local policy=/usr/sbin/policy-rc.d made=""
  [ -e $policy ] || { printf '#!/bin/sh\nexit 101\n' > $policy; chmod +x $policy; made=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  [ -z "$made" ] || rm -f $policy
}

[ -x /usr/bin/time ] || install_packages time  # measure(): wrk's own CPU time

tmp=$(mktemp -d)
pids=()
wsgi_peers_missing() {  # the Debian packages that wrk and the WSGI peers (gunicorn, uWSGI) with Django need and lack, one a line
  command -v wrk >/dev/null || echo wrk
  /usr/bin/python3 -c 'import gunicorn' 2>/dev/null || echo gunicorn
  /usr/bin/python3 -c 'import django' 2>/dev/null || echo python3-django
  command -v uwsgi >/dev/null || echo uwsgi
  [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || echo uwsgi-plugin-python3
}
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

wait_port() {  # until something answers on 127.0.0.1:$1
  for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
  echo "nothing answers on port $1" >&2; exit 1
}

# CPU time (ns) the workers of server $1 (their parent's pid) have used,
# every thread of each (/proc/PID/schedstat is the main thread's alone).
cpu_ns() {
  local sum=0 pid
  for pid in $(ps -o pid= --ppid "$1"); do
    sum=$((sum + $(cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}')))
  done
  echo $sum
}

# How the server's connections from 127.0.0.1 spread over its workers (the
# children of pid $1 that hold its listening socket on port $2), most first:
# "59/5" (a worker with none counts: "64/0").
connection_split() {
  local pid counts=() holders established
  holders=$(ss -Hltnp "( sport = :$2 )" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true)
  established=$(ss -Htnp state established "( sport = :$2 )")
  for pid in $(ps -o pid= --ppid "$1"); do
    grep -qx "$pid" <<< "$holders" || continue
    counts+=("$(grep -c "pid=$pid," <<< "$established" || true)")
  done
  printf '%s\n' "${counts[@]}" | sort -rn | paste -sd/
}

# wrk's "Requests/sec", the p99 of its --latency distribution, whether it
# saw socket errors, the workers' CPU time per request in us (from
# /proc/PID/schedstat: steadier than requests/s on a shared machine), and
# wrk's own CPU time per request (a server's answers cost its client too),
# and how its connections spread over the workers halfway through (above),
# appended to $tmp/NAME-C.txt; the servers take turns, round after round,
# so a noisy neighbour hits them all alike.
measure() {  # $1: name, $2: url, $3: connections, $4: the server's pid, $5...: more wrk flags
  local before after name=$1 url=$2 conns=$3 pid=$4 port
  shift 4
  port=${url#http://*:}; port=${port%%/*}
  ( sleep "$((secs / 2))"; connection_split "$pid" "$port" > "$tmp/split.txt" ) &
  local sampler=$!
  before=$(cpu_ns "$pid")
  /usr/bin/time -f "%U %S" -o "$tmp/wrk-cpu.txt" wrk -t"${threads:-2}" -c"$conns" -d"${secs}s" --latency "$@" "$url" > "$tmp/wrk.txt"
  after=$(cpu_ns "$pid")
  wait "$sampler" || true  # (a split it could not read is left blank)
  errors=$(grep -c 'Socket errors' "$tmp/wrk.txt" || true)
  requests=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
  echo "$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt") $(awk '$1 == "99%" {print $2}' "$tmp/wrk.txt") $errors" \
    "$(awk -v d=$((after - before)) -v n="$requests" 'BEGIN {printf "%.2f", d / n / 1000}')" \
    "$(awk -v n="$requests" '{printf "%.2f", ($1 + $2) * 1e6 / n}' "$tmp/wrk-cpu.txt")" \
    "$(cat "$tmp/split.txt")" >> "$tmp/$name-$conns.txt"
}
median() {  # of column $2 in file $1 (p99s end in us/ms/s: normalised to ms)
  awk -v c="$2" '{v = $c; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else if (v ~ /s$/) v = v * 1000; print v}' "$1" \
    | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}
