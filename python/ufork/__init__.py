"""uFork's API on ufork's C++ arbiter.

    >>> import ufork
    >>> ufork.serve_wsgi_gevent(app, ('0.0.0.0', 7777))
    ufork>> workers
    ...
    ufork>> ^C
    KeyboardInterrupt
    >>>

The names, signatures and meanings are uFork's (kurtbrose/ufork 20.11.2dev);
where uFork's behaviour was a bug this does the right thing instead: see
docs/python.md for the list.
"""
import code
import collections
import faulthandler
import functools
import importlib
import importlib.util
import os
import random
import select
import signal
import sys
import threading
import traceback

from . import _ufork

__version__ = _ufork.__version__  # the project's version, as `ufork --version` says it

__all__ = ['Arbiter', 'DeadWorker', 'Worker', 'WorkerStop', 'TIMEOUT', 'CHILD_START_TIMEOUT', 'cur_worker_id',
           'spawn_daemon', 'serve_wsgi', 'wsgi_arbiter', 'serve_asgi', 'asgi_arbiter', 'serve_wsgi_gevent', 'GeventWsgiArbiter',
           'wsgiref_thread_arbiter', 'serve_wsgiref_thread', 'heartbeat', 'ready']

# Read when run() starts, as uFork's module globals were.
TIMEOUT = 10.0               # a ready worker with no heartbeat for this long is hung
CHILD_START_TIMEOUT = 10 * 60.0  # a starting one (its post_fork still running) gets this long
LAST_ARBITER = None

# One exit: its pid, its wait status as os.waitpid gives it, and its name
# ("exit 70 (EX_SOFTWARE)", "killed by SIGKILL").
DeadWorker = collections.namedtuple('dead', 'pid code name')


def cur_worker_id():
    """The worker's id (its slot, 0..size-1) in a worker; None in the arbiter."""
    return _ufork.worker_id()


def heartbeat():
    """In a worker: "alive". A thread beats on its own while post_fork runs
    (taking the GIL, so a wedged interpreter is caught); call this only from
    code that holds the GIL for longer than TIMEOUT on purpose."""
    _ufork.heartbeat()


def ready():
    """In a worker whose post_fork runs for ever (serve_forever): ready now,
    rather than after the first heartbeat interval."""
    _ufork.ready()


class Worker(object):
    """A worker as `Arbiter.workers` shows it."""
    __slots__ = ('pid', 'worker_id', 'generation', 'state')

    def __init__(self, info):
        self.pid = info['pid']
        self.worker_id = info['id']
        self.generation = info['generation']
        self.state = info['state']

    def __repr__(self):
        return 'ufork.Worker<pid=%d>' % self.pid


class WorkerStop(BaseException):
    """Raised in a worker's post_fork, at its next Python line, when the
    arbiter stops the worker and there is no child_pre_exit to end it."""


def _wait_status(dead):
    if dead['signal']:
        return dead['signal'] | (0x80 if dead['core_dumped'] else 0)
    return (dead['code'] & 0xff) << 8


