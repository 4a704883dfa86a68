// ufork._ufork: the C++ arbiter under Python's `import ufork`. The uFork API
// itself is Python (python/ufork/__init__.py); this is what it stands on:
// a pool that forks from the thread that runs it, with the interpreter's
// fork protocol around each fork, the GIL released while the loop waits,
// Python's signal handlers run on the loop's wakeups, and in the worker the
// heartbeat thread that takes the GIL for each beat.
#include <utility>  // before any Boost header (Boost 1.74's awaitable.hpp)

#include <poll.h>

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "../../cli/commands.hpp"
#include "ufork/arbiter.hpp"
#include "ufork/error.hpp"
#include "core/option_table.hpp"
#include "sys/event.hpp"
#include "sys/fd.hpp"
#include "sys/result.hpp"
#include "sys/unique_fd.hpp"
#include "sys/process.hpp"
#include "ufork/log.hpp"
#include "ufork/version.hpp"
#include "asgi.hpp"
#include "cli.hpp"
#include "fork.hpp"
#include "gil.hpp"
#include "wsgi.hpp"

namespace py = pybind11;
namespace sys = ufork::sys;

namespace {

sys::unique_fd made(sys::result<sys::unique_fd> r, const char* what) {
  if (!r) throw ufork::error(r.error(), what);
  return std::move(r).value();
}

// A Python callable kept by C++ callbacks: released (and so its GIL taken)
// only where Python can be called.
using pyfn = std::shared_ptr<py::object>;
pyfn keep(py::object o) {
  if (o.is_none()) return nullptr;
  return ufork::python::shared_with_gil(new py::object(std::move(o)));
}

// An exception escaping a Python hook of the arbiter: printed with its
// traceback; supervision goes on.
void call_logged(const pyfn& fn) {
  if (!fn) return;
  py::gil_scoped_acquire gil;
  try {
    (*fn)();
  } catch (py::error_already_set& e) {
    e.restore();
    PyErr_Print();
  }
}

// The pool's options from what python/ufork/__init__.py passes: each key
// one of the option table's (src/core/option_table.hpp, '-' spelt '_') that
// Python takes, set by the table's own entry (its range, seconds into
// milliseconds), or one of the module's own (python_keys); None leaves the
// default. Anything else is a TypeError naming it, not a setting lost; a
// value out of range a ValueError.
const std::set<std::string> python_keys = {"log_file", "prompt", "wsgi", "child_exit", "gc_freeze"};

ufork::options options_from(const py::dict& config) {
  ufork::options o;
  for (const auto& [key, value] : config) {
    auto name = py::str(key).cast<std::string>();
    if (python_keys.contains(name)) continue;
    const ufork::option_entry* e = ufork::find_option(name);
    if (!e || !(e->use & ufork::in_python) || name.find('-') != std::string::npos)
      throw py::type_error("Core() got an unexpected option '" + name + "'");
    if (value.is_none()) continue;
    auto set = [&](const py::handle& v) {
      std::string text = py::isinstance<py::bool_>(v) ? (v.cast<bool>() ? "true" : "false") : py::str(v).cast<std::string>();
      try {
        e->set(o, text);
      } catch (const std::invalid_argument& x) {
        throw py::value_error(name + ": " + x.what());
      }
    };
    if (e->kind == ufork::option_kind::texts && (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)))
      for (const auto& one : value) set(one);  // refork_after=[1000, 5000]
    else
      set(value);
  }
  return o;
}

py::dict to_dict(const ufork::worker_info& w) {
  py::dict d;
  d["id"] = w.id;
  d["pid"] = w.pid;
  d["generation"] = w.generation;
  d["state"] = ufork::to_string(w.state);
  d["uptime"] = std::chrono::duration<double>(w.uptime).count();
  d["requests"] = w.requests;
  return d;
}

py::dict to_dict(const ufork::exit_info& e) {
  py::dict d;
  d["id"] = e.id;
  d["pid"] = e.pid;
  d["generation"] = e.generation;
  d["code"] = e.code;
  d["signal"] = e.signal;
  d["core_dumped"] = e.core_dumped;
  d["reason"] = ufork::to_string(e.reason);
  d["status"] = e.status_text();
  d["describe"] = e.describe();
  return d;
}

