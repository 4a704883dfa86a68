"""serve_wsgi (the C++ HTTP helper calling the app) and uFork's WSGI helpers."""
import http.client
import re
import signal
import urllib.request

from conftest import free_port

APP = '''
import os, sys, ufork
from wsgiref.validate import validator

class Closing:  # an iterable with close(), streamed piece by piece
    def __init__(self, pieces): self.pieces = pieces
    def __iter__(self): return iter(self.pieces)
    def close(self): print('closed', flush=True)

def app(environ, start_response):
    path = environ['PATH_INFO']
    if path == '/stream':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return Closing([b'one ', b'', b'two ', b'three'])
    if path == '/sized':  # an iterable, its length said (as Django's and Flask's responses do); to HEAD, the length only
        start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '10')])
        return [] if environ['REQUEST_METHOD'] == 'HEAD' else Closing([b'whole body'])
    if path == '/echo':
        body = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
        start_response('201 Created', [('Content-Type', 'application/octet-stream'), ('X-Len', str(len(body)))])
        return [body]
    if path == '/error':
        raise RuntimeError('the app failed')
    if path == '/late':
        try:
            raise KeyError('x')
        except KeyError:
            start_response('200 OK', [('Content-Type', 'text/plain')])
            start_response('503 Service Unavailable', [('Content-Type', 'text/plain')], sys.exc_info())
        return [b'replaced']
    if path == '/write':
        write = start_response('200 OK', [('Content-Type', 'text/plain')])
        write(b'written, ')
        return [b'then returned']
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Set-Cookie', 'a=1'), ('Set-Cookie', 'b=2')])
    return [('|'.join(map(str, (environ['REQUEST_METHOD'], path, environ['QUERY_STRING'],
                                   environ.get('HTTP_X_TWICE'), ufork.cur_worker_id())))).encode()]

a = ufork.wsgi_arbiter(APP_UNDER_TEST, ('127.0.0.1', 0), size=2)
print('address', a.address, flush=True)
print('run returned', a.run())
'''


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def check_app(p):
    port = int(p.wait_for(r'^address 127\.0\.0\.1:(\d+)').group(1))
    r, data = request(port, 'GET', '/a%20b/c?x=1&y=2', headers={'X-Twice': 'one'})
    assert r.status == 200
    method, path, query, twice, worker = data.decode().split('|')
    assert (method, path, query, twice) == ('GET', '/a b/c', 'x=1&y=2', 'one')
    assert worker in ('0', '1')
    assert r.headers.get_all('Set-Cookie') == ['a=1', 'b=2']
    r, data = request(port, 'POST', '/echo', body=b'x' * 100000)
    assert (r.status, r.reason, data, r.headers['X-Len']) == (201, 'Created', b'x' * 100000, '100000')
    r, data = request(port, 'GET', '/stream')
    assert (r.status, data, r.headers['Transfer-Encoding']) == (200, b'one two three', 'chunked')
    for method, body in (('GET', b'whole body'), ('HEAD', b'')):  # the whole body in its first piece: its length
        r, data = request(port, method, '/sized')
        assert (r.status, data, r.headers['Content-Length'], r.headers['Transfer-Encoding']) == (200, body, '10', None)
    r, data = request(port, 'HEAD', '/')
    assert (r.status, data) == (200, b'')
    r, data = request(port, 'GET', '/error')
    assert r.status == 500
    r, data = request(port, 'GET', '/late')
    assert (r.status, data) == (503, b'replaced')
    r, data = request(port, 'GET', '/write')
    assert (r.status, data) == (200, b'written, then returned')
    p.wait_for(r'\] closed')
    p.wait_for(r'RuntimeError: the app failed')  # its traceback, in the worker's log
    p.signal(signal.SIGTERM)
    assert p.finish() == 0, p.output()
    assert 'run returned 0' in p.output()


def test_serve_wsgi_answers_a_pep_3333_app(program):
    check_app(program(APP.replace('APP_UNDER_TEST', 'app')))


def test_serve_wsgi_passes_wsgiref_validator(program):
    # validator() asserts on the environ, start_response's use, the
    # iterable's types and that close() is called, in the worker.
    p = program(APP.replace('APP_UNDER_TEST', 'validator(app)'))
    check_app(p)
    assert 'AssertionError' not in p.output()
    assert 'WSGIWarning' not in p.output()


def test_serve_wsgi_refuses_an_address_in_use(program):
    p = program('''
import socket, ufork
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
try:
    ufork.serve_wsgi(lambda e, r: [], ('127.0.0.1', s.getsockname()[1]))
except OSError as e:
    print('refused:', e)
''')
    assert p.finish() == 0, p.output()
    assert re.search(r'refused: .*127\.0\.0\.1:\d+.*in use', p.output()), p.output()


