#!/usr/bin/python3
"""A pool's memory, as bench/memory-vs-peers.sh reports it: PSS and USS in
MiB summed over a server's root process and its direct children (the
arbiter or master and its workers), from /proc/PID/smaps_rollup. PSS divides
each shared page among the processes that map it, so the sum is what the pool
costs the machine; USS is what each process alone holds.
    pool_memory.py PID  ->  "PSS USS PROCESSES"
"""
import os
import sys


def children(pid):
    found = []
    for name in os.listdir('/proc'):
        if name.isdigit():
            try:
                with open('/proc/%s/stat' % name) as f:
                    if int(f.read().rsplit(')', 1)[1].split()[1]) == pid:
                        found.append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return found


def rollup(pid):
    fields = {}
    try:
        with open('/proc/%d/smaps_rollup' % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == 'kB':
                    fields[parts[0].rstrip(':')] = int(parts[1])
    except OSError:  # it exited since it was listed (a worker being replaced): it holds nothing now
        pass
    return fields


root = int(sys.argv[1])
pss = uss = 0
procs = [root] + children(root)
for pid in procs:
    r = rollup(pid)
    pss += r.get('Pss', 0)
    uss += r.get('Private_Clean', 0) + r.get('Private_Dirty', 0)
print('%.1f %.1f %d' % (pss / 1024, uss / 1024, len(procs)))
