#!/usr/bin/python3
"""One server through bench/autoscale-vs-uwsgi.sh's load steps: wrk -c1 for
5 s, then -c64 for 10 s (the step: the time until the server has WORKERS
worker processes, its root's children, sampled every 2 ms from /proc, and
the p99 of those 10 s), -c1 for 5 s, then no load for IDLE seconds and its
memory (bench/pool_memory.py: PSS of the root and its workers).
    autoscale_step.py ROOT_PID URL WORKERS IDLE
prints: "SECONDS_TO_WORKERS P99_MS FAILED PSS_MIB WORKERS_LEFT"
"""
import os
import re
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
root, url, want, idle = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])


def children():
    found = 0
    for task in os.listdir('/proc/%d/task' % root):
        with open('/proc/%d/task/%s/children' % (root, task)) as f:
            found += len(f.read().split())
    return found


def wrk(conns, secs, threads=1):
    return subprocess.Popen(['wrk', '-t%d' % threads, '-c%d' % conns, '-d%ds' % secs, '--latency', url],
                            stdout=subprocess.PIPE, text=True)


def failed(out):  # socket errors and non-2xx answers; not wrk's "read" errors: a server that closes after
    # its answer (uWSGI's --http-socket does not keep connections alive) counts as one on each
    n = sum(int(x) for x in re.findall(r'(?:connect|write|timeout) (\d+)', out))
    m = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    return n + (int(m.group(1)) if m else 0)


def ms(text):  # wrk's "12.34ms", "1.20s", "850.00us"
    v, unit = re.match(r'([\d.]+)(\w+)', text).groups()
    return float(v) * {'us': 0.001, 'ms': 1, 's': 1000, 'm': 60000}[unit]


errors = failed(wrk(1, 5).communicate()[0])
step = wrk(64, 10, 2)
start = time.monotonic()
reached = None
while step.poll() is None:
    if reached is None and children() >= want:
        reached = time.monotonic() - start
    time.sleep(0.002)
out = step.communicate()[0]
errors += failed(out)
p99 = ms(re.search(r'^\s+99%\s+(\S+)', out, re.M).group(1))
errors += failed(wrk(1, 5).communicate()[0])
time.sleep(idle)
pss, _, processes = subprocess.run([sys.executable, os.path.join(here, 'pool_memory.py'), str(root)],
                                   capture_output=True, text=True, check=True).stdout.split()
print('%s %.0f %d %s %d' % ('%.3f' % reached if reached is not None else '-', p99, errors, pss, int(processes) - 1))
