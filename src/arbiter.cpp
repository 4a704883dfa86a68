// The arbiter's loop: setup, the signals of run(), calls from other threads,
// and the public ufork::arbiter shell. Policy lives in supervise.cpp.
#include <sched.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <future>
#include <stdexcept>

#include "arbiter_impl.hpp"
#include "console.hpp"
#include "control_socket.hpp"
#include "core/spawn.hpp"
#include "exit_status.hpp"
#include "sys/sys.hpp"
#include "ufork/error.hpp"

namespace ufork {

void throw_errno(const std::string& what) {
  throw error(errno, std::system_category(), what);
}

void throw_invalid(const std::string& what) {
  throw error(std::make_error_code(std::errc::invalid_argument), "ufork: " + what);
}

int default_workers() noexcept {
  cpu_set_t set;
  int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
  return std::max(cores - 1, 2);
}

namespace {

constexpr std::size_t max_processes = 4096;  // scoreboard cells: live workers at once
constexpr int pool_signals[] = {SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGTTIN, SIGTTOU, SIGUSR1};

void validate(const options& o) {
  auto positive = [](milliseconds d, const char* name) {
    if (d <= milliseconds::zero()) throw_invalid(fmt::format("{} must be > 0", name));
  };
  if (o.workers < 0) throw_invalid("workers must be >= 0");
  if (o.workers == 0 && !o.allow_empty) throw_invalid(empty_pool_refused);
  if (o.max_starting < 1) throw_invalid("max_starting must be >= 1");
  if (o.max_boot_failures < 0) throw_invalid("max_boot_failures must be >= 0");
  positive(o.timeout, "timeout");
  positive(o.startup_timeout, "startup_timeout");
  positive(o.graceful_timeout, "graceful_timeout");
  positive(o.abort_timeout, "abort_timeout");
  positive(o.backoff.initial, "backoff.initial");
  if (o.backoff.min_interval < milliseconds::zero()) throw_invalid("backoff.min_interval must be >= 0");
  if (o.backoff.cap < o.backoff.initial) throw_invalid("backoff.cap must be >= backoff.initial");
}

template <class T>
T must(sys::result<T> r, const char* what) {
  if (!r) throw error(r.error(), what);
  return std::move(r).value();
}

}  // namespace

arbiter::impl::impl(options opts, hooks h)
    : opts_(std::move(opts)), hooks_(std::move(h)), board_(max_processes), buf_(256 * 1024) {
  validate(opts_);
  default_sink_ = !opts_.sink;
  if (!opts_.sink) opts_.sink = make_fd_sink(STDOUT_FILENO);
  if (opts_.capture_output && default_sink_)
    throw_invalid("capture_output needs a sink that does not write to stdout");
  size_ = opts_.workers;
  table_.resize(size_);

  auto [rx, tx] = must(sys::make_notify_pair(), "socketpair(notify)");
  notify_rx_ = std::move(rx);
  notify_tx_ = std::move(tx);
  wake_ = must(sys::make_eventfd(true), "eventfd(wake)");
  loop_.add(notify_rx_.get(), EPOLLIN, [this](std::uint32_t) { on_notify(); });
  loop_.add(wake_.get(), EPOLLIN, [this](std::uint32_t) { on_wake(); });

  detail::preload_backtrace();
  if (opts_.oom_score_adj != 0 && (oom_found_ = sys::oom_score_adj()))
    worker_oom_ = std::to_string(std::clamp(*oom_found_ + opts_.oom_score_adj, -1000, 1000));
}

arbiter::impl::~impl() {
  if (background.joinable()) {
    request_stop();
    background.join();
  }
  if (nofile_.rlim_max != 0) (void)::setrlimit(RLIMIT_NOFILE, &nofile_);  // the host's own limit back
}

void arbiter::impl::log_text(const std::string& text) {
  opts_.sink->write({-1, ::getpid(), stream::arbiter, text});
}

template <class F>
auto arbiter::impl::call(F f) -> decltype(f()) {
  std::unique_lock lock(mu_);
  if (!running_ || std::this_thread::get_id() == loop_thread_) {
    lock.unlock();
    return f();
  }
  std::packaged_task<decltype(f())()> task(std::move(f));
  auto result = task.get_future();
  posted_.push_back([&task] { task(); });
  lock.unlock();
  sys::eventfd_signal(wake_.get());
  return result.get();
}

namespace {

// The terminal's sink while the prompt shows: output goes above the line
// being typed, which is redrawn after it.
class console_sink final : public log_sink {
 public:
  console_sink(std::shared_ptr<log_sink> inner, console& c) : inner_(std::move(inner)), console_(c) {}
  void write(const log_line& line) override {
    console_.hide();
    inner_->write(line);
    dirty_ = true;
  }
  void flush() override {
    if (!dirty_) return inner_->flush();
    console_.hide();
    inner_->flush();
    console_.show();
    dirty_ = false;
  }
  void reopen() override { inner_->reopen(); }