// While the ufork>> prompt shows, lines go above it: the Python side's
// hide() erases the line being typed before a batch, show() draws it again
// after (each does nothing while no input is awaited).
class prompt_sink final : public ufork::log_sink {
 public:
  prompt_sink(std::shared_ptr<ufork::log_sink> inner, py::object hide, py::object show)
      : inner_(std::move(inner)), hide_(keep(std::move(hide))), show_(keep(std::move(show))) {}
  void write(const ufork::log_line& line) override {
    if (!hidden_) inner_->flush(), call_logged(hide_), hidden_ = true;
    inner_->write(line);
  }
  void flush() override {
    inner_->flush();
    if (hidden_) call_logged(show_), hidden_ = false;
  }
  void reopen() override { inner_->reopen(); }
  std::uint64_t lost() const override { return inner_->lost(); }

 private:
  std::shared_ptr<ufork::log_sink> inner_;
  pyfn hide_, show_;
  bool hidden_ = false;
};

// One pool, run once, on the thread that calls run().
class core {
 public:
  // config: what python/ufork/__init__.py passes (see there); child: called
  // in each new worker, with the GIL, after the interpreter's fork protocol.
  core(const py::dict& config, py::object child, py::object parent_pre_stop, py::object printfunc)
      : child_(keep(std::move(child))), pre_stop_(keep(std::move(parent_pre_stop))) {
    ufork::options o = options_from(config);
    o.handle_signals = false;  // Python's signal handlers, run by on_wakeup()
    o.upgrade = false;  // python3 started again from its argv would not be at this point of the program
    o.console = false;         // the prompt is Python's (readline), not ours
    if (config.contains("log_file") && !config["log_file"].is_none()) {
      ufork::file_sink_options f;
      f.path = config["log_file"].cast<std::string>();
      o.sink = ufork::make_file_sink(f);
      o.capture_output = true;  // what the arbiter's Python prints, too
    } else if (!printfunc.is_none()) {
      auto fn = keep(std::move(printfunc));
      o.sink = ufork::make_callback_sink([fn](const ufork::log_line& l) {
        py::gil_scoped_acquire gil;
        try {
          (*fn)(ufork::format_prefix(l) + std::string(l.text));
        } catch (py::error_already_set& e) {
          e.restore();
          PyErr_Print();
        }
      });
    }

    if (config.contains("prompt") && !config["prompt"].is_none()) {
      py::object p = config["prompt"];
      if (!o.sink) o.sink = ufork::make_fd_sink(STDOUT_FILENO);
      o.sink = std::make_shared<prompt_sink>(o.sink, p.attr("hide"), p.attr("show"));
    }

    bool freeze = !config.contains("gc_freeze") || config["gc_freeze"].is_none() || config["gc_freeze"].cast<bool>();
    fork_ = std::make_unique<ufork::python::fork_protocol>(freeze);
    ufork::hooks h;
    fork_->add_to(h);
    h.post_fork = [this](ufork::worker&) { run_child(); };
    h.parent_pre_stop = [this] { call_logged(pre_stop_); };
    if (config.contains("wsgi")) {  // serve_wsgi: the HTTP helper runs after child() returns
      wsgi_ = config["wsgi"].cast<std::shared_ptr<ufork::python::http_app>>();
      wsgi_->attach(o, h);
      h.child_pre_exit = [this](ufork::worker&) { call_logged(child_exit_); };
      child_exit_ = keep(config["child_exit"]);
    }
    arbiter_ = std::make_unique<ufork::arbiter>(std::move(o), std::move(h));
    if (wsgi_) wsgi_->log_to(*arbiter_);
  }

