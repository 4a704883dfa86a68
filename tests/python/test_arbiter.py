"""uFork's Arbiter and its patterns, on the C++ arbiter."""
import os
import re
import signal
import time
import urllib.request

from conftest import wait_until

# Stops the pool once `n` lines of the workers matching `pattern` were seen.
STOP_AFTER = '''
import re, ufork
def stop_after(n, pattern):
    seen = []
    def printfunc(line):
        print(line)
        if re.search(pattern, line):
            seen.append(line)
            if len(seen) == n:
                ufork.LAST_ARBITER.stopping = True
    return printfunc
'''


def test_post_fork_runs_in_each_worker_and_stopping_ends_run(program):
    p = program(STOP_AFTER + '''
import os, random, signal
def post_fork():
    print('worker', ufork.cur_worker_id(), 'up', 'random', random.random(), flush=True)
term = signal.getsignal(signal.SIGTERM)
a = ufork.Arbiter(post_fork=post_fork, size=2, printfunc=stop_after(2, r'worker \\d up'))
print('run returned', a.run())
print('SIGTERM handler restored', signal.getsignal(signal.SIGTERM) is term,
      'SIGINT as it was', signal.getsignal(signal.SIGINT) is signal.default_int_handler)
print('in the arbiter cur_worker_id is', ufork.cur_worker_id())
print('total', a.total_children, 'dead', sorted(d.code for d in a.dead_workers), [d.name for d in a.dead_workers])
print('workers after', a.workers)
''')
    assert p.finish() == 0, p.output()
    out = p.output()
    assert re.search(r'\[worker 0 pid \d+\] worker 0 up', out)
    assert re.search(r'\[worker 1 pid \d+\] worker 1 up', out)
    assert 'run returned 0' in out
    assert 'SIGTERM handler restored True SIGINT as it was True' in out
    # uFork's seed(): each worker its own random state
    assert len(set(re.findall(r'worker \d up random (\S+)', out))) == 2, out
    assert 'in the arbiter cur_worker_id is None' in out
    assert "total 2 dead [0, 0] ['exit 0 (EX_OK)', 'exit 0 (EX_OK)']" in out
    assert 'workers after {}' in out


def test_workers_that_die_by_themselves_are_in_dead_workers_and_replaced(program, tmp_path):
    marker = tmp_path / 'died'
    p = program(STOP_AFTER + '''
import os
def post_fork():
    if not os.path.exists(%r):
        open(%r, 'w').close()
        print('dying', flush=True)
        os._exit(3)
    print('replacement up', flush=True)
a = ufork.Arbiter(post_fork=post_fork, size=1, printfunc=stop_after(1, 'replacement up'))
a.run()
print('dead', list(a.dead_workers))
''' % (str(marker), str(marker)))
    assert p.finish() == 0, p.output()
    m = re.search(r"dead \[dead\(pid=(\d+), code=768, name='exit 3'\), dead\(pid=\d+, code=0", p.output())
    assert m, p.output()
    assert int(m.group(1)) in p.worker_pids()


def test_spawn_thread_then_stop(program):
    p = program(STOP_AFTER + '''
import threading
up = threading.Event()
seen = []
def printfunc(line):
    print(line)
    if 'up' in line:
        seen.append(line)
        if len(seen) == 2: up.set()
a = ufork.Arbiter(post_fork=lambda: print('up', flush=True), size=2, printfunc=printfunc)
a.spawn_thread()
assert up.wait(60)
print('workers', sorted(a.workers), [w.worker_id for w in a.workers.values()])
a.stop()
a.thread.join(60)
print('thread alive', a.thread.is_alive(), 'dead', len(a.dead_workers))
''')
    assert p.finish() == 0, p.output()
    assert 'workers [0, 1] [0, 1]' in p.output()
    assert 'thread alive False dead 2' in p.output()


def test_one_run_at_a_time_and_a_stop_before_run_is_kept(program):
    p = program('''
import threading, time, ufork
try:
    ufork.Arbiter(post_fork=lambda: None, size='a')
except TypeError as e:
    print('size:', e)
a = ufork.Arbiter(post_fork=lambda: time.sleep(100), size=1)
a.stop()  # before run(): the run stops at once
print('early run returned', a.run(repl=False), 'dead', len(a.dead_workers))
up = threading.Event()
b = ufork.Arbiter(post_fork=lambda: print('up', flush=True), size=1,
                  printfunc=lambda line: (print(line), 'up' in line and up.set()))
b.spawn_thread()
assert up.wait(60)
try:
    b.run(repl=False)
except RuntimeError as e:
    print('second run:', e)
print('workers', len(b.workers))
b.stop()
b.thread.join(60)
print('thread alive', b.thread.is_alive(), 'dead', len(b.dead_workers))
''')
    assert p.finish() == 0, p.output()
    assert "size: size must be a whole number of workers, not 'a'" in p.output()
    assert re.search(r'early run returned 0 dead [01]$', p.output(), re.M), p.output()
    assert 'second run: this Arbiter is running already' in p.output()
    assert 'workers 1' in p.output()
    assert 'thread alive False dead 1' in p.output()


