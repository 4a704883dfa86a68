"""Helpers: a test program run as its own process (forks and signals stay out
of pytest's), read line by line with a deadline."""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

PYTHON = '/usr/bin/python3'  # Debian's, the module's build target
DEADLINE = 60.0              # generous: a loaded 2-core machine


UFORK = os.environ.get('UFORK_CLI', '')  # the ufork command (tests/CMakeLists.txt sets it)


class Program:
    """A Python program (source), or a command (argv: a list)."""

    def __init__(self, source, env=None, cwd=None):
        argv = source if isinstance(source, list) else [PYTHON, '-u', '-c', textwrap.dedent(source)]
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd,
            env=dict(os.environ, **(env or {})),
            # SIGINT as at a terminal, even if whoever started the tests ignores it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines = []
        self._partial = b''
        self._next = 0  # wait_for searches from here

    def _read(self, timeout):
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            return True
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            return False
        self._partial += data
        *whole, self._partial = self._partial.split(b'\n')
        self.lines += [w.decode(errors='replace') for w in whole]
        return True

    def wait_for(self, pattern, timeout=DEADLINE):
        """The first line past the last match that matches pattern (a regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for i in range(self._next, len(self.lines)):
                m = rx.search(self.lines[i])
                if m:
                    self._next = i + 1
                    return m
            self._next = len(self.lines)
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                raise AssertionError('no line matching %r; the output:\n%s' % (pattern, self.output()))

    def finish(self, timeout=DEADLINE):
        """Waits for the program's end; returns its exit code."""
        deadline = time.monotonic() + timeout
        while self._read(max(deadline - time.monotonic(), 0)):
            if time.monotonic() >= deadline:
                self.proc.kill()
                raise AssertionError('the program did not end; the output:\n' + self.output())
        return self.proc.wait()

    def output(self):
        return '\n'.join(self.lines + [self._partial.decode(errors='replace')])

    def signal(self, sig):
        self.proc.send_signal(sig)

    def worker_pids(self):
        return {int(p) for p in re.findall(r'\[worker \d+ pid (\d+)', self.output())}

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def program():
    """program(source) starts it (or program([argv...]): a command); at the end, none left running, and no worker
    it printed a line from outlives it."""
    started = []

    def start(source, env=None, cwd=None):
        p = Program(source, env, cwd)
        started.append(p)
        return p
    yield start
    for p in started:
        p.kill()
        alive = [pid for pid in p.worker_pids() if os.path.exists('/proc/%d' % pid)]
        assert not alive, 'workers left behind: %s' % alive


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_until(predicate, what, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for ' + what)
        time.sleep(0.02)


sys.path.insert(0, os.path.dirname(__file__))