  // Runs the pool until it stops. wakeup_fd: what signal.set_wakeup_fd
  // writes to (main thread only), or -1.
  int run(int wakeup_fd) {
    if (wakeup_fd >= 0) arbiter_->watch(wakeup_fd, [this, wakeup_fd] { on_wakeup(wakeup_fd); });
    int code;
    {
      py::gil_scoped_release nogil;
      code = arbiter_->run();
    }
    if (pending_) {
      pending_->restore();
      pending_.reset();
      throw py::error_already_set();
    }
    return code;
  }
  void stop(bool now) {
    py::gil_scoped_release nogil;
    if (now)
      arbiter_->stop_now();
    else
      arbiter_->stop();
  }
  void resize(int n) {
    py::gil_scoped_release nogil;
    arbiter_->resize(n);
  }
  py::tuple execute(const std::string& line) {
    ufork::reply r;
    {
      py::gil_scoped_release nogil;
      r = arbiter_->execute(line);
    }
    return py::make_tuple(r.ok, r.text, r.json);
  }
  py::dict status() {
    ufork::pool_status s;
    {
      py::gil_scoped_release nogil;
      s = arbiter_->status();
    }
    py::dict d;
    d["size"] = s.size;
    d["stopping"] = s.stopping;
    d["ready"] = s.ready;
    py::list workers, dead;
    for (const auto& w : s.workers) workers.append(to_dict(w));
    for (const auto& e : s.dead) dead.append(to_dict(e));
    d["workers"] = workers;
    d["dead"] = dead;
    d["spawned"] = s.counters.spawned;
    d["hung"] = s.counters.hung;
    d["requests"] = s.counters.requests;
    return d;
  }

 private:
  // The loop woke for a signal: Python's handlers run here, on the thread
  // that called run() (the main thread). One that raises (the default SIGINT
  // handler's KeyboardInterrupt) stops the pool; a second one stops it at
  // once; the first exception reaches run()'s caller once the pool is down.
  void on_wakeup(int fd) {
    char buf[64];
    for (auto n = sys::read(fd, buf, sizeof buf); n && n.value() > 0; n = sys::read(fd, buf, sizeof buf)) {
    }
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() == 0) return;
    if (!pending_) {
      pending_ = std::make_unique<py::error_already_set>();  // fetches it
      arbiter_->stop();
    } else {
      PyErr_Clear();
      arbiter_->stop_now();
    }
  }

  // In the new worker (the GIL is this thread's): the Python side's worker,
  // which returns once the worker should exit. An exception escaping it:
  // traceback, exit 70 (EX_SOFTWARE).
  void run_child() {
    try {
      (*child_)();
    } catch (py::error_already_set& e) {
      e.restore();
      PyErr_Print();
      std::fflush(nullptr);
      sys::child::exit(70);  // EX_SOFTWARE
    }
    if (wsgi_) PyEval_SaveThread();  // the helper's loop waits without the GIL; each request takes it
  }

  pyfn child_, pre_stop_, child_exit_;
  std::shared_ptr<ufork::python::http_app> wsgi_;  // serve_wsgi's or serve_asgi's
  std::unique_ptr<ufork::python::fork_protocol> fork_;
  std::unique_ptr<py::error_already_set> pending_;
  std::unique_ptr<ufork::arbiter> arbiter_;
};

ufork::worker& me() {
  ufork::worker* w = ufork::current_worker();
  if (!w) throw std::runtime_error("ufork: not in a worker");
  return *w;
}

// A worker's heartbeat: a thread that takes the GIL for each beat (an
// interpreter wedged with the GIL held misses them and is caught as hung).
// When the arbiter asks the worker to stop while post_fork still runs, it
// ends post_fork: it calls on_stop, with the GIL (child_pre_exit:
// httpd.shutdown), or without one raises `interrupt` in post_fork's thread
// at its next Python line, again every 100 ms (a bare `except:` on the way,
// as in wsgiref's handler, swallows one); with neither it leaves it alone.
class heartbeat {
 public:
  heartbeat(py::object on_stop, py::object interrupt)
      : on_stop_(keep(std::move(on_stop))),
        interrupt_(keep(std::move(interrupt))),
        main_(PyThread_get_thread_ident()),
        done_(made(sys::make_eventfd(false), "eventfd")) {
    ufork::worker& w = me();
    thread_ = std::thread([this, &w] { beat(w); });
  }
  ~heartbeat() {
    try {
      close();
    } catch (...) {  // join() of a joinable thread other than this one does not fail
    }
  }
  heartbeat(const heartbeat&) = delete;
  heartbeat& operator=(const heartbeat&) = delete;

