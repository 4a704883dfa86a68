"""`ufork wsgi MODULE:APP` and `python3 -m ufork wsgi`: a WSGI app served by
the command line as gunicorn's users type it, against real sockets."""
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import PYTHON, UFORK, free_port, wait_until

pytestmark = pytest.mark.skipif(not UFORK, reason='UFORK_CLI is not set (run through ctest)')

APP = '''
import os
print('imported in pid %d' % os.getpid(), flush=True)
GREETING = 'hello'

def application(environ, start_response):
    body = '%s from %d: %s %s %s %s\\n' % (GREETING, os.getpid(), environ.get('REMOTE_ADDR', '-'),
                                         environ['SERVER_PORT'], environ['wsgi.url_scheme'],
                                         os.environ.get('APP_MODE', 'unset'))
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode()]

not_an_app = 42
'''


def ask(port, path='/', headers=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    try:
        c.request('GET', path, headers=headers or {'User-Agent': 'pytest'})
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def ask_unix(path, headers=''):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall(('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n' % headers).encode())
        data = b''
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data.decode()
            data += chunk


@contextlib.contextmanager
def asking(one):
    """A client asking one() in a loop on a thread of its own while the block
    runs: (answers, failures), every exception a failure."""
    answers, failures, stop = [], [], threading.Event()

    def loop():
        while not stop.is_set():
            try:
                answers.append(one())
            except Exception as e:  # noqa: BLE001 -- any failure is what the tests count
                failures.append(repr(e))
    t = threading.Thread(target=loop)
    t.start()
    try:
        yield answers, failures
    finally:
        stop.set()
        t.join()


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / 'site_app.py').write_text(APP)
    return tmp_path


def test_ufork_wsgi_serves_an_app_on_tcp_and_unix_with_gunicorns_flags(program, app_dir):
    port1, port2 = free_port(), free_port()
    sock = str(app_dir / 'app.sock')
    log = app_dir / 'access.log'
    # The app first, flags after it and between the binds, as people type them.
    p = program([UFORK, 'wsgi', 'site_app:application', '-w', '2', '--bind', '127.0.0.1:%d' % port1,
                 '-b', 'unix:app.sock', '--env', 'APP_MODE=prod', '-b', '127.0.0.1:%d' % port2,
                 '--access-log', str(log), '--chdir', str(app_dir), '--max-requests', '50'])
    p.wait_for(r'serving site_app:application on http://127\.0\.0\.1:%d/' % port1)
    p.wait_for(r'serving site_app:application on unix:' + re.escape(sock))
    arbiter = int(p.wait_for(r'arbiter pid (\d+)').group(1))
    p.wait_for(r'ufork wsgi: ready, 2 workers')

    status, body = ask(port1)
    assert status == 200 and body.startswith('hello from ') and body.endswith(' 127.0.0.1 %d http prod\n' % port1)
    status, body = ask(port2, headers={'X-Forwarded-For': '203.0.113.9', 'X-Forwarded-Proto': 'https'})
    # 127.0.0.1 is in the default --forwarded-allow-ips
    assert status == 200 and body.endswith(' 203.0.113.9 %d https prod\n' % port2), body
    answer = ask_unix(sock, 'X-Forwarded-For: 198.51.100.4\r\n')  # a unix peer is trusted, as gunicorn's
    assert answer.startswith('HTTP/1.1 200 OK') and ' 198.51.100.4 ' in answer, answer

    # Imported once, in the arbiter, before the fork (preload).
    assert re.findall(r'imported in pid (\d+)', p.output()) == [str(arbiter)], p.output()
    # One combined-format line per request, in the file.
    wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == 3, 'three access log lines')
    lines = log.read_text().splitlines()
    combined = re.compile(r'^(\S+) - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET / HTTP/1\.1" 200 \d+ "-" "([^"]*)"$')
    assert all(combined.match(line) for line in lines), lines
    assert combined.match(lines[0]).groups() == ('127.0.0.1', 'pytest')
    assert lines[1].startswith('203.0.113.9 - - [')

    p.signal(signal.SIGTERM)
    assert p.finish() == 0
    assert not os.path.exists(sock), 'the unix socket file is removed at the stop'


