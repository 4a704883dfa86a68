#!/bin/bash
# The control socket's answer time and the arbiter's CPU while four local
# processes (uid 65534) flood `ufork run --notify`'s notify socket.
#   bench/notify-flood.sh [BUILD_DIR]     (as root: the senders run as nobody)
set -euo pipefail
build=${1:-build}
U=$build/cli/ufork
S=/tmp/ufork-flood-$$.sock
log=/tmp/ufork-flood-$$.log
$U run -w 2 --notify --watchdog 1 --control $S -- "$build/tests/ufork_test_notify_worker" wait > $log 2>&1 &
arbiter=$!
trap 'kill $arbiter 2>/dev/null; wait $arbiter 2>/dev/null; rm -f $log' EXIT
for _ in $(seq 100); do grep -q "NOTIFY_SOCKET=@" $log && break; sleep 0.05; done
name=$(grep -o "NOTIFY_SOCKET=@[^ ]*" $log | head -1 | cut -d@ -f2)
for _ in 1 2 3 4; do
  setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 -c "
import socket, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); end = time.time() + 8
while time.time() < end:
    try: s.sendto(b'WATCHDOG=1', b'\0$name')
    except OSError: pass" &
done
sleep 1
before=$(awk '{print $14 + $15}' /proc/$arbiter/stat)
start=$(date +%s.%N)
echo -n "ufork ctl status, 10 asks (s, each the whole command): "
for _ in $(seq 10); do /usr/bin/time -f %e $U ctl -s $S status 2>&1 >/dev/null | tail -1; sleep 0.3; done | sort -n | tr '\n' ' '
echo
after=$(awk '{print $14 + $15}' /proc/$arbiter/stat)
echo "arbiter CPU meanwhile: $(echo "($after - $before) / (($(date +%s.%N) - $start) * $(getconf CLK_TCK)) * 100" | bc -l | cut -c1-4) % of a core"
wait %2 %3 %4 %5 2>/dev/null || true
