"""A program under a pseudo-terminal, driven as a person at it would."""
import os
import pty
import re
import select
import signal
import time


class Session:
    def __init__(self, argv, env=None):
        pid, fd = pty.fork()
        if pid == 0:
            try:
                os.execve(argv[0], argv, env if env is not None else os.environ)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.text = ''
        self.pos = 0  # expect() searches from here

    def send(self, s):
        os.write(self.fd, s.encode())

    def line(self, s):
        self.send(s + '\r')

    def expect(self, pattern, timeout=30):
        """Waits until pattern (a regex) shows past the last match; returns the match."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            m = rx.search(self.text, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError('no %r within %ss; the screen so far:\n%s' % (pattern, timeout, self.text))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    data = b''
                if not data:
                    raise AssertionError('the program ended before %r; the screen:\n%s' % (pattern, self.text))
                self.text += data.decode(errors='replace').replace('\r\n', '\n')

    def expect_all(self, *patterns, timeout=30):
        """Waits until each pattern shows past the last match, in any order."""
        start, end = self.pos, self.pos
        for p in patterns:
            self.pos = start
            self.expect(p, timeout)
            end = max(end, self.pos)
        self.pos = end

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)