  // Calls post_fork here (the GIL held). "returned": it ended by itself
  // before any stop (the caller waits for the stop, then child_pre_exit);
  // "stopped": the stop came while it ran and ended it as above (the worker
  // exits); "pre_exit_failed": the same, but child_pre_exit raised (its
  // traceback printed: the worker exits 70, as when the caller calls it).
  std::string run(const py::object& post_fork) {
    try {
      post_fork();
    } catch (py::error_already_set& e) {
      bool ours = interrupt_ && e.matches(interrupt_->ptr());
      done_running();
      if (!ours) throw;
    }
    done_running();
    bool stopped;
    {
      std::lock_guard lock(mu_);
      stopped = stopped_;
    }
    if (!stopped) return "returned";
    close();  // child_pre_exit, running on the thread, finishes before the worker exits
    return pre_exit_failed_ ? "pre_exit_failed" : "stopped";
  }
  // Ends the thread.
  void close() {
    if (!thread_.joinable()) return;
    sys::eventfd_signal(done_.get());
    {
      py::gil_scoped_release nogil;
      thread_.join();
    }
    done_.reset();
  }

 private:
  // No interrupt from here on, nor one still pending (no Python line has
  // run since post_fork ended).
  void done_running() {
    std::lock_guard lock(mu_);
    returned_ = true;
    PyThreadState_SetAsyncExc(main_, nullptr);
  }

  // The first beat comes `settle` after post_fork starts: a worker whose
  // post_fork serves for good is ready then, not a beat period (TIMEOUT / 4)
  // later; one whose post_fork fails at once (an import, a database that
  // refuses) fails before it, a failed start that backs off and can make
  // the pool give up.
  static constexpr int settle_ms = 100;

  void beat(ufork::worker& w) {
    pollfd fds[2] = {{w.stop_fd(), POLLIN, 0}, {done_.get(), POLLIN, 0}};
    int interval = static_cast<int>(w.heartbeat_interval().count());
    int wait = std::min(interval, settle_ms);
    bool stopping = false;
    for (;; wait = interval) {
      auto n = stopping ? sys::poll_once(&fds[1], 1, 100) : sys::poll_once(fds, 2, wait);
      if (!n && n.error() == std::errc::interrupted) continue;
      if (fds[1].revents) return;
      py::gil_scoped_acquire gil;  // the beat proves the interpreter runs
      if (!stopping && !fds[0].revents) {
        w.heartbeat();
        continue;
      }
      std::unique_lock lock(mu_);
      if (returned_) return;
      stopped_ = stopping = true;
      if (on_stop_) {
        lock.unlock();
        try {
          (*on_stop_)();
        } catch (py::error_already_set& e) {
          e.restore();
          PyErr_Print();
          std::lock_guard failed(mu_);
          pre_exit_failed_ = true;
        }
        return;
      }
      if (!interrupt_) return;
      PyThreadState_SetAsyncExc(main_, interrupt_->ptr());  // GIL and lock held: post_fork still runs
    }
  }

  pyfn on_stop_, interrupt_;
  unsigned long main_;
  sys::unique_fd done_;
  std::mutex mu_;
  bool returned_ = false, stopped_ = false, pre_exit_failed_ = false;
  std::thread thread_;
};

// serve_wsgi's and serve_asgi's keep_alive= and request_timeout= (seconds),
// as the command line's --keep-alive and --request-timeout.
ufork::http::http_options deadlines(double keep_alive, double request_timeout) {
  for (double s : {keep_alive, request_timeout})
    if (!(s >= 0.001 && s <= 86400)) throw py::value_error("keep_alive and request_timeout: seconds from 0.001 to 86400");
  const ufork::cli::http_deadlines given{keep_alive, request_timeout};
  ufork::http::http_options o;
  o.keepalive_timeout = given.keep_alive_ms();
  o.request_timeout = given.request_timeout_ms();
  return o;
}

}  // namespace

