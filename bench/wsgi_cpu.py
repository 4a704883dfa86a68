"""The WSGI app of bench/autoscale-vs-uwsgi.sh: 10 ms of CPU per request."""
import time


def app(environ, start_response):
    end = time.process_time() + 0.010
    while time.process_time() < end:
        pass
    body = b'done\n'
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