 private:
  std::shared_ptr<log_sink> inner_;
  console& console_;
  bool dirty_ = false;
};

}  // namespace

void arbiter::impl::open_console() {
  console_ = std::make_unique<console>(
      loop_, opts_.history_file, [this](const std::string& line) { on_console_line(line); },
      [this](const std::string& so_far) { return completions(so_far); });
  opts_.sink = std::make_shared<console_sink>(opts_.sink, *console_);
}

void arbiter::impl::on_console_line(const std::string& line) {
  opts_.sink->flush();
  reply r = execute(line);
  bool json = line.find("--json") != std::string::npos;
  console_->print((json ? answer_line(r) : r.ok ? r.text : "error: " + r.text) + "\n");
}

std::vector<std::string> arbiter::impl::completions(const std::string& so_far) const {
  auto words = split_words(so_far);
  if (words.empty()) return command_names();
  if (words.size() == 1 && (words[0] == "kill" || words[0] == "restart")) {
    std::vector<std::string> ids;
    for (int i = 0; i < size_; ++i) ids.push_back(std::to_string(i));
    return ids;
  }
  return {};
}

void arbiter::impl::on_wake() {
  (void)sys::drain_counter(wake_.get());
  run_posted();
}

void arbiter::impl::run_posted() {
  std::vector<std::function<void()>> todo;
  {
    std::lock_guard lock(mu_);
    todo.swap(posted_);
    if (stop_requested_) {
      stop_requested_ = false;
      todo.push_back([this] { begin_stop(false); });
    }
  }
  for (auto& f : todo) f();
}

void arbiter::impl::request_stop() noexcept {
  {
    std::lock_guard lock(mu_);
    stop_requested_ = true;
  }
  sys::eventfd_signal(wake_.get());
}

void arbiter::impl::resize(int n) {
  if (n < 0) throw_invalid("size must be >= 0");
  if (n == 0 && !opts_.allow_empty) throw_invalid(empty_pool_refused);
  call([this, n] { do_resize(n); });
}

struct status arbiter::impl::snapshot() const {
  return const_cast<impl*>(this)->call([this] {
    auto now = clock::now();
    struct status s;
    s.size = size_;
    s.stopping = stopping_;
    for (const auto& [pid, p] : table_.processes()) s.workers.push_back(info(*p, now));
    std::sort(s.workers.begin(), s.workers.end(),
              [](const auto& a, const auto& b) { return std::tie(a.id, a.generation) < std::tie(b.id, b.generation); });
    s.counters = counters_;
    s.counters.log_lost = opts_.sink->lost();
    s.dead.assign(dead_.begin(), dead_.end());
    if (auto at = next_deadline(now); at != clock::time_point{})
      s.next_wakeup = std::max(at - now, clock::duration::zero());
    return s;
  });
}

void arbiter::impl::install_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : pool_signals) sigaddset(&set, sig);
  if (::pthread_sigmask(SIG_BLOCK, &set, &old_mask_) != 0) throw_errno("pthread_sigmask");
  signals_ = must(sys::make_signalfd(set), "signalfd");
  signals_token_ = loop_.add(signals_.get(), EPOLLIN, [this](std::uint32_t) { on_signal(); });
  // A log reader that went away must not kill the arbiter (and so the pool).
  struct sigaction ign{};
  ign.sa_handler = SIG_IGN;
  (void)::sigaction(SIGPIPE, &ign, &old_pipe_);
  own_signals_ = true;
}

void arbiter::impl::restore_signals() noexcept {
  if (!own_signals_) return;
  loop_.remove(signals_token_);
  signals_.reset();
  (void)::sigaction(SIGPIPE, &old_pipe_, nullptr);
  (void)::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
  own_signals_ = false;
}

void arbiter::impl::on_signal() {
  signalfd_siginfo si;
  for (;;) {
    auto n = sys::read(signals_.get(), &si, sizeof si);
    if (!n || n.value() != sizeof si) return;
    int sig = static_cast<int>(si.ssi_signo);
    log("{} from pid {}", signal_name(sig), si.ssi_pid);
    switch (sig) {
      case SIGINT: begin_stop(stopping_); break;  // a second Ctrl-C: fast
      case SIGTERM: begin_stop(false); break;
      case SIGQUIT: begin_stop(true); break;
      case SIGTTIN: do_resize(size_ + 1); break;
      case SIGTTOU:
        if (size_ > 1 || opts_.allow_empty)
          do_resize(std::max(size_ - 1, 0));
        else
          log("SIGTTOU: size stays {}: {}", size_, empty_pool_refused);
        break;
      case SIGUSR1: opts_.sink->reopen(); break;
      case SIGHUP:
        if (auto r = execute("reload"); !r.ok) log("SIGHUP: {}", r.text);
        break;
    }
  }
}