PYBIND11_MODULE(_ufork, m) {
  m.doc() = "The C++ arbiter under `import ufork`; use the ufork package, not this.";
  m.attr("__version__") = UFORK_VERSION_STRING;  // the project's (CMakeLists.txt), as `ufork --version` says it
  py::register_exception<ufork::error>(m, "Error", PyExc_OSError);

  py::class_<core>(m, "Core")
      .def(py::init<const py::dict&, py::object, py::object, py::object>())
      .def("run", &core::run, py::arg("wakeup_fd") = -1)
      .def("stop", &core::stop, py::arg("now") = false)
      .def("resize", &core::resize)
      .def("execute", &core::execute)
      .def("status", &core::status);

  py::class_<ufork::python::http_app, std::shared_ptr<ufork::python::http_app>>(m, "HttpApp")
      .def_property_readonly("address", [](const ufork::python::http_app& a) { return a.addresses().front(); })
      .def_property_readonly("addresses", &ufork::python::http_app::addresses);

  py::class_<ufork::python::wsgi_server, ufork::python::http_app, std::shared_ptr<ufork::python::wsgi_server>>(m, "WsgiServer")
      .def(py::init([](py::object app, const std::string& address, std::vector<std::string> forwarded_allow_ips,
                       double keep_alive, double request_timeout) {
             return std::make_shared<ufork::python::wsgi_server>(std::move(app), std::vector<std::string>{address},
                                                                 deadlines(keep_alive, request_timeout),
                                                                 std::move(forwarded_allow_ips));
           }),
           py::arg("app"), py::arg("address"), py::arg("forwarded_allow_ips") = std::vector<std::string>{"127.0.0.1"},
           py::arg("keep_alive") = 15.0, py::arg("request_timeout") = 10.0);

  // serve_asgi: the server (bound in the arbiter) and each request's side.
  py::register_exception<ufork::python::asgi_error>(m, "AsgiError", PyExc_RuntimeError);
  py::class_<ufork::python::asgi_server, ufork::python::http_app, std::shared_ptr<ufork::python::asgi_server>>(m, "AsgiServer")
      .def(py::init([](const std::vector<std::string>& addresses, std::vector<std::string> forwarded_allow_ips,
                       double keep_alive, double request_timeout) {
             return std::make_shared<ufork::python::asgi_server>(addresses, deadlines(keep_alive, request_timeout),
                                                                 std::move(forwarded_allow_ips));
           }),
           py::arg("addresses"), py::arg("forwarded_allow_ips") = std::vector<std::string>{"127.0.0.1"},
           py::arg("keep_alive") = 15.0, py::arg("request_timeout") = 10.0)
      .def("serve_with", &ufork::python::asgi_server::serve_with)
      .def("loop_fd", &ufork::python::asgi_server::loop_fd)
      .def("step", &ufork::python::asgi_server::step);
  py::class_<ufork::python::asgi_exchange, std::shared_ptr<ufork::python::asgi_exchange>>(m, "AsgiExchange")
      .def("receive", &ufork::python::asgi_exchange::receive)
      .def("send", &ufork::python::asgi_exchange::send)
      .def("fail", &ufork::python::asgi_exchange::fail)
      .def_property_readonly("over", &ufork::python::asgi_exchange::over);

  py::class_<heartbeat>(m, "Heartbeat")
      .def(py::init<py::object, py::object>())
      .def("run", &heartbeat::run)
      .def("close", &heartbeat::close);

  // The worker side; each raises RuntimeError outside a worker but worker_id.
  m.def("worker_id", []() -> py::object {
    ufork::worker* w = ufork::current_worker();
    return w ? py::object(py::int_(w->id())) : py::object(py::none());
  });
  m.def("generation", [] { return me().generation(); });
  m.def("heartbeat", [] { me().heartbeat(); });
  m.def("ready", [] { me().ready(); });
  m.def("stopping", [] { return me().stopping(); });
  m.def("stop_fd", [] { return me().stop_fd(); });
  m.def("heartbeat_interval", [] { return std::chrono::duration<double>(me().heartbeat_interval()).count(); });
  m.def("count_requests", [](std::uint64_t n) { me().count_requests(n); }, py::arg("n") = 1);
  // faulthandler.enable() puts its own small signal stack in place of the
  // worker's: ufork's SIGABRT handler, which it chains to, needs more.
  m.def("_signal_stack", [] { return sys::child::use_signal_stack(1UL << 20); });
  m.def("default_workers", &ufork::default_workers);
  // python3 -m ufork (ufork/__main__.py): the ufork command's wsgi.
  m.def("main", &ufork::python::main);
}
