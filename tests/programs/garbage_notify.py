# A worker for `ufork run --notify` that sends the arbiter garbage before
# READY=1: malformed lines, numbers out of range, binary, oversized
# datagrams. The arbiter must take it in stride and still hear READY=1.
import os
import signal
import socket

notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
address = os.environ["NOTIFY_SOCKET"]
notify.connect("\0" + address[1:])
junk = [b"", b"=", b"READY", b"READY=2", b"WATCHDOG=0", b"WATCHDOG_USEC=99999999999999999999999",
        b"WATCHDOG_USEC=-5", b"WATCHDOG_USEC=abc", b"WATCHDOG_USEC=", b"ERRNO=-1", b"ERRNO=99999999999",
        b"ERRNO=2x", b"STATUS=" + b"x" * 5000, bytes(range(256)), b"\n\n\n", b"A" * 60000, b"MAINPID=1",
        b"FDSTORE=1", b"BARRIER=1"]
for datagram in junk:
    notify.send(datagram)
notify.send(b"STATUS=still fine\nREADY=1")
print("garbage sent", flush=True)
signal.pause()