class Arbiter(object):
    """Forks `size` workers that each run post_fork, and keeps them running."""

    def __init__(self, post_fork, child_pre_exit=None, parent_pre_stop=None, size=None, sleep=None, fork=None,
                 printfunc=None, child_memlimit=2**30, max_no_ping_children=1, extra=None, control_path=None,
                 gc_freeze=True, refork_after=None, min_workers=None, max_workers=None, idle_timeout=None,
                 max_pool_memory=None):
        self.post_fork = post_fork
        self.child_pre_exit = child_pre_exit
        self.parent_pre_stop = parent_pre_stop
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
            raise TypeError('size must be a whole number of workers, not %r' % (size,))
        self._size = _ufork.default_workers() if size is None else size
        self.sleep = sleep    # gevent's sleep: a worker waits for its stop in gevent's hub
        self.fork = fork      # accepted for uFork's callers; forks are ufork's own
        self.printfunc = printfunc
        self.child_memlimit = child_memlimit
        self.max_no_ping_children = max_no_ping_children
        self.extra = extra    # a place to put additional data for the prompt
        self.control_path = control_path
        # Before each fork the arbiter's objects are collected, then frozen
        # (gc.freeze): a worker's collector never touches them, so their
        # pages stay shared. Cycles among them are never collected.
        self.gc_freeze = gc_freeze
        # [N, ...] requests: a worker past N becomes the mold the next
        # workers are forked from (what it imported and cached is shared by
        # them); one N per generation. Needs a worker with one thread once
        # it stops serving (serve_wsgi's), and an app that is fork-safe again
        # in every generation.
        self.refork_after = refork_after
        # Autoscaling: with max_workers, the pool sizes itself from
        # min_workers (default 1; `size` is then unused) to max_workers,
        # growing when connections queue or every worker is busy in a request,
        # shrinking once a worker has not been needed for idle_timeout seconds
        # (default 10); max_pool_memory (MiB of PSS) caps what a scale-up adds.
        self.scaling = dict(min_workers=min_workers, max_workers=max_workers, idle_timeout=idle_timeout,
                            max_pool_memory=max_pool_memory)
        self.thread = None
        self._core = None
        self._status = None   # the last pool's, once it has stopped
        self._stopping = False
        self._stop_early = False   # stop() before run(): the run stops at once
        self._running = threading.Lock()  # one pool per Arbiter at a time
        self._log_file = None
        self._wsgi = None     # serve_wsgi's (app, address, options)
        self._asgi = None     # serve_asgi's worker side (_AsgiWorker)
        self._wakeup = None
        global LAST_ARBITER
        LAST_ARBITER = self

    # -- what uFork's callers read and assign ------------------------------
    def _snapshot(self):
        core = self._core
        return core.status() if core is not None else self._status

    @property
    def size(self):
        return self._size

    @size.setter
    def size(self, n):
        core = self._core
        if core is not None:
            core.resize(n)
        self._size = n

    @property
    def workers(self):
        s = self._snapshot()
        return {w['id']: Worker(w) for w in s['workers']} if s else {}

    @property
    def dead_workers(self):
        s = self._snapshot()
        return collections.deque((DeadWorker(d['pid'], _wait_status(d), d['status']) for d in s['dead']) if s else (),
                                 maxlen=10)

    @property
    def total_children(self):
        s = self._snapshot()
        return s['spawned'] if s else 0

    @property
    def timed_out_children(self):
        s = self._snapshot()
        return s['hung'] if s else 0

    @property
    def stopping(self):
        return self._stopping

    @stopping.setter
    def stopping(self, value):
        if value:
            self.stop()
        else:
            self._stopping = False

    def execute(self, line):
        """Runs a pool command ("workers", "size 4", "kill 1 KILL") and returns
        its answer's text; raises RuntimeError for a refused one."""
        core = self._core
        if core is None:
            raise RuntimeError('the pool is not running')
        ok, text, _ = core.execute(line)
        if not ok:
            raise RuntimeError(text)
        return text

    def stop(self):
        """Stops the pool gracefully; safe from any thread and from hooks.
        Before run(), the run it precedes stops at once."""
        self._stopping = True
        core = self._core
        if core is not None:
            core.stop()
        else:
            self._stop_early = True

    def __repr__(self):
        s = self._snapshot()
        if self._core is None:
            return '<ufork.Arbiter size=%d, not running>' % self._size
        return '<ufork.Arbiter pid=%d size=%d workers=%s%s>' % (
            os.getpid(), s['size'], sorted(w['pid'] for w in s['workers']), ' stopping' if s['stopping'] else '')

    # -- running -----------------------------------------------------------
    def spawn_thread(self):
        'causes run to be executed in a thread'
        self.thread = threading.Thread(target=self.run, args=(False,), name='ufork arbiter', daemon=True)
        self.thread.start()

    def spawn_daemon(self, pgrpfile=None, outfile="out.txt"):
        """Runs this arbiter in a new daemon process, its output and its
        workers' in outfile (8 files of 8 MiB, rotated); returns in the caller."""
        if spawn_daemon(self.fork, pgrpfile, outfile):
            return
        self._log_file = outfile
        try:
            code = self.run(False)
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)

    def run(self, repl=True):
        """Runs the pool until it is stopped: stop(), `stopping = True`, the
        `stop` command, SIGTERM, or Ctrl-C, after which KeyboardInterrupt
        reaches the caller with no worker left. With repl and a terminal,
        the ufork>> prompt runs meanwhile. One run at a time: a second, from
        another thread, raises RuntimeError."""
        if not self._running.acquire(blocking=False):
            raise RuntimeError('this Arbiter is running already (run() from another thread?): '
                               'one pool per Arbiter; make another Arbiter for a second pool')
        try:
            return self._run(repl)
        finally:
            self._running.release()

    def _run(self, repl):
        # The option table's keys (src/core/option_table.hpp); max_rss in MiB.
        config = dict(workers=self._size, timeout=TIMEOUT, startup_timeout=CHILD_START_TIMEOUT,
                      graceful_timeout=TIMEOUT, max_starting=self.max_no_ping_children,
                      max_rss=-(-(self.child_memlimit or 0) // 2**20), max_fds_percent=90 if self.child_memlimit else 0,
                      control=self.control_path, log_file=self._log_file, gc_freeze=bool(self.gc_freeze),
                      refork_after=self.refork_after, **self.scaling)
        if self._wsgi:
            config.update(self._wsgi)
        main = threading.current_thread() is threading.main_thread()
        prompt = None
        if repl and main and os.isatty(0) and os.isatty(1) and not self._log_file:
            prompt = config['prompt'] = _Prompt(self, _caller_globals())
        child = self._child
        if self._wsgi:
            child = self._wsgi_child
            config['child_exit'] = self._wsgi_child_exit
        core = _ufork.Core(config, child, self.parent_pre_stop, self.printfunc)
        self._stopping = False
        self._core = core  # from here stop() reaches the core; before, it left _stop_early
        restore = self._take_signals(core) if main else (lambda: None)
        try:
            if prompt:
                prompt.start(core)
            if self._stop_early:
                self._stop_early = False
                self._stopping = True
            if self._stopping:
                core.stop()
            return core.run(self._wakeup[0] if self._wakeup else -1)
        finally:
            if prompt:
                prompt.close()
            restore()
            self._status = core.status()
            self._core = None
            self._stopping = True

    def _take_signals(self, core):
        """Python's handlers for the pool's signals while it runs, run on this
        thread when the loop wakes for one; SIGINT's is left as it is (its
        KeyboardInterrupt stops the pool)."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        self._wakeup = (r, w)

        def resize(delta):
            return lambda *_: setattr(self, 'size', max(self._size + delta, 1))
        handlers = {
            signal.SIGTERM: lambda *_: self.stop(),
            signal.SIGQUIT: lambda *_: core.stop(now=True),
            signal.SIGHUP: lambda *_: core.execute('reload'),
            signal.SIGUSR1: lambda *_: core.execute('reopen'),
            signal.SIGTTIN: resize(+1),
            signal.SIGTTOU: resize(-1),
        }
        old = {sig: signal.signal(sig, h) for sig, h in handlers.items()}

        def restore():
            for sig, h in old.items():
                signal.signal(sig, h)
            signal.set_wakeup_fd(old_fd)
            self._wakeup = None
            os.close(r)
            os.close(w)
        return restore

    # -- in the worker -----------------------------------------------------
    def _worker_setup(self):
        if self._wakeup:  # the arbiter's signal pipe is not ours
            signal.set_wakeup_fd(-1)
            for fd in self._wakeup:
                os.close(fd)
            self._wakeup = None  # closed: a worker forked from this one (the mold's) finds them so
        _worker_started()

    def _wsgi_child(self):
        """serve_wsgi's worker: post_fork (which must return), then the C++
        HTTP server serves until the stop; then _wsgi_child_exit."""
        self._worker_setup()
        if self.post_fork:
            self.post_fork()
        if self._asgi:
            self._asgi.start()

    def _wsgi_child_exit(self):
        if self._asgi:
            self._asgi.stop()
        if self.child_pre_exit:
            self.child_pre_exit()
        _flush()

    def _child(self):
        """The worker: post_fork, then heartbeats until asked to stop, then
        child_pre_exit. Returns when the worker should exit 0."""
        self._worker_setup()
        if self.sleep is None:
            beat = _ufork.Heartbeat(self.child_pre_exit, WorkerStop)
        else:  # a cooperative loop (gevent): only its own thread may touch it, once post_fork returns
            beat = _ufork.Heartbeat(None, None)
        try:
            ended = beat.run(self.post_fork)
        except SystemExit as e:
            _flush()
            os._exit(0 if e.code is None else e.code if isinstance(e.code, int) else 1)
        except BaseException:
            _exit_on_error()
        if ended == 'pre_exit_failed':  # child_pre_exit raised on the heartbeat's thread (printed)
            _flush()
            os._exit(70)
        if ended == 'returned':
            _ufork.ready()  # post_fork returned: the worker serves (uFork's first ping)
            _wait_for_stop(self.sleep)
            beat.close()
            if self.child_pre_exit:
                try:
                    self.child_pre_exit()
                except BaseException:
                    _exit_on_error()
        _flush()


def _worker_started():
    """What every Python worker does first."""
    random.seed()  # uFork's seed(): each worker its own random state
    # A hung worker gets SIGABRT before its SIGKILL: Python's traceback of
    # every thread to stderr (the log), then ufork's native stack (the
    # handler faulthandler chains to).
    if not faulthandler.is_enabled():
        faulthandler.enable(all_threads=True)
    _ufork._signal_stack()  # faulthandler's own is too small for the native stack's symbols
    for f in (sys.stdout, sys.stderr):
        if hasattr(f, 'reconfigure'):
            f.reconfigure(line_buffering=True)  # a line reaches the log as printed


class _AppError(Exception):
    """MODULE:APP that cannot be served, said in one line (ufork wsgi)."""


def _load_app(spec, find_only=False):
    """The application `spec` names, as gunicorn reads it: MODULE:APP, APP a
    (dotted) name in MODULE, `application` if left out, called if written
    NAME() (an app factory). find_only: only check that MODULE can be found
    (the import is left to each worker). Raises _AppError for a module that
    is not there, a name it lacks or an app that is not callable; an
    exception raised by the module's own code goes through as it is."""
    module_name, _, name = spec.partition(':')
    name = name or 'application'
    factory = name.endswith('()')
    if factory:
        name = name[:-2]
    if not module_name or not name or not all(part.isidentifier() for part in module_name.split('.') + name.split('.')):
        raise _AppError('%r: expected MODULE:APP, as myproject.wsgi:application' % spec)
    try:
        found = importlib.util.find_spec(module_name)
    except ModuleNotFoundError as e:  # a package on the way is not there (else: the package's own import failed)
        if not e.name or not (module_name + '.').startswith(e.name + '.'):
            raise
        found = None
    if found is None:
        raise _AppError('cannot import %r: no module of that name on the path (%s)' % (module_name, os.getcwd()))
    if find_only:
        return None
    module = importlib.import_module(module_name)
    try:
        app = functools.reduce(getattr, name.split('.'), module)
    except AttributeError:
        raise _AppError('module %r has no attribute %r' % (module_name, name)) from None
    if factory:
        app = app()
    if not callable(app):
        raise _AppError('%s is not callable (an object of type %s): not an application' % (spec, type(app).__name__))
    return app


def _flush():
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except Exception:
            pass


def _exit_on_error():
    traceback.print_exc()
    _flush()
    os._exit(70)  # EX_SOFTWARE


def _wait_for_stop(sleep):
    fd = _ufork.stop_fd()
    if sleep is not None and getattr(sleep, '__module__', '').startswith('gevent'):
        from gevent.socket import wait_read
        while not _ufork.stopping():
            wait_read(fd)
    elif sleep is not None:
        while not _ufork.stopping():  # an unknown loop: its own sleep, briefly
            sleep(0.1)
    else:
        while not _ufork.stopping():
            select.select([fd], [], [])


def _caller_globals():
    f = sys._getframe(1)
    while f is not None and f.f_globals.get('__name__', '').split('.')[0] == 'ufork':
        f = f.f_back
    return f.f_globals if f is not None else {}


class _Prompt(code.InteractiveConsole):
    """The ufork>> prompt on a thread of its own, while run() runs the pool on
    the caller's: a line whose first word is a pool command is that command,
    `py LINE` is Python, any other line is Python in the caller's globals,
    with `arbiter` (and `self`, as in uFork) bound to the Arbiter."""

    def __init__(self, arbiter, namespace):
        code.InteractiveConsole.__init__(self, namespace)
        self._extra = {'arbiter': arbiter, 'self': arbiter}
        self._arbiter = arbiter
        self._core = None
        self._commands = set()
        self._closing = False
        self._thread = None
        self._tty = None
        self._showing = None  # the prompt while input is awaited
        self._prompt = None
        self._drawing = threading.Lock()
        self._rl = None  # GNU readline's C functions, for the redraw
        self._redisplay = self._redisplay_slot = self._rl_state = None
        self._hooked = False  # input() goes through readline, which calls _drawn
        self._held = False  # hide() holds _drawing until show()
        self._awaiting = False  # raw_input holds _drawing until the hook

    # The pool's lines go above the line being typed (called by the loop's
    # thread, around each batch of lines). readline draws the prompt on the
    # prompt's thread: _drawing is held from before input() until readline
    # has drawn it (its pre-input hook), and by hide() until show(), so a
    # batch never lands in a prompt half drawn. Then readline's own way:
    # the visible line cleared, the prompt and the typed text drawn again.
    def hide(self):
        # Bounded: a prompt that never reaches readline's hook cannot stop the pool.
        self._held = self._drawing.acquire(timeout=1.0)
        if self._visible():
            if self._rl is not None:
                self._rl.rl_clear_visible_line()
            else:
                sys.stdout.write('\r\x1b[K')
            sys.stdout.flush()

    def show(self):
        try:
            if self._visible():
                if self._rl is not None:
                    self._rl.rl_on_new_line()  # the cleared line is drawn again, whole
                    self._rl.rl_redisplay()
                else:
                    import readline
                    sys.stdout.write(self._showing + readline.get_line_buffer())
                    sys.stdout.flush()
        finally:
            if self._held:
                self._held = False
                self._drawing.release()

    def _visible(self):
        """A prompt awaits input: readline has drawn it and not yet taken
        the line (CPython's handler removes the callback once it has one)."""
        if self._showing is None:
            return False
        return self._rl is None or bool(self._rl_state.value & 0x0080000)  # RL_STATE_CALLBACK

    def _drawn(self):
        """readline's pre-input hook: the prompt is on the screen."""
        if self._awaiting:  # ufork>>'s own, not a later prompt of the REPL's
            self._awaiting = False
            self._showing = self._prompt
            self._drawing.release()

    def _hook_redisplay(self, readline):
        """readline draws what a key changed on the prompt's thread (its echo):
        through this wrapper it holds _drawing too, so a batch's hide() and
        show() never run in the middle of it."""
        try:
            import ctypes
            rl = ctypes.CDLL(readline.__file__)
            slot = ctypes.c_void_p.in_dll(rl, 'rl_redisplay_function')
            state = ctypes.c_ulong.in_dll(rl, 'rl_readline_state')
            real = rl.rl_redisplay
            rl.rl_clear_visible_line, rl.rl_on_new_line  # noqa: B018  all there
        except (OSError, AttributeError, ValueError):
            return  # another readline: the line redrawn by hand

        def redisplay():
            if self._awaiting:  # the prompt being drawn: raw_input holds _drawing
                real()
            else:
                with self._drawing:
                    real()
        self._redisplay = ctypes.CFUNCTYPE(None)(redisplay)  # kept: readline calls it
        self._redisplay_slot = (slot, slot.value)
        self._rl_state = state
        slot.value = ctypes.cast(self._redisplay, ctypes.c_void_p).value
        self._rl = rl

    def _unhook_redisplay(self):
        if self._rl is not None:
            slot, original = self._redisplay_slot
            slot.value = original
            self._rl = None

    def runcode(self, code_object):
        try:
            exec(code_object, self.locals, self._extra)
        except SystemExit:
            raise
        except BaseException:
            self.showtraceback()

    def raw_input(self, prompt=''):
        if not self._hooked:  # input() will not use readline: no hook, no redraw
            self._showing = prompt
            try:
                return input(prompt)
            finally:
                self._showing = None
        self._drawing.acquire()  # released by the hook, once readline has drawn the prompt
        self._prompt = prompt
        self._awaiting = True
        try:
            return input(prompt)
        finally:
            if self._awaiting:  # input() ended before the hook ran
                self._awaiting = False
                self._drawing.release()
            else:
                with self._drawing:
                    self._showing = None

    def start(self, core):
        import json
        import readline  # line editing and history: GNU readline through Python
        import termios
        self._core = core
        # input() uses readline when stdin and stdout are the terminal.
        self._hooked = sys.stdin.isatty() and sys.stdout.isatty() and sys.stdin.fileno() == 0 and sys.stdout.fileno() == 1
        if self._hooked:
            readline.set_pre_input_hook(self._drawn)
        if self._hooked:
            self._hook_redisplay(readline)
        ok, _, data = core.execute('help')
        self._commands = {c['command'] for c in json.loads(data)} if ok else set()
        self._tty = termios.tcgetattr(0)
        self._thread = threading.Thread(target=self._loop, name='ufork>>', daemon=True)
        self._thread.start()

    def _loop(self):
        more = False
        print('ufork>> the pool runs; `help` lists its commands, other lines are Python; Ctrl-C stops it')
        while not self._closing:  # (a command still running at close() ends here, without reading)
            try:
                line = self.raw_input('... ' if more else 'ufork>> ')
            except EOFError:
                if not self._closing:
                    print()
                    self._arbiter.stop()
                return
            if self._closing:
                return
            words = line.split()
            if not more and words and words[0] == 'py':
                more = self.push(line.strip()[2:].strip())
            elif not more and words and words[0] in self._commands:
                ok, text, _ = self._core.execute(line)
                print(text.rstrip('\n') if ok else 'error: ' + text)
            else:
                more = self.push(line)

    def close(self):
        """Ends the prompt's thread, blocked in readline: stdin reads as at
        its end for a moment, a signal interrupts its wait; then the
        terminal as it was."""
        import termios
        self._closing = True
        if self._thread is not None and self._thread.is_alive():
            saved = os.dup(0)
            r, w = os.pipe()
            os.close(w)
            os.dup2(r, 0)
            os.close(r)
            try:  # again each 100 ms: a signal sent before the thread's wait is lost
                for _ in range(50):
                    signal.pthread_kill(self._thread.ident, signal.SIGWINCH)
                    self._thread.join(0.1)
                    if not self._thread.is_alive():
                        break
            finally:
                os.dup2(saved, 0)
                os.close(saved)
            _readline_deprep()
        if self._hooked:
            import readline
            readline.set_pre_input_hook(None)  # the REPL's own prompt is back
            self._unhook_redisplay()
        if self._tty is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, self._tty)
        print()


