# A Python worker for `ufork run --notify`: its socket from fd 3 (LISTEN_FDS),
# READY=1 to NOTIFY_SOCKET with plain sockets, then one answer per connection.
import os
import socket

assert os.environ["LISTEN_PID"] == str(os.getpid()), "LISTEN_PID is not mine"
listener = socket.socket(fileno=3)
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
address = os.environ["NOTIFY_SOCKET"]
notify.connect("\0" + address[1:] if address.startswith("@") else address)
notify.send(b"READY=1\nSTATUS=python %d" % os.getpid())
print("python worker", os.getpid(), "ready", flush=True)
while True:
    conn, _ = listener.accept()
    conn.recv(1024)
    conn.sendall(b"HTTP/1.0 200 OK\r\n\r\npython %d\n" % os.getpid())
    conn.close()