def test_a_worker_whose_post_fork_loops_is_ready_at_once(program):
    # uFork's own pattern: post_fork serves for good. Its worker is ready at
    # the heartbeat thread's first beat, 100 ms after post_fork starts: with
    # TIMEOUT at 600 s a beat period is 150 s, far past this test's deadline.
    p = program('''
import threading, time, ufork
ufork.TIMEOUT = 600.0
def serve():
    while True:
        time.sleep(0.05)
a = ufork.Arbiter(post_fork=serve, size=3)
def watch():
    while sum(w.state == 'ready' for w in a.workers.values()) < 3:
        time.sleep(0.05)
    print('all ready', flush=True)
    a.stop()
threading.Thread(target=watch, daemon=True).start()
a.run(repl=False)
''')
    p.wait_for('^all ready$')
    assert p.finish() == 0, p.output()


def serve_forever_program(child_pre_exit):
    return '''
import ufork, wsgiref.simple_server
def app(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'served by %%d' %% ufork.cur_worker_id()]
httpd = wsgiref.simple_server.make_server('127.0.0.1', 0, app)
print('port', httpd.server_port, flush=True)
a = ufork.Arbiter(post_fork=httpd.serve_forever, child_pre_exit=%s, size=2)
print('run returned', a.run())
print('dead', [d.name for d in a.dead_workers])
''' % child_pre_exit


def test_serve_forever_ended_by_child_pre_exit_at_stop(program):
    # uFork's example: post_fork blocks in serve_forever for ever; at stop,
    # child_pre_exit (httpd.shutdown) runs on the heartbeat thread and ends it.
    p = program(serve_forever_program('httpd.shutdown'))
    port = int(p.wait_for(r'^port (\d+)').group(1))
    assert urllib.request.urlopen('http://127.0.0.1:%d/' % port, timeout=30).read().startswith(b'served by ')
    p.wait_for(r'arbiter pid')
    p.signal(signal.SIGTERM)
    assert p.finish() == 0, p.output()
    assert 'run returned 0' in p.output()
    # each ended by itself, none by the SIGKILL after the graceful timeout
    assert re.search(r"dead \['exit 0 \(EX_OK\)'(, 'exit 0 \(EX_OK\)')*\]", p.output()), p.output()


def test_serve_forever_without_child_pre_exit_ends_at_stop(program):
    p = program(serve_forever_program('None'))
    port = int(p.wait_for(r'^port (\d+)').group(1))
    assert urllib.request.urlopen('http://127.0.0.1:%d/' % port, timeout=30).read().startswith(b'served by ')
    p.signal(signal.SIGTERM)
    assert p.finish() == 0, p.output()
    assert re.search(r"dead \['exit 0 \(EX_OK\)'(, 'exit 0 \(EX_OK\)')*\]", p.output()), p.output()


def test_sigint_stops_the_pool_then_keyboard_interrupt_reaches_the_caller(program):
    p = program('''
import ufork
a = ufork.Arbiter(post_fork=lambda: print('up', flush=True), size=2)
try:
    a.run()
except KeyboardInterrupt:
    print('KeyboardInterrupt; stopping', a.stopping, 'dead', [d.name for d in a.dead_workers])
''')
    p.wait_for(r'\] up')
    p.wait_for(r'\] up')
    p.signal(signal.SIGINT)
    assert p.finish() == 0, p.output()
    assert "KeyboardInterrupt; stopping True dead ['exit 0 (EX_OK)', 'exit 0 (EX_OK)']" in p.output()


def test_an_exception_in_post_fork_is_printed_with_its_traceback_and_exits_70(program):
    p = program('''
import ufork
def setup():
    raise ValueError('no database')
a = ufork.Arbiter(post_fork=setup, size=1)
print('run returned', a.run())
print('dead', {d.name for d in a.dead_workers})
''')
    assert p.finish() == 0, p.output()
    out = p.output()
    assert re.search(r'\[worker 0 pid \d+ err\] Traceback \(most recent call last\):', out)
    assert re.search(r'\[worker 0 pid \d+ err\] ValueError: no database', out)
    assert 'run returned 3' in out  # no worker could ever start: exit_boot_failure
    assert "dead {'exit 70 (EX_SOFTWARE)'}" in out