def _readline_deprep():
    """GNU readline could not restore the terminal on the stand-in stdin and
    still thinks it prepared it (the next prompt would then echo twice):
    its own restore, on the terminal again."""
    try:
        import ctypes
        import readline
        ctypes.CDLL(readline.__file__).rl_deprep_terminal()
    except (ImportError, OSError, AttributeError):
        pass


def spawn_daemon(fork=None, pgrpfile=None, outfile='out.txt'):
    """uFork's: returns True in the caller, False in a new daemon process
    (its own session, stdin /dev/null, stdout and stderr appended to
    outfile); pgrpfile gets the daemon's process group."""
    if pgrpfile and os.path.exists(pgrpfile):
        try:
            cur = int(open(pgrpfile).read().strip())
            os.killpg(cur, 0)
        except (OSError, ValueError):
            pass
        else:
            raise Exception('arbiter still running with pid:' + str(cur))
    open(outfile, 'a').close()
    if os.fork():
        return True
    os.setsid()
    if os.fork():
        os._exit(0)
    if pgrpfile:
        with open(pgrpfile, 'w') as f:
            f.write(str(os.getpgrp()) + '\n')
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(outfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)
    return False


def _endpoint(address):
    if isinstance(address, str):
        return address
    host, port = address[:2]
    return '[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host or '0.0.0.0', port)