int arbiter::impl::run_loop(bool own_signals) {
  {
    std::lock_guard lock(mu_);
    if (running_ || loop_thread_ != std::thread::id{})
      throw std::logic_error("ufork: an arbiter runs once");
    running_ = true;
    loop_thread_ = std::this_thread::get_id();
  }
  auto base_sink = opts_.sink;
  try {
    int code = supervise(own_signals);
    finish(base_sink);
    return code;
  } catch (...) {
    // Setup failed (a control socket in use, ...) or the loop itself did:
    // no worker may outlive the arbiter's supervision.
    abandon();
    finish(base_sink);
    throw;
  }
}

int arbiter::impl::supervise(bool own_signals) {
  if (own_signals && opts_.handle_signals) install_signals();
  // run(): the process is ours, and the arbiter should be the OOM killer's
  // last choice. Lowering needs CAP_SYS_RESOURCE: refused is fine.
  if (own_signals && oom_found_ && opts_.oom_score_adj > 0)
    oom_lowered_ = sys::set_oom_score_adj(std::max(*oom_found_ - opts_.oom_score_adj, -999));
  if (!opts_.control_path.empty())
    control_ = std::make_unique<control_server>(
        loop_, opts_.control_path, opts_.max_control_clients,
        [this](std::string_view line) { return answer_line(execute(line)); },
        [this](const std::string& msg) { log_text(msg); });
  if (opts_.capture_output) capture_own_output();
  if (own_signals && opts_.console && console::available()) open_console();
  log("arbiter pid {}: {} workers, timeout {} ms{}", ::getpid(), size_, opts_.timeout.count(),
      control_ ? ", control socket " + opts_.control_path : std::string());
  run_posted();
  maintain(clock::now());
  while (!(stopping_ && table_.empty())) {
    loop_.arm(next_deadline(clock::now()));
    opts_.sink->flush();
    loop_.run_once();
    ++counters_.wakeups;
    auto now = clock::now();
    // The most overdue deadline, from what the handlers just learnt (a
    // worker that became ready just before the tree froze): long overdue
    // means the arbiter was not running when it was due.
    if (auto due = next_deadline(now); policy::stalled(due, now, opts_.timeout)) restart_clocks(now - due, now);
    check_deadlines(now);
    maintain(now);
    if (control_) control_->resume_if_fds_free();
  }
  if (gave_up_)
    log("gave up; exit {}", exit_boot_failure);
  else
    log("all workers stopped");
  opts_.sink->flush();
  return gave_up_ ? exit_boot_failure : 0;
}

void arbiter::impl::abandon() noexcept {
  for (const auto& [pid, p] : table_.processes()) {
    (void)sys::kill_group(pid, SIGKILL);
    siginfo_t info{};
    (void)::waitid(P_PIDFD, static_cast<id_t>(p->pidfd.get()), &info, WEXITED);
  }
  while (!table_.empty()) (void)table_.remove(table_.processes().begin()->first);
}

void arbiter::impl::finish(std::shared_ptr<log_sink> base_sink) noexcept {
  console_.reset();
  control_.reset();
  opts_.sink = std::move(base_sink);
  {
    std::lock_guard lock(mu_);
    running_ = false;
  }
  try {
    run_posted();  // calls that raced with the end run here, on their own
  } catch (...) {
  }
  restore_signals();
  if (std::exchange(oom_lowered_, false)) (void)sys::set_oom_score_adj(*oom_found_);
}

void arbiter::impl::start() {
  background = std::thread([this] {
    try {
      background_result = run_loop(false);
    } catch (...) {
      background_error = std::current_exception();
    }
  });
}

int arbiter::impl::wait() {
  if (background.joinable()) background.join();
  if (background_error) std::rethrow_exception(std::exchange(background_error, nullptr));
  return background_result;
}

arbiter::arbiter(options opts, hooks h) : impl_(std::make_unique<impl>(std::move(opts), std::move(h))) {}
arbiter::~arbiter() = default;

int arbiter::run() { return impl_->run_loop(true); }
void arbiter::start() { impl_->start(); }
void arbiter::stop() noexcept { impl_->request_stop(); }
int arbiter::wait() { return impl_->wait(); }
void arbiter::resize(int workers) { impl_->resize(workers); }
struct status arbiter::status() const { return impl_->snapshot(); }

void arbiter::add_command(std::string name, std::string help, command_handler handler) {
  impl_->call([&] { impl_->add_command(std::move(name), std::move(help), std::move(handler)); });
}

void arbiter::log(std::string_view text) {
  impl_->call([&] { impl_->log_text(std::string(text)); });
}

reply arbiter::execute(std::string_view line) {
  return impl_->call([&] { return impl_->execute(line); });
}

}  // namespace ufork