def test_python_m_ufork_wsgi_is_the_same_command_and_lazy_imports_in_each_worker(program, app_dir):
    port = free_port()
    p = program([PYTHON, '-m', 'ufork', 'wsgi', '--lazy', '-w', '2', '-b', '127.0.0.1:%d' % port, '--access-log', '-',
                 'site_app'], cwd=str(app_dir))
    p.wait_for(r'serving site_app on http://127\.0\.0\.1:%d/ \(imported in each worker\)' % port)
    p.wait_for(r'ufork wsgi: ready, 2 workers')
    status, body = ask(port, '/a?b=c')
    assert status == 200 and 'hello from' in body
    # --access-log -: the line is the worker's, in the log with its prefix.
    p.wait_for(r'\[worker \d pid \d+\] 127\.0\.0\.1 - - \[.*\] "GET /a\?b=c HTTP/1\.1" 200 \d+ "-" "pytest"')
    imported = re.findall(r'\[worker \d pid (\d+)\] imported in pid (\d+)', p.output())
    assert len(imported) == 2 and all(a == b for a, b in imported), p.output()
    assert not re.search(r'^imported', p.output(), re.M), 'not in the arbiter'
    p.signal(signal.SIGINT)
    assert p.finish() == 0


@pytest.mark.parametrize('spec, says, lazy_too', [
    ('no_such_module:app', "cannot import 'no_such_module': no module of that name on the path", True),
    ('no_such_package.wsgi:app', "cannot import 'no_such_package.wsgi': no module of that name on the path", True),
    ('site-app:app', "'site-app:app': expected MODULE:APP", True),
    # (--lazy imports in the worker: these are failed starts there, the next test)
    ('site_app:missing', "module 'site_app' has no attribute 'missing'", False),
    ('site_app:not_an_app', 'site_app:not_an_app is not callable (an object of type int)', False),
    ('broken_app:application', 'importing broken_app failed: RuntimeError: the database is down', False),
])
@pytest.mark.parametrize('lazy', [False, True])
def test_an_app_that_cannot_be_served_gets_one_line_and_exit_2_and_nothing_forked(program, app_dir, spec, says,
                                                                                  lazy_too, lazy):
    if lazy and not lazy_too:
        pytest.skip('a failed start with --lazy')
    (app_dir / 'broken_app.py').write_text('raise RuntimeError("the database is down")\n')
    p = program([UFORK, 'wsgi', '-b', '127.0.0.1:0', spec] + (['--lazy'] if lazy else []), cwd=str(app_dir))
    assert p.finish() == 2
    out = [line for line in p.output().strip().splitlines() if not line.startswith('imported in pid')]
    assert out[-1].startswith('ufork wsgi: ' + says), out
    assert not any('arbiter pid' in line or 'serving' in line for line in out), 'nothing forked: %s' % out
    if spec.startswith('broken_app'):
        assert 'Traceback (most recent call last)' in out[0] and 'RuntimeError: the database is down' in out[-2]
    else:
        assert len(out) == 1, out


def test_a_lazy_app_that_fails_to_import_is_a_failed_start_that_gives_up(program, app_dir):
    (app_dir / 'broken_app.py').write_text('raise RuntimeError("the database is down")\n')
    p = program([UFORK, 'wsgi', '--lazy', '-w', '1', '-b', '127.0.0.1:0', 'broken_app'], cwd=str(app_dir))
    p.wait_for(r'\[worker 0 pid \d+ err\] RuntimeError: the database is down')
    p.wait_for(r'worker 0 pid \d+ gen 1 crashed: exit 70 \(EX_SOFTWARE\).*; restarting in')
    p.wait_for(r'no worker ever became ready; every slot failed 5 starts in a row')
    assert p.finish() == 3  # gave up, as any pool whose workers never start


def test_reload_replaces_the_workers_after_a_source_change_and_no_request_fails(program, app_dir):
    port = free_port()
    p = program([UFORK, 'wsgi', '--reload', '-w', '2', '-b', '127.0.0.1:%d' % port, 'site_app:application'],
                cwd=str(app_dir))
    p.wait_for(r'--reload: watching \d+ directories under ' + re.escape(str(app_dir)))
    p.wait_for(r'ufork wsgi: ready, 2 workers')
    conn, asked = [], [0]  # kept alive, and a new connection every third request

    def one():
        asked[0] += 1
        if not conn or asked[0] % 3 == 0:
            conn[:] = [http.client.HTTPConnection('127.0.0.1', port, timeout=30)]
        try:
            conn[0].request('GET', '/')
            r = conn[0].getresponse()
            body = r.read().decode()
        except Exception:
            conn.clear()
            raise
        assert r.status == 200, body
        return body
    with asking(one) as (answers, failures):
        wait_until(lambda: len(answers) > 20, 'answers before the change')
        # An editor's save: a new file renamed over the old one.
        new = app_dir / 'site_app.py.new'
        new.write_text(APP.replace("GREETING = 'hello'", "GREETING = 'howdy'"))
        os.rename(new, app_dir / 'site_app.py')
        p.wait_for(r'--reload: a source file changed: replacing the workers')
        p.wait_for(r'reload: done')
        seen = len(answers)
        wait_until(lambda: len(answers) > seen + 20, 'answers after the reload')
    assert not failures, failures[:5]
    assert answers[0].startswith('hello from') and answers[-1].startswith('howdy from'), (answers[0], answers[-1])
    # A file that is not Python, or is under __pycache__, replaces nothing;
    # a directory moved in with a .py file in it does (its events are read
    # in order: once that one is seen, so were the others).
    (app_dir / 'notes.txt').write_text('x')
    (app_dir / '__pycache__').mkdir(exist_ok=True)
    (app_dir / '__pycache__' / 'x.py').write_text('x')
    (app_dir / '.staging' / 'pkg').mkdir(parents=True)  # hidden: not watched
    (app_dir / '.staging' / 'pkg' / 'helpers.py').write_text('x = 1\n')
    os.rename(app_dir / '.staging' / 'pkg', app_dir / 'pkg')
    p.wait_for(r'--reload: a source file changed: replacing the workers')
    p.wait_for(r'reload: done')
    p.signal(signal.SIGTERM)
    assert p.finish() == 0
    assert p.output().count('a source file changed') == 2, p.output()