def wsgi_arbiter(app, address, size=None, post_fork=None, child_pre_exit=None, forwarded_allow_ips='127.0.0.1',
                 keep_alive=15.0, request_timeout=10.0, **kwargs):
    """An Arbiter whose workers serve the WSGI application `app` with ufork's
    C++ HTTP server (keep-alive, limits, a graceful stop that drops no
    request), calling it under the GIL. address: (host, port) or "host:port",
    bound now, in this process. post_fork, if given, runs in each worker
    first (open a database connection) and must return. `.address` is the
    bound "host:port". It runs once. REMOTE_ADDR and REMOTE_PORT are the
    connection's peer; a request from a proxy in forwarded_allow_ips (a list
    or "a,b"; "*" trusts any, as gunicorn's) gets REMOTE_ADDR and
    wsgi.url_scheme from its Forwarded or X-Forwarded-For/-Proto headers.
    keep_alive: seconds an idle keep-alive connection is kept; request_timeout:
    seconds from a request's first byte until its answer is written (an
    answer in parts: per part), then its connection is closed."""
    if isinstance(forwarded_allow_ips, str):
        forwarded_allow_ips = [ip.strip() for ip in forwarded_allow_ips.split(',') if ip.strip()]
    a = Arbiter(post_fork=post_fork, child_pre_exit=child_pre_exit, size=size, **kwargs)
    server = _ufork.WsgiServer(app, _endpoint(address), list(forwarded_allow_ips), keep_alive,
                               request_timeout)  # binds: a bad address fails here
    a._wsgi = dict(wsgi=server)
    a.address = server.address
    return a