def test_serve_wsgi_gevent(program):
    port = free_port()
    p = program('''
import ufork
def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'gevent worker %%d' %% ufork.cur_worker_id()]
try:
    ufork.serve_wsgi_gevent(app, ('127.0.0.1', %d))
except KeyboardInterrupt:
    print('KeyboardInterrupt')
''' % port)
    p.wait_for(r'arbiter pid')
    body = None
    for _ in range(3):
        body = urllib.request.urlopen('http://127.0.0.1:%d/' % port, timeout=30).read()
    assert re.match(rb'gevent worker [01]$', body)
    p.signal(signal.SIGINT)
    assert p.finish() == 0, p.output()
    assert 'KeyboardInterrupt' in p.output()
    assert 'stopped: exit 0 (EX_OK)' in p.output()
    assert 'killed by' not in p.output()


def test_wsgiref_thread_arbiter(program):
    port = free_port()
    p = program('''
import ufork
def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'wsgiref thread']
a = ufork.wsgiref_thread_arbiter(app, '127.0.0.1', %d)
a.size = 2
print('run returned', a.run())
print('dead', [d.name for d in a.dead_workers])
''' % port)
    p.wait_for(r'arbiter pid')  # bound before: a request waits in the queue for a worker
    assert urllib.request.urlopen('http://127.0.0.1:%d/' % port, timeout=30).read() == b'wsgiref thread'
    p.signal(signal.SIGTERM)
    assert p.finish() == 0, p.output()
    assert re.search(r"dead \['exit 0 \(EX_OK\)'", p.output())


def test_serve_wsgi_refuses_response_splitting(program):
    # A header from the request (an open redirect's Location) cannot add a
    # header of its own: the answer is a 500 and the traceback names the app's line.
    p = program('''
import ufork, urllib.parse

def app(environ, start_response):
    q = urllib.parse.parse_qs(environ['QUERY_STRING'])
    if environ['PATH_INFO'] == '/name':
        start_response('200 OK', [(q['name'][0], 'x')])
    elif environ['PATH_INFO'] == '/status':
        start_response('200 ' + q['reason'][0], [])
    else:
        start_response('302 Found', [('Location', q['next'][0])])
    return [b'moved']

a = ufork.wsgi_arbiter(app, ('127.0.0.1', 0), size=1)
print('address', a.address, flush=True)
a.run()
''')
    port = int(p.wait_for(r'^address 127\.0\.0\.1:(\d+)').group(1))
    r, data = request(port, 'GET', '/?next=/home')
    assert (r.status, r.headers['Location']) == (302, '/home')
    for target, log in [('/?next=/home%0d%0aSet-Cookie:%20session=attacker', r"header 'Location': its value holds CR, LF"),
                        ('/?next=/home%0aSet-Cookie:%20session=attacker', r"header 'Location': its value holds CR, LF"),
                        ('/?next=/home%00x', r"header 'Location': its value holds CR, LF or NUL"),
                        ('/name?name=Set-Cookie:%20a', r"header 'Set-Cookie: a': its name holds a character"),
                        ('/status?reason=OK%0d%0aSet-Cookie:%20a', r"status must be like '200 OK'")]:
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
        c.request('GET', target)
        raw = c.sock.recv(65536)  # one small answer: no Set-Cookie in it, whole
        c.close()
        assert raw.startswith(b'HTTP/1.1 500 '), raw
        assert b'Set-Cookie' not in raw and b'attacker' not in raw, raw
        p.wait_for('ValueError: ' + re.escape(log).replace(r"\ ", ' ').replace("\\'", "'"))
    p.signal(signal.SIGTERM)
    assert p.finish() == 0, p.output()


# Reforking: each worker builds a 30 MB cache when it starts (its warm-up),
# unless it finds one, as a worker forked from the mold does. A client
# loops through the refork: every answer a 200, and the generation kept,
# as it lowered the pool's PSS (three private caches become one shared).
REFORK_APP = '''
import ufork
CACHE = []
def warm_up():
    if not CACHE:
        CACHE.extend([i] for i in range(300000))
        print('warmed', flush=True)
def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [str(len(CACHE)).encode()]
a = ufork.wsgi_arbiter(app, ('127.0.0.1', 0), size=3, post_fork=warm_up, refork_after=[20])
print('address', a.address, flush=True)
print('run returned', a.run())
'''


def test_serve_wsgi_reforks_from_a_warmed_worker(program):
    import threading
    p = program(REFORK_APP)
    port = int(p.wait_for(r'^address 127\.0\.0\.1:(\d+)').group(1))
    for _ in range(3):  # every worker holds its own cache: the pool's PSS is theirs
        p.wait_for(r'\] warmed')
    done, answers = threading.Event(), []

    def client():
        while not done.is_set():
            r, data = request(port, 'GET', '/')
            answers.append((r.status, data))
    t = threading.Thread(target=client)
    t.start()
    try:
        p.wait_for(r'refork: pid \d+ is the mold of generation 1')
        judged = p.wait_for(r'refork: (generation 1 done: .*|the mold of generation 1 .* is let go: .*)')
    finally:
        done.set()
        t.join()
    assert answers and set(answers) == {(200, b'300000')}, set(answers)
    assert 'generation 1 done' in judged.group(0), judged.group(0)
    p.signal(signal.SIGTERM)
    assert p.finish() == 0, p.output()


