// `python3 -m ufork wsgi|asgi` (and `ufork wsgi|asgi`, which exec it): the
// ufork command's parser and service (daemon mode, pidfile, logs, the
// pool's flags) in this interpreter, serving MODULE:APP with the HTTP
// helper as serve_wsgi or serve_asgi does. The app is imported once here, before the fork (--lazy:
// in each worker); --reload replaces the workers when a .py file under the
// app's directory changes.
#include "cli.hpp"

#include <fcntl.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <pybind11/stl.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "../../cli/commands.hpp"
#include "../../cli/listen.hpp"
#include "../../cli/service.hpp"
#include "fork.hpp"
#include "sys/event.hpp"
#include "sys/fd.hpp"
#include "sys/process.hpp"
#include "sys/unique_fd.hpp"
#include "ufork/error.hpp"
#include "asgi.hpp"
#include "wsgi.hpp"

namespace ufork::python {
namespace {

namespace py = pybind11;
namespace fs = std::filesystem;
using cli::exit_usage;

// The application, or why not in one line (exit 2): a module that is not
// there, a name it lacks, an app that is not callable (ufork._load_app
// tells these apart); an exception from the module's own code also prints
// its traceback first.
py::object load(const py::module_& ufork, const std::string& spec, bool find_only, std::string& why) {
  try {
    return ufork.attr("_load_app")(spec, find_only);
  } catch (py::error_already_set& e) {
    if (e.matches(ufork.attr("_AppError"))) {
      why = py::str(e.value()).cast<std::string>();
    } else {
      why = "importing " + spec.substr(0, spec.find(':')) + " failed: " +
            py::str(e.type().attr("__name__")).cast<std::string>() + ": " + py::str(e.value()).cast<std::string>();
      e.restore();
      PyErr_Print();
    }
    return py::none();
  }
}

// --reload: an inotify watch on each directory under root (hidden ones and
// __pycache__ left out), and on each new one as it appears. A change to a
// .py file arms a timer of `quiet`, armed again by each further one, so
// that a burst (an editor's save, a checkout) is one reload: settled() once
// it has run out.
class source_watch {
 public:
  static constexpr auto quiet = std::chrono::milliseconds(100);

  explicit source_watch(fs::path root) : root_(std::move(root)) {
    auto made = sys::make_inotify();
    if (!made) throw error(made.error(), "inotify_init1");
    fd_ = std::move(made).value();
    auto timer = sys::make_timerfd();
    if (!timer) throw error(timer.error(), "timerfd_create");
    timer_ = std::move(timer).value();
    (void)add_tree(root_);
  }
  const fs::path& root() const noexcept { return root_; }
  int fd() const noexcept { return fd_.get(); }
  int timer() const noexcept { return timer_.get(); }
  std::size_t directories() const noexcept { return dirs_.size(); }

  // Reads what happened: a .py file touched arms the timer.
  void read() {
    bool py_file = false;
    alignas(inotify_event) char buf[16 * 1024];
    for (;;) {
      auto got = sys::read(fd_.get(), buf, sizeof buf);
      if (!got || got.value() == 0) break;
      for (char* p = buf; p < buf + got.value();) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        p += sizeof(inotify_event) + ev->len;
        std::string name = ev->len ? ev->name : "";
        auto dir = dirs_.find(ev->wd);
        if (dir == dirs_.end()) continue;
        if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
          // Watched from now on: what was written in it before is looked for.
          py_file = add_tree(dir->second / name) || py_file;
        } else if (name.ends_with(".py")) {
          py_file = true;
        }
      }
    }
    if (py_file) (void)sys::timerfd_arm(timer_.get(), std::chrono::steady_clock::now() + quiet);
  }
  bool settled() const noexcept { return sys::drain_counter(timer_.get()) > 0; }

 private:
  static bool skipped(const fs::path& dir) {
    std::string name = dir.filename().string();
    return name.starts_with('.') || name == "__pycache__";
  }
  void add(const fs::path& dir) {
    auto wd = sys::watch_directory(fd_.get(), dir.string(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE);
    if (wd) dirs_[wd.value()] = dir;
  }
  // Watches root and the directories under it; true if a .py file is there.
  bool add_tree(const fs::path& root) {
    if (skipped(root)) return false;
    add(root);
    bool py_file = false;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_directory(ec) || it->is_symlink(ec)) {
        py_file = py_file || it->path().extension() == ".py";
        continue;
      }
      if (skipped(it->path())) {
        it.disable_recursion_pending();
        continue;
      }
      add(it->path());
    }
    return py_file;
  }
  fs::path root_;
  sys::unique_fd fd_, timer_;
  std::map<int, fs::path> dirs_;
};