def serve_wsgi(app, address, size=None, **kwargs):
    """Serves a WSGI application with ufork's C++ HTTP server in `size`
    pre-forked workers, until stopped (Ctrl-C: KeyboardInterrupt)."""
    return wsgi_arbiter(app, address, size=size, **kwargs).run()


def _event_loop_factory():
    """uvloop's when it is installed, else asyncio's own; and its name.
    (asyncio is imported only for serve_asgi: it imports logging, whose
    at-fork callbacks run Python in every fork of the arbiter, where a
    Ctrl-C that lands in them is lost.)"""
    import asyncio
    try:
        import uvloop
        return uvloop.new_event_loop, 'uvloop ' + uvloop.__version__
    except ImportError:
        return asyncio.new_event_loop, 'asyncio'


class _Lifespan(object):
    """The ASGI lifespan protocol, on the worker's loop: startup before the
    worker counts as ready, shutdown at its stop. An app that raises or
    returns before it answers the startup does not take the protocol (as
    uvicorn's "auto"): the worker goes on without it."""

    def __init__(self, app, state):
        self.app, self.state = app, state
        self.task = None

    async def startup(self):
        import asyncio
        self.inbox, self.outbox = asyncio.Queue(), asyncio.Queue()
        scope = {'type': 'lifespan', 'asgi': {'version': '3.0', 'spec_version': '2.0'}, 'state': self.state}
        self.task = asyncio.get_running_loop().create_task(self._main(scope))
        await self.inbox.put({'type': 'lifespan.startup'})
        answer = await self.outbox.get()
        if answer is None:
            return True
        if answer['type'] == 'lifespan.startup.failed':
            print('ufork asgi: lifespan startup failed: %s' % answer.get('message', ''), file=sys.stderr)
            return False
        return True

    async def _main(self, scope):
        try:
            await self.app(scope, self.inbox.get, self.outbox.put)
        except BaseException as e:  # noqa: B902 -- whatever ends it, the worker is told
            if self.outbox.empty():
                print('ufork asgi: the app does not take the lifespan protocol (%s: %s): going on without it'
                      % (type(e).__name__, e), file=sys.stderr)
            else:
                traceback.print_exc()
        finally:
            self.task = None
            await self.outbox.put(None)

    async def shutdown(self):
        if self.task is None:
            return
        await self.inbox.put({'type': 'lifespan.shutdown'})
        answer = await self.outbox.get()
        if answer is not None and answer['type'] == 'lifespan.shutdown.failed':
            print('ufork asgi: lifespan shutdown failed: %s' % answer.get('message', ''), file=sys.stderr)


