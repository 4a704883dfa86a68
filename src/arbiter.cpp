// ufork::arbiter: the pool of src/core/ with the parts a user talks to, the
// commands, the ufork>> prompt and the control socket (src/control/),
// attached to its loop.
#include <sys/epoll.h>
#include <unistd.h>

#include "control/commands.hpp"
#include "control/control_socket.hpp"
#include "control/prompt.hpp"
#include "control/status_server.hpp"
#include "core/pool.hpp"
#include "sys/carry.hpp"
#include "sys/fd.hpp"
#include "sys/result.hpp"
#include "sys/socket.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork {
namespace {


// Every line to the control socket's followers too (`ufork ctl follow`).
class follow_sink final : public log_sink {
 public:
  follow_sink(std::shared_ptr<log_sink> inner, control_server& s) : inner_(std::move(inner)), server_(s) {}
  void write(const log_line& line) override {
    inner_->write(line);
    server_.publish(line);
  }
  void flush() override {
    inner_->flush();
    server_.flush_followers();
  }
  void reopen() override { inner_->reopen(); }
  std::uint64_t lost() const override { return inner_->lost(); }

 private:
  std::shared_ptr<log_sink> inner_;
  control_server& server_;
};

}  // namespace

class arbiter::impl {
 public:
  impl(options opts, hooks h) : pool_(std::move(opts), with_events(std::move(h))), commands_(pool_) {
    pool_.attach({[this](bool own_signals) { open(own_signals); },
                  [this] {
                    if (control_) control_->resume_if_fds_free();
                    if (status_) status_->resume_if_fds_free();
                  },
                  [this] { close(); },
                  [this] { suspend_console(); }, [this] { resume_console(); },
                  [](int fd, bool ok, const std::string& text) { answer_upgrade(fd, ok, text); }});
  }
  // The loop's thread uses the parts below until it ends.
  ~impl() { pool_.join(); }

  pool pool_;
  ufork::commands commands_;
  std::vector<std::pair<int, std::function<void()>>> watches_;  // arbiter::watch, added when the loop opens

 private:
  // A fork and a worker's readiness, which the log leaves out, as events
  // for the followers (exits, hangs, reloads and sizes are in the log).
  hooks with_events(hooks h) {
    h.on_worker_spawn = [this, user = std::move(h.on_worker_spawn)](const worker_info& w) {
      event(fmt::format("worker {} pid {} gen {} spawned", w.id, w.pid, w.generation));
      if (user) user(w);
    };
    h.on_worker_ready = [this, user = std::move(h.on_worker_ready)](const worker_info& w) {
      event(fmt::format("worker {} pid {} gen {} ready", w.id, w.pid, w.generation));
      if (user) user(w);
    };
    return h;
  }
  void event(const std::string& text) {
    if (control_) control_->publish({-1, sys::own_pid(), stream_kind::arbiter, text});
  }

  void open(bool own_signals) {
    const options& o = pool_.opts();
    if (!o.control_path.empty())
      control_ = std::make_unique<control_server>(
          pool_.loop(), o.control_path, o.max_control_clients,
          [this](std::string_view line, int client) {
            commands_.set_requester(client);
            std::string answer = answer_line(commands_.execute(line));
            commands_.set_requester(-1);
            return answer;
          },
          [this](const std::string& msg) { pool_.log_text(msg); });
    if (control_) pool_.set_sink(std::make_shared<follow_sink>(pool_.sink(), *control_));
    if (!o.metrics_address.empty()) {
      status_ = std::make_unique<status_server>(
          pool_.loop(), o.metrics_address,
          [this](const std::string& command, bool json) {
            reply r = commands_.execute(command);
            return json ? answer_line(r) : r.text;
          },
          [this](const std::string& msg) { pool_.log_text(msg); });
      const std::string& at = status_->address();
      bool loopback = at.starts_with("127.") || at.starts_with("[::1]");
      pool_.log_text("status page on http://" + at + "/ (and /metrics, /status, /workers, /dead)" +
                     (loopback ? "" : "; WARNING: not a loopback address: anyone who can reach it sees the pool"));
    }
    for (const auto& [fd, fn] : watches_) pool_.loop().add(fd, EPOLLIN, [fn = fn](std::uint32_t) { fn(); });
    if (own_signals && o.console) prompt_ = attach_prompt(pool_, commands_);
  }

  // The prompt, and the terminal's settings back as they were before it,
  // around an upgrade's exec (the next image shows its own).
  void suspend_console() noexcept {
    if (prompt_) prompt_->suspend();
  }
  void resume_console() {
    if (prompt_) prompt_->resume();
  }

  // The client that asked for the upgrade hears how it went from the image
  // that adopted the pool.
  static void answer_upgrade(int fd, bool ok, const std::string& text) {
    if (fd < 0) return;
    std::string line = answer_line(ok ? ufork::ok(text, R"({"upgraded":true})") : fail(text)) + "\n";
    (void)sys::send_waiting(fd, line.data(), line.size());
    sys::close_fd(fd);
  }

  void close() noexcept {
    prompt_.reset();
    control_.reset();
    status_.reset();
  }

  std::unique_ptr<prompt_attachment> prompt_;
  std::unique_ptr<control_server> control_;
  std::unique_ptr<status_server> status_;
};

void carry_socket(int fd, const std::string& name) {
  if (name.empty())
    sys::carry(fd, "");
  else
    sys::carry(fd, "program " + name);
}

int inherited_socket(const std::string& name, bool copy) { return sys::take_carried("program " + name, copy); }

arbiter::arbiter(options opts, hooks h) : impl_(std::make_unique<impl>(std::move(opts), std::move(h))) {}
arbiter::~arbiter() = default;

int arbiter::run() { return impl_->pool_.run_loop(true); }
void arbiter::start() { impl_->pool_.start(); }
void arbiter::stop() noexcept { impl_->pool_.request_stop(); }
void arbiter::stop_now() {
  impl_->pool_.call([this] { impl_->pool_.stop(true); });
}
int arbiter::wait() { return impl_->pool_.wait(); }
pool_status arbiter::status() const { return impl_->pool_.snapshot(); }

void arbiter::resize(int workers) {
  if (workers < 0) throw_invalid("size must be >= 0");
  if (workers == 0 && !impl_->pool_.opts().allow_empty) throw_invalid(empty_pool_refused);
  impl_->pool_.call([&] { (void)impl_->pool_.resize(workers); });
}

void arbiter::add_command(std::string name, std::string help, command_handler handler) {
  impl_->pool_.call([&] { impl_->commands_.add(std::move(name), std::move(help), std::move(handler)); });
}

void arbiter::watch(int fd, std::function<void()> fn) {
  impl_->pool_.call([&] { impl_->watches_.emplace_back(fd, std::move(fn)); });
}

void arbiter::log(std::string_view text) {
  impl_->pool_.call([&] { impl_->pool_.log_text(std::string(text)); });
}

reply arbiter::execute(std::string_view line) {
  return impl_->pool_.call([&] { return impl_->commands_.execute(line); });
}

}  // namespace ufork