def test_exceptions_in_child_pre_exit_and_parent_pre_stop(program):
    p = program(STOP_AFTER + '''
def child_pre_exit():
    raise RuntimeError('pre-exit failed')
def parent_pre_stop():
    raise RuntimeError('pre-stop failed')
a = ufork.Arbiter(post_fork=lambda: print('up', flush=True), child_pre_exit=child_pre_exit,
                  parent_pre_stop=parent_pre_stop, size=1, printfunc=stop_after(1, 'up'))
print('run returned', a.run())
print('dead', [d.name for d in a.dead_workers])
''')
    assert p.finish() == 0, p.output()
    out = p.output()
    assert 'RuntimeError: pre-stop failed' in out  # in the arbiter, which stops all the same
    assert re.search(r'\[worker 0 pid \d+ err\] RuntimeError: pre-exit failed', out)
    assert "dead ['exit 70 (EX_SOFTWARE)']" in out
    assert 'run returned 0' in out


def test_a_worker_holding_the_gil_past_the_timeout_is_replaced(program):
    # ctypes.PyDLL keeps the GIL across the call: libc's sleep wedges the
    # interpreter, so the heartbeat thread cannot beat.
    p = program(STOP_AFTER + '''
import ctypes
ufork.TIMEOUT = 1.0
def post_fork():
    if ufork._ufork.generation() == 1:
        ufork.ready()
        print('wedging', flush=True)
        ctypes.PyDLL(None).sleep(3600)
    print('replacement up', flush=True)
a = ufork.Arbiter(post_fork=post_fork, size=1, printfunc=stop_after(1, 'replacement up'))
a.run()
print('timed out', a.timed_out_children, [d.name for d in a.dead_workers])
''')
    assert p.finish() == 0, p.output()
    out = p.output()
    assert 'wedging' in out
    # Its exit among the pool's, in any order: the replacement may stop first
    # while the hung one still writes its stack.
    m = re.search(r'timed out (\d+) \[.*\'killed by (SIGABRT|SIGKILL)', out)
    assert m and int(m.group(1)) >= 1, out
    if m.group(2) == 'SIGABRT':  # before its death, where it hung: Python's frames, then the native ones, symbolized
        assert re.search(r'err\] +File "<string>", line \d+ in post_fork', out), out
        assert 'ufork: the same, symbolized:' in out, out
    # Where Python was when it hung (faulthandler), then the native stack.
    assert re.search(r'File "<string>", line \d+ in post_fork', out), out
    assert out.index('in post_fork') < out.index('ufork: SIGABRT in worker; stack:'), out


def test_spawn_daemon_writes_its_output_file(program, tmp_path):
    out_file, pgrp_file = tmp_path / 'out.txt', tmp_path / 'pgrp'
    p = program('''
import ufork
a = ufork.Arbiter(post_fork=lambda: print('daemon worker says hi', flush=True), size=1)
a.spawn_daemon(pgrpfile=%r, outfile=%r)
print('the caller goes on')
''' % (str(pgrp_file), str(out_file)))
    assert p.finish() == 0, p.output()
    assert 'the caller goes on' in p.output()
    wait_until(lambda: pgrp_file.exists() and pgrp_file.read_text().endswith('\n'), 'the pgrp file')
    pgid = int(pgrp_file.read_text())
    try:
        wait_until(lambda: 'daemon worker says hi' in out_file.read_text(), 'the worker line in out.txt')
        worker = int(re.search(r'\[worker 0 pid (\d+)\] daemon worker says hi', out_file.read_text()).group(1))
    finally:
        os.killpg(pgid, signal.SIGTERM)  # the daemon; its workers are in groups of their own
    wait_until(lambda: not os.path.exists('/proc/%d' % pgid), 'the daemon to end')
    text = out_file.read_text()
    assert 'all workers stopped' in text, text
    assert not os.path.exists('/proc/%d' % worker)


def test_size_assigned_while_running_resizes(program):
    p = program(STOP_AFTER + '''
import threading
a = ufork.Arbiter(post_fork=lambda: print('up', ufork.cur_worker_id(), flush=True), size=1)
def grow(line):
    print(line)
    if 'up 0' in line: a.size = 3
    if 'up 2' in line: a.stopping = True
a.printfunc = grow
a.run()
print('size', a.size, 'spawned', a.total_children)
''')
    assert p.finish() == 0, p.output()
    assert 'size 3 spawned 3' in p.output()


def test_the_module_loads_no_libedit(program):
    # libedit and the GNU readline Python loads export the same symbols:
    # one process must not hold both.
    p = program('''
import readline, ufork
print('libedit' in open('/proc/self/maps').read(), 'libreadline' in open('/proc/self/maps').read())
''')
    assert p.finish() == 0, p.output()
    assert p.output().strip() == 'False True'