async def _asgi_call(app, scope, x):
    """One request: the app called with x's receive and send (each returns
    a future: done at once, or when what it waits for comes); whatever ends
    the app ends the answer."""
    try:
        await app(scope, x.receive, x.send)
    except _ufork.AsgiError as e:
        print('ufork asgi: %s %s: %s' % (scope['method'], scope['path'], e), file=sys.stderr)
    except Exception:
        traceback.print_exc()
    else:
        if not x.over:
            print('ufork asgi: %s %s: the app returned before its response was complete'
                  % (scope['method'], scope['path']), file=sys.stderr)
    x.fail()  # (nothing if the answer ended): a 500 if nothing was sent, else the body is cut


class _AsgiWorker(object):
    """serve_asgi's worker side: the app's asyncio loop on the worker's one
    thread, turning the C++ HTTP helper's loop (it watches its descriptor),
    which hands it each request as it is parsed."""

    def __init__(self, server, app):
        self.server, self.app = server, app
        self.factory, self.loop_name = _event_loop_factory()

    def start(self):
        """In the worker, before its HTTP server runs: the loop, its lifespan
        startup done; raises if that failed."""
        import asyncio
        loop = self.loop = self.factory()
        asyncio.set_event_loop(loop)
        state = {}
        self.lifespan = _Lifespan(self.app, state)
        try:
            ok = loop.run_until_complete(self.lifespan.startup())
        except BaseException:  # noqa: B902 -- printed; the start failed
            traceback.print_exc()
            ok = False
        if not ok:
            raise RuntimeError('the ASGI app did not start (above)')
        app, server = self.app, self.server
        self.serving = False

        def spawn(scope, x):
            loop.create_task(_asgi_call(app, scope, x))

        def step():
            if not self.serving:
                return
            try:
                more = server.step()
            except BaseException as e:  # noqa: B902 -- out of the server's loop: the worker fails with it (_drive)
                self.failure, more = e, False
            if not more:  # the server is done: drive returns
                self.serving = False
                loop.stop()
        self.step, self.failure = step, None
        server.serve_with(loop, self._drive, spawn, lambda: loop.call_soon(step), state)

    def _drive(self):
        """The worker's HTTP server runs: the loop turns it until it is done."""
        loop, fd = self.loop, self.server.loop_fd()
        loop.add_reader(fd, self.step)
        loop.call_soon(self.step)
        self.serving = True
        try:
            loop.run_forever()
        finally:
            self.serving = False
            loop.remove_reader(fd)
        if self.failure is not None:  # not asyncio's to log and go on from
            raise self.failure

    def stop(self):
        """At the worker's stop (its HTTP server done): lifespan shutdown."""
        try:
            self.loop.run_until_complete(self.lifespan.shutdown())
        except BaseException:  # noqa: B902 -- printed; the worker stops all the same
            traceback.print_exc()