SLOW_APP = '''
import time, ufork
def app(environ, start_response):
    time.sleep(0.2)  # busy in the request: each worker answers one at a time
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [str(ufork.cur_worker_id()).encode()]
a = ufork.wsgi_arbiter(app, ('127.0.0.1', 0), min_workers=1, max_workers=4, idle_timeout=0.5)
print('address', a.address, flush=True)
print('run returned', a.run())
'''


def test_serve_wsgi_sizes_itself_from_min_to_max_workers(program):
    import threading
    p = program(SLOW_APP)
    port = int(p.wait_for(r'^address 127\.0\.0\.1:(\d+)').group(1))
    p.wait_for(r'autoscaling: 1 to 4 workers, shrinking after 0\.5 s not needed; watching 127\.0\.0\.1:%d' % port)
    answers = []

    def client():
        r, data = request(port, 'GET', '/')
        answers.append((r.status, data))
    clients = [threading.Thread(target=client) for _ in range(8)]
    for t in clients:
        t.start()
    for t in clients:
        t.join()
    assert len(answers) == 8 and {status for status, _ in answers} == {200}, answers
    p.wait_for(r'scaling \d -> [2-4]: ')  # grown while they waited
    assert len({data for _, data in answers}) > 1, answers  # answered by more than one worker
    p.wait_for(r'scaling 2 -> 1: not needed for 0\.5 s \(idle timeout\)')
    p.signal(signal.SIGTERM)
    assert p.finish() == 0, p.output()
    assert not re.search(r'scaling \d -> [5-9]', p.output()), p.output()


PEER_APP = '''
import sys, ufork
def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [' '.join((environ['REMOTE_ADDR'], environ['REMOTE_PORT'], environ['wsgi.url_scheme'])).encode()]
for trusted in ('127.0.0.1', '10.0.0.1'):  # this client is the proxy, then it is not
    a = ufork.wsgi_arbiter(app, ('127.0.0.1', 0), size=1, forwarded_allow_ips=trusted)
    print('address', trusted, a.address, flush=True)
    a.run()
'''


def peer_answer(port, headers):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.connect()
    local_port = c.sock.getsockname()[1]
    c.putrequest('GET', '/')
    for name, value in (headers.items() if isinstance(headers, dict) else headers):  # a list: a name twice
        c.putheader(name, value)
    c.endheaders()
    data = c.getresponse().read().decode()
    c.close()
    return data, local_port


def test_serve_wsgi_gives_the_peer_and_trusts_forwarded_headers_only_from_allowed_proxies(program):
    p = program(PEER_APP)
    port = int(p.wait_for(r'^address 127\.0\.0\.1 127\.0\.0\.1:(\d+)').group(1))
    data, local = peer_answer(port, {})
    assert data == '127.0.0.1 %d http' % local, data  # the connection's own peer and port
    data, local = peer_answer(port, {'X-Forwarded-For': '198.51.100.9, 203.0.113.7', 'X-Forwarded-Proto': 'https'})
    assert data == '203.0.113.7 %d https' % local, data  # the last hop, as the trusted proxy saw it
    data, _ = peer_answer(port, {'Forwarded': 'for=192.0.2.1, for="[2001:db8::1]:4711";proto="https"',
                                 'X-Forwarded-For': '203.0.113.7'})
    assert data.startswith('2001:db8::1 ') and data.endswith(' https'), data  # Forwarded first
    data, _ = peer_answer(port, [('X-Forwarded-For', '198.51.100.9'), ('X-Forwarded-For', '203.0.113.8')])
    assert data.startswith('203.0.113.8 '), data  # a line the proxy added, not the first one
    data, _ = peer_answer(port, {'X-Forwarded-For': 'unknown', 'X-Forwarded-Proto': 'gopher'})
    assert data.startswith('127.0.0.1 ') and data.endswith(' http'), data  # not an address, not a scheme: ignored
    p.signal(signal.SIGTERM)
    port = int(p.wait_for(r'^address 10\.0\.0\.1 127\.0\.0\.1:(\d+)').group(1))
    data, local = peer_answer(port, {'X-Forwarded-For': '203.0.113.7', 'X-Forwarded-Proto': 'https'})
    assert data == '127.0.0.1 %d http' % local, data  # an untrusted peer's headers change nothing
    p.signal(signal.SIGTERM)
    assert p.finish() == 0, p.output()