def test_the_pools_signals_while_run_runs(program):
    # SIGTTIN grows the pool, SIGHUP reloads it (each successor ready before
    # its predecessor stops), SIGTERM stops it; the handlers are Python's,
    # run on the pool's loop.
    p = program('''
import ufork
a = ufork.Arbiter(post_fork=lambda: print('up', ufork.cur_worker_id(), ufork._ufork.generation(), flush=True), size=1)
print('run returned', a.run())
print('size', a.size, 'dead', sorted(d.name for d in a.dead_workers))
''')
    p.wait_for(r'\] up 0 1$')
    p.signal(signal.SIGTTIN)
    p.wait_for(r'\] up 1 1$')
    p.signal(signal.SIGHUP)
    p.wait_for(r'\] up [01] 2$')
    p.wait_for(r'\] up [01] 2$')
    p.signal(signal.SIGTERM)
    assert p.finish() == 0, p.output()
    assert "size 2 dead ['exit 0 (EX_OK)', 'exit 0 (EX_OK)', 'exit 0 (EX_OK)', 'exit 0 (EX_OK)']" in p.output()


def test_a_second_ctrl_c_stops_at_once(program):
    p = program('''
import signal, ufork
def post_fork():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a worker that will not stop
    print('up', flush=True)
a = ufork.Arbiter(post_fork=post_fork, size=1)
try:
    a.run()
except KeyboardInterrupt:
    print('KeyboardInterrupt', [d.name for d in a.dead_workers])
''')
    p.wait_for(r'\] up$')
    p.signal(signal.SIGINT)
    p.wait_for(r'stopping 1 worker \(graceful')
    p.signal(signal.SIGINT)
    p.wait_for(r'stopping 1 worker \(fast: SIGKILL\)')
    assert p.finish() == 0, p.output()
    assert "KeyboardInterrupt ['killed by SIGKILL']" in p.output()


def test_an_unknown_keyword_is_a_type_error_naming_it():
    import pytest
    import ufork
    from ufork import _ufork
    with pytest.raises(TypeError, match='timout'):
        ufork.Arbiter(post_fork=lambda: None, timout=5)
    with pytest.raises(TypeError, match='sise'):
        ufork.wsgi_arbiter(lambda env, start: [], ('127.0.0.1', 0), sise=2)
    # The core's options, as python/ufork/__init__.py passes them: a key it
    # does not read is refused, not ignored.
    with pytest.raises(TypeError, match="unexpected option 'graceful_timout'"):
        _ufork.Core({'workers': 1, 'graceful_timout': 3}, lambda: None, None, None)
    with pytest.raises(TypeError, match="unexpected option 'notify'"):  # a table's option Python does not take
        _ufork.Core({'workers': 1, 'notify': True}, lambda: None, None, None)
    # Set through the option table: its ranges are Python's too.
    with pytest.raises(ValueError, match="timeout: expected seconds from 0.001 to 86400, not '-1'"):
        _ufork.Core({'workers': 1, 'timeout': -1}, lambda: None, None, None)


# A worker's collection writes to every object it looks at: with the
# arbiter's objects frozen before the fork (the default) their pages stay
# shared; with gc_freeze=False the same collection makes them private.
FREEZE_PROGRAM = STOP_AFTER + '''
import gc
DATA = [[i] for i in range(300000)]  # tracked by the collector: about 30 MB
def private_kb():
    with open('/proc/self/smaps_rollup') as f:
        return sum(int(l.split()[1]) for l in f if l.startswith(('Private_Dirty:', 'Private_Clean:')))
def post_fork():
    before = private_kb()
    gc.collect()
    print('frozen', gc.get_freeze_count(), 'private grew', private_kb() - before, 'kB', flush=True)
a = ufork.Arbiter(post_fork=post_fork, size=1, printfunc=stop_after(1, r'frozen'), **KWARGS)
print('run returned', a.run())
'''


def test_the_arbiters_objects_are_frozen_before_the_fork_unless_asked_not_to(program):
    grew = {}
    for kwargs in ('{}', '{"gc_freeze": False}'):
        p = program('KWARGS = ' + kwargs + '\n' + FREEZE_PROGRAM)
        assert p.finish() == 0, p.output()
        m = re.search(r'frozen (\d+) private grew (-?\d+) kB', p.output())
        assert m, p.output()
        frozen, grew[kwargs] = int(m.group(1)), int(m.group(2))
        assert (frozen > 300000) if kwargs == '{}' else (frozen == 0), p.output()
    # 30 MB of objects: the collection made them private without the freeze, not with it.
    assert grew['{"gc_freeze": False}'] > 10000, grew
    assert grew['{}'] < grew['{"gc_freeze": False}'] / 4, grew


def test_the_version_is_the_commands():
    import subprocess
    import ufork
    cli = os.path.join(os.environ['PYTHONPATH'].split(os.pathsep)[0], '..', 'cli', 'ufork')
    said = subprocess.run([cli, '--version'], capture_output=True, text=True, check=True).stdout
    assert said == 'ufork %s\n' % ufork.__version__
    assert re.fullmatch(r'\d+\.\d+\.\d+', ufork.__version__)