def asgi_arbiter(app, address, size=None, post_fork=None, child_pre_exit=None, forwarded_allow_ips='127.0.0.1',
                 keep_alive=15.0, request_timeout=10.0, **kwargs):
    """An Arbiter whose workers serve the ASGI 3 application `app` (HTTP;
    lifespan): in each worker, one thread: the app's asyncio loop (uvloop's
    when installed) turning the C++ HTTP helper's. address as
    wsgi_arbiter's (also "unix:PATH"); the same keywords."""
    if isinstance(forwarded_allow_ips, str):
        forwarded_allow_ips = [ip.strip() for ip in forwarded_allow_ips.split(',') if ip.strip()]
    a = Arbiter(post_fork=post_fork, child_pre_exit=child_pre_exit, size=size, **kwargs)
    server = _ufork.AsgiServer([_endpoint(address)], list(forwarded_allow_ips), keep_alive,
                               request_timeout)  # binds: a bad address fails here
    a._wsgi = dict(wsgi=server)
    a._asgi = _AsgiWorker(server, app)
    a.address = server.address
    return a


def serve_asgi(app, address, size=None, **kwargs):
    """Serves an ASGI application in `size` pre-forked workers, until stopped
    (Ctrl-C: KeyboardInterrupt)."""
    return asgi_arbiter(app, address, size=size, **kwargs).run()