def test_an_upgrade_imports_the_new_code_and_keeps_a_unix_socket_serving(program, app_dir):
    """With the app imported before the fork, new code comes with an in-place
    upgrade (the arbiter execs python3 again, imports it, adopts the workers
    and replaces them); its sockets, a unix one too, are handed over."""
    sock, control = str(app_dir / 'app.sock'), str(app_dir / 'ctl.sock')
    p = program([UFORK, 'wsgi', '-w', '2', '-b', 'unix:' + sock, '--control', control, 'site_app:application'],
                cwd=str(app_dir))
    p.wait_for(r'ufork wsgi: ready, 2 workers')
    assert '\r\n\r\nhello from ' in ask_unix(sock)
    (app_dir / 'site_app.py').write_text(APP.replace("GREETING = 'hello'", "GREETING = 'howdy'"))
    with asking(lambda: ask_unix(sock).split('\r\n\r\n', 1)[1]) as (answers, failures):
        r = subprocess.run([UFORK, 'ctl', '--socket', control, 'upgrade'], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        p.wait_for(r'upgraded: pid \d+ runs /usr/bin/python3; 2 workers adopted, replaced one at a time')
        p.wait_for(r'reload: done')
        seen = len(answers)
        wait_until(lambda: len(answers) > seen + 10, 'answers after the upgrade')
    assert not failures, failures[:5]
    assert answers[-1].startswith('howdy from'), answers[-1]
    p.signal(signal.SIGTERM)
    assert p.finish() == 0
    assert not os.path.exists(sock)


def test_daemon_mode_returns_once_the_workers_are_ready(app_dir):
    port = free_port()
    log, pidfile = app_dir / 'ufork.log', app_dir / 'ufork.pid'
    r = subprocess.run([UFORK, 'wsgi', '--daemon', '--log', 'ufork.log', '--pidfile', 'ufork.pid', '-w', '2',
                        '-b', '127.0.0.1:%d' % port, 'site_app'], cwd=str(app_dir), capture_output=True, text=True,
                       timeout=60)
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    try:
        # (imported before detaching: an app that cannot be served is said here, exit 2)
        assert r.returncode == 0 and re.search(r'^ufork: daemon pid \d+ ready$', r.stdout, re.M), r.stdout + r.stderr
        assert r.stdout.startswith('imported in pid'), r.stdout
        status, body = ask(port)  # answered at once: ready means serving
        assert status == 200 and body.startswith('hello from')
    finally:
        if pid:  # the daemon stops, however the checks went
            os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists('/proc/%d' % pid), 'the daemon to stop')
    assert 'all workers stopped' in log.read_text()
    assert not pidfile.exists()


ASGI_APP = """
import os

async def app(scope, receive, send):
    if scope['type'] == 'lifespan':
        while True:
            m = await receive()
            if m['type'] == 'lifespan.startup':
                scope['state']['where'] = 'started in %d' % os.getpid()
                await send({'type': 'lifespan.startup.complete'})
            else:
                print('lifespan shutdown', flush=True)
                await send({'type': 'lifespan.shutdown.complete'})
                return
    await receive()
    if scope['path'] == '/fails':
        raise RuntimeError('this request fails')
    if scope['path'] == '/silent':  # never answers: waits for the client to go
        print('silent: %s' % (await receive())['type'], flush=True)
        return
    await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', b'text/plain')]})
    await send({'type': 'http.response.body', 'body': ('%s, answered by %d\\n' % (scope['state']['where'], os.getpid())).encode()})
"""