// The directory --reload watches: the sys.path entry MODULE was found under
// (the project's root), found without importing it.
fs::path source_root(const std::string& spec) {
  std::string module = spec.substr(0, spec.find(':'));
  std::string top = module.substr(0, module.find('.'));
  py::object found = py::module_::import("importlib.util").attr("find_spec")(top);
  py::object origin = found.attr("origin");
  if (origin.is_none()) {  // a namespace package: its first directory
    py::list locations = found.attr("submodule_search_locations");
    return fs::path(py::str(locations[0]).cast<std::string>()).parent_path();
  }
  fs::path file(py::str(origin).cast<std::string>());
  return top == module && file.filename() != "__init__.py" ? file.parent_path() : file.parent_path().parent_path();
}

int run_app(const cli::app_options& given, int, char**) {
  cli::app_options o = given;
  const char* name = o.asgi ? "ufork asgi" : "ufork wsgi";
  o.lazy = o.lazy || o.reload;  // a worker forked from this process would have the code imported here
  py::module_ ufork = py::module_::import("ufork");
  py::module_ os = py::module_::import("os");
  if (!o.chdir.empty()) {
    if (auto ec = sys::change_dir(o.chdir)) {
      std::cerr << name << ": --chdir " << o.chdir << ": " << ec.message() << "\n";
      return exit_usage;
    }
  }
  // The working directory first on the path, as gunicorn has it (also when
  // the daemon works elsewhere).
  std::string cwd = fs::current_path().string();
  py::module_::import("sys").attr("path").attr("insert")(0, cwd);
  for (const auto& kv : o.env) {
    auto eq = kv.find('=');
    os.attr("environ")[py::str(kv.substr(0, eq))] = kv.substr(eq + 1);
  }
  std::string why;
  py::object app = load(ufork, o.app, o.lazy, why);
  if (!why.empty()) {
    std::cerr << name << ": " << why << "\n";
    return exit_usage;
  }
  std::unique_ptr<source_watch> sources;
  if (o.reload) sources = std::make_unique<source_watch>(source_root(o.app));

  if (int n = cli::activated_count(); n >= 1) {  // socket activation: the manager's sockets
    o.binds.clear();
    for (int fd = 3; fd < 3 + n; ++fd) o.binds.push_back("fd:" + std::to_string(fd));
    cli::forget_activation();
  }
  if (o.binds.empty()) o.binds.emplace_back("127.0.0.1:8000");
  std::vector<std::string*> paths;  // made absolute for the daemon, which works in cwd all the same
  if (o.access_log != "-") paths.push_back(&o.access_log);
  cli::service svc(name, o, paths);
  svc.workdir = cwd;
  fork_protocol forks(true);
  svc.before_detach = [] { PyOS_BeforeFork(); };
  svc.after_detach = [] { PyOS_AfterFork_Child(); };
  return svc.run([&] {
    sys::unique_fd access;
    int access_fd = -1;
    if (o.access_log == "-") {  // the workers' stdout: the log, each line with its worker's prefix
      access_fd = STDOUT_FILENO;
    } else if (!o.access_log.empty()) {
      auto opened = sys::open_file(o.access_log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (!opened) throw std::runtime_error("--access-log " + o.access_log + ": " + opened.error().message());
      access = std::move(opened).value();
      access_fd = access.get();
      sys::disown_fd(access_fd);  // the workers' to write to (not one of ufork's own, which they close)
    }
    std::vector<std::string> trusted;
    for (std::size_t at = 0; at <= o.forwarded_allow_ips.size();) {
      auto comma = std::min(o.forwarded_allow_ips.find(',', at), o.forwarded_allow_ips.size());
      std::string ip = o.forwarded_allow_ips.substr(at, comma - at);
      ip.erase(0, ip.find_first_not_of(' '));
      ip.erase(ip.find_last_not_of(' ') + 1);
      if (!ip.empty()) trusted.push_back(ip);
      at = comma + 1;
    }
    // Bound here: a bad address is one line for the caller.
    std::shared_ptr<http_app> server;
    std::shared_ptr<wsgi_server> wsgi;
    http::http_options deadlines;
    deadlines.keepalive_timeout = o.keep_alive_ms();
    deadlines.request_timeout = o.request_timeout_ms();
    if (o.asgi) {
      server = std::make_shared<asgi_server>(o.binds, deadlines, trusted, access_fd);
    } else {
      server = wsgi = std::make_shared<wsgi_server>(app, o.binds, deadlines, trusted, access_fd);
    }
    py::object py_server = py::cast(server);
    py::object asgi_worker;  // the app's loop, in each worker

    options pool;
    svc.apply(pool);
    if (access_fd > STDERR_FILENO && pool.strict_fds) pool.keep_fds.push_back(access_fd);
    hooks h;
    forks.add_to(h);
    arbiter* a = nullptr;
    h.on_worker_ready = svc.ready_hook(a);
    h.reload_options = svc.reload_hook(o, a);
    h.post_fork = [&](worker&) {  // the GIL is this thread's
      try {
        ufork.attr("_worker_started")();
        py::object here = o.lazy ? py::object(ufork.attr("_load_app")(o.app)) : app;
        if (wsgi) wsgi->load(here);
        if (o.asgi) {
          asgi_worker = ufork.attr("_AsgiWorker")(py_server, here);
          asgi_worker.attr("start")();  // its lifespan startup: a failure is a failed start
        }
      } catch (py::error_already_set& e) {
        e.restore();
        PyErr_Print();
        std::fflush(nullptr);
        sys::child::exit(70);  // EX_SOFTWARE: a failed start
      }
      PyEval_SaveThread();  // the helper's loop waits without the GIL; each request takes it
    };
    h.child_pre_exit = [&](worker&) {
      py::gil_scoped_acquire gil;
      try {
        if (asgi_worker) asgi_worker.attr("stop")();  // lifespan shutdown
      } catch (py::error_already_set& e) {
        e.restore();
        PyErr_Print();
      }
      ufork.attr("_flush")();
    };
    // --reload: a change asks for a reload; one asked while another runs
    // is tried again at the pool's next event (a worker ready or gone).
    bool pending = false;
    auto reload = [&] {
      if (!pending || !a) return;
      reply r = a->execute("reload");
      pending = !r.ok && r.text.find("in progress") != std::string::npos;
    };
    if (sources) {
      h.on_worker_exit = [&](const exit_info&) { reload(); };
      auto ready = std::move(h.on_worker_ready);
      h.on_worker_ready = [&, ready](const worker_info& w) {
        ready(w);
        reload();
      };
    }
    server->attach(pool, h);
    arbiter pool_arbiter(std::move(pool), std::move(h));
    a = &pool_arbiter;
    server->log_to(pool_arbiter);
    std::string how = o.lazy ? " (imported in each worker)" : "";
    if (o.asgi)  // which loop the app runs on
      how += " (ASGI on " + py::str(ufork.attr("_event_loop_factory")()[py::int_(1)]).cast<std::string>() + ")";
    for (const auto& address : server->addresses()) {
      std::string line = "serving " + o.app + " on ";
      line += address.starts_with("unix:") ? address : "http://" + address + "/";
      if (address.starts_with("0.0.0.0:") || address.starts_with("[::]:")) line += " (every interface)";
      line += how;
      pool_arbiter.log(line);
    }
    if (sources) {
      pool_arbiter.log("--reload: watching " + std::to_string(sources->directories()) + " directories under " +
                       sources->root().string() + " for .py changes");
      pool_arbiter.watch(sources->fd(), [&] { sources->read(); });
      pool_arbiter.watch(sources->timer(), [&] {
        if (!sources->settled()) return;
        pool_arbiter.log("--reload: a source file changed: replacing the workers");
        pending = true;
        reload();
      });
    }
    py::gil_scoped_release nogil;
    return pool_arbiter.run();
  });
}

}  // namespace

int main(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  cli::runners apps;
  apps.python_app = run_app;
  try {
    return cli::parse_and_run(static_cast<int>(args.size()), argv.data(), apps);
  } catch (py::error_already_set&) {
    throw;
  } catch (const std::exception& e) {
    std::cerr << "ufork: " << e.what() << '\n';
    return cli::exit_runtime;
  }
}

}  // namespace ufork::python