def wsgiref_thread_arbiter(wsgi, host, port):
    'probably not suitable for production use; example of threaded server'
    import socket
    import wsgiref.simple_server
    httpd = wsgiref.simple_server.make_server(host, port, wsgi)
    httpd.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)

    def start_server():
        threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def close_socket():
        httpd.socket.close()

    return Arbiter(post_fork=start_server, child_pre_exit=httpd.shutdown, parent_pre_stop=close_socket)


def serve_wsgiref_thread(wsgi, host, port):
    wsgiref_thread_arbiter(wsgi, host, port).run()


class GeventWsgiArbiter(Arbiter):
    """uFork's: gevent's WSGIServer in each worker, on a socket bound before the fork."""

    def __init__(self, wsgi, address, stop_timeout=30):
        import socket
        import gevent
        import gevent.pywsgi
        import gevent.socket
        self.sock = gevent.socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.address = address
        self.sock.bind(address)
        self.sock.listen(128)
        self.wsgi = wsgi
        self.server = gevent.pywsgi.WSGIServer(self.sock, wsgi)
        self.server.stop_timeout = stop_timeout

        def close_sock():
            self.sock.close()

        Arbiter.__init__(self, post_fork=self.server.start, child_pre_exit=self.server.stop,
                         parent_pre_stop=close_sock, sleep=gevent.sleep, fork=gevent.fork)


def serve_wsgi_gevent(wsgi, address, stop_timeout=30):
    GeventWsgiArbiter(wsgi, address, stop_timeout).run()