def test_ufork_asgi_serves_an_asgi_app_with_its_lifespan_in_each_worker(program, app_dir):
    (app_dir / 'asgi_site.py').write_text(ASGI_APP)
    port, sock = free_port(), str(app_dir / 'asgi.sock')
    log = app_dir / 'access.log'
    p = program([UFORK, 'asgi', '-w', '2', '-b', '127.0.0.1:%d' % port, '-b', 'unix:asgi.sock', 'asgi_site:app',
                 '--access-log', str(log)], cwd=str(app_dir))
    p.wait_for(r'serving asgi_site:app on http://127\.0\.0\.1:%d/ \(ASGI on (uvloop [0-9.]+|asyncio)\)' % port)
    p.wait_for(r'ufork asgi: ready, 2 workers')
    status, body = ask(port)
    started, answered = re.match(r'started in (\d+), answered by (\d+)$', body).groups()
    assert status == 200 and started == answered  # the lifespan ran in the worker that answers
    assert '200 OK' in ask_unix(sock)
    assert ask(port, '/fails')[0] == 500
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request('HEAD', '/head?x=1', headers={'User-Agent': 'pytest', 'Referer': 'http://example.test/"q"'})
    assert c.getresponse().status == 200
    c.close()
    # A combined-format line per request, once its response is over: its
    # status, the body's bytes (none for HEAD), the unix peer as "-".
    wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == 4, 'four access log lines')
    lines = sorted(log.read_text().splitlines(), key=lambda l: l.split('"')[1])
    when = r'\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]'
    expected = [r'127\.0\.0\.1 - - %s "GET / HTTP/1\.1" 200 %d "-" "pytest"' % (when, len(body.encode())),
                r'- - - %s "GET / HTTP/1\.1" 200 \d+ "-" "-"' % when,
                r'127\.0\.0\.1 - - %s "GET /fails HTTP/1\.1" 500 - "-" "pytest"' % when,
                r'127\.0\.0\.1 - - %s "HEAD /head\?x=1 HTTP/1\.1" 200 - "http://example\.test/\\x22q\\x22" "pytest"' % when]
    assert len(lines) == 4
    for pattern in expected:
        assert any(re.fullmatch(pattern, line) for line in lines), (pattern, lines)
    p.signal(signal.SIGTERM)
    assert p.finish() == 0
    assert p.output().count('lifespan shutdown') == 2
    assert not os.path.exists(sock)


def test_keep_alive_and_request_timeout_flags_close_an_idle_connection_and_an_unanswered_request(program, app_dir):
    # gunicorn's --keep-alive, and the request deadline (10 s by default),
    # here 0.5 s and 1 s: the idle connection is closed, the silent request's
    # connection too (nothing sent) and its app told http.disconnect.
    (app_dir / 'asgi_site.py').write_text(ASGI_APP)
    port = free_port()
    p = program([UFORK, 'asgi', 'asgi_site:app', '--keep-alive', '0.5', '-b', '127.0.0.1:%d' % port,
                 '--request-timeout', '1', '-w', '1'], cwd=str(app_dir))
    p.wait_for(r'ufork asgi: ready, 1 worker')
    with socket.create_connection(('127.0.0.1', port), timeout=60) as idle, \
            socket.create_connection(('127.0.0.1', port), timeout=60) as silent:
        idle.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
        got = b''
        while b'answered by' not in got:
            got += idle.recv(65536)
        silent.sendall(b'GET /silent HTTP/1.1\r\nHost: x\r\n\r\n')
        for s in (idle, silent):  # each closed within 8 s: before either default (15 s, 10 s) could
            s.settimeout(8)
            assert s.recv(65536) == b''
    p.wait_for(r'silent: http\.disconnect')
    p.signal(signal.SIGTERM)
    assert p.finish() == 0


@pytest.mark.parametrize('command', [[UFORK, 'wsgi'], [PYTHON, '-m', 'ufork', 'wsgi']])
def test_wsgi_from_a_config_file_with_a_typed_flag_over_it(program, app_dir, tmp_path, command):
    # The app, its directory and its environment from the file (ufork.toml(5));
    # -w typed wins over the file's workers. Read by the ufork command and
    # again, from the same words, by the module it execs.
    port = free_port()
    config = tmp_path / 'app.toml'
    config.write_text('app = "site_app"\nworkers = 3\nbind = ["127.0.0.1:%d"]\nchdir = "%s"\n'
                      'env = ["APP_MODE=from the file"]\naccess-log = "-"\n' % (port, app_dir))
    p = program(command + ['--config', str(config), '-w', '1'], cwd=str(tmp_path))
    p.wait_for(r'ufork wsgi: ready, 1 worker$')
    status, body = ask(port, '/from-file')
    assert status == 200 and body.startswith('hello from') and body.endswith(' from the file\n'), body
    p.wait_for(r'"GET /from-file HTTP/1\.1" 200')
    p.signal(signal.SIGTERM)
    assert p.finish() == 0
