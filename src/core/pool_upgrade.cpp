// The pool's side of the in-place upgrade (core/upgrade.hpp): what it hands
// over before the exec, and how the new image adopts it.
#include <sys/epoll.h>


#include "core/exit_status.hpp"
#include "core/pool.hpp"
#include "sys/fd.hpp"
#include "sys/procfs.hpp"
#include "sys/unique_fd.hpp"
#include "sys/process.hpp"

namespace ufork {
// Logs why, when it did not happen; returns it for the one who asked.
std::string pool::upgrade(int reply_fd) {
  auto refused = [this](const std::string& why) {
    log("upgrade refused: {}", why);
    return "upgrade refused: " + why;
  };
  if (!run_mode_) return refused("an upgrade needs run(): under start() the process is the host program's");
  if (!opts_.upgrade) return refused("upgrades are off (options.upgrade)");
  if (is_stopping(phase_)) return refused("the pool is stopping");
  if (replacements_.busy(successors_starting())) return refused("a reload is in progress");
  const std::string& path = upgrade::program_path();
  if (path.empty() || !sys::executable(path)) return refused("no executable file at " + (path.empty() ? "?" : path));
  // A new image that would die before it could give the pool back (it
  // does not load, crashes before ufork's code, is a script) is found out
  // here, while this one still runs.
  std::string why = upgrade::check_new_image();
  if (why.empty()) {
    drop_mold("an upgrade: the new image forks its workers itself");  // no mold crosses an exec
    upgrade::state s = handover(reply_fd);
    log("upgrade: exec {} (pid {}); {} go on serving and are handed over", path, sys::own_pid(),
        workers_count(s.workers.size()));
    flush_everything();
    if (attachment_.before_exec) attachment_.before_exec();
    why = upgrade::exec_new_image(s);
    if (attachment_.exec_failed) attachment_.exec_failed();
  }
  why = fmt::format("upgrade failed: {}; this image goes on", why);
  log("{}", why);
  return why;
}

upgrade::state pool::handover(int reply_fd) const {
  upgrade::state s;
  s.from = sys::own_pid();
  s.board = board_.fd();
  notify_->handover(s);
  s.nofile = nofile_;
  s.reply = reply_fd;
  s.size = size_;
  for (const auto& slot : table_.slots()) s.generations.push_back(slot.generation);
  s.counters = history_.counters;
  s.requests_of_exited = history_.requests_gone();
  for (const auto& [pid, p] : table_.processes()) {
    const slot_state& slot = table_.slot(p->slot);
    upgrade::worker_record w;
    w.saved = *p;
    w.state = p->state;
    w.role = slot.current == pid    ? upgrade::worker_role::current
             : slot.incoming == pid ? upgrade::worker_role::incoming
                                    : upgrade::worker_role::outgoing;
    w.cell = board_.index(p->beat);
    auto carried = [](const sys::unique_fd& fd) { return upgrade::carried_fd{fd ? fd.get() : -1}; };
    w.pidfd = carried(p->pidfd);
    w.out = carried(p->out.fd);
    w.err = carried(p->err.fd);
    w.setup = carried(p->setup_errors);
    w.out_pending = p->out.lines.pending();
    w.err_pending = p->err.lines.pending();
    s.workers.push_back(std::move(w));
  }
  s.dead.assign(history_.dead().begin(), history_.dead().end());
  return s;
}

// The workers of the image before, as it had them; then (unless that image
// is this one, back after a failed upgrade) a reload replaces them all.
void pool::adopt(const upgrade::state& s) {
  started_ = clock::now() - sys::own_age();  // the same process: its uptime goes on
  size_ = s.size;
  table_.resize(static_cast<int>(s.generations.size()));
  for (std::size_t i = 0; i < s.generations.size(); ++i) table_.slot(static_cast<int>(i)).generation = s.generations[i];
  history_.adopt(s.counters, s.requests_of_exited, s.dead);
  auto take = [](sys::unique_fd& into, upgrade::carried_fd c) { into.reset(upgrade::take(c.fd)); };
  int reply = upgrade::take(s.reply);
  for (const auto& w : s.workers) {
    auto p = std::make_unique<process>(opts_.max_line);
    static_cast<worker_persisted&>(*p) = w.saved;
    // The state it had, through the life cycle's own steps: starting, then
    // ready if it had become so, then stopping.
    for (worker_state step : {worker_state::starting, worker_state::ready, worker_state::stopping})
      if (p->state != w.state && (step != worker_state::ready || p->ready_at))
        (void)table_.set_state(*p, step);
    p->beat = board_.adopt(w.cell);
    if (!p->beat) p->beat = board_.acquire();  // a cell the state named twice: the heartbeat is lost, not the worker
    take(p->pidfd, w.pidfd);
    take(p->out.fd, w.out);
    take(p->err.fd, w.err);
    take(p->setup_errors, w.setup);
    auto none = [](std::string_view) {};
    p->out.lines.feed(w.out_pending, none);  // no newline in it: kept for the rest of its line
    p->err.lines.feed(w.err_pending, none);
    process& ref = w.role == upgrade::worker_role::outgoing
                       ? table_.insert_outgoing(std::move(p))
                       : table_.insert(std::move(p), w.role == upgrade::worker_role::incoming);
    pid_t pid = ref.pid;
    ref.exit_token = loop_.add(ref.pidfd.get(), EPOLLIN, [this, pid](std::uint32_t) { on_exit(pid); });
    if (ref.setup_errors && !opts_.exec.argv.empty())
      ref.setup_token = loop_.add(ref.setup_errors.get(), EPOLLIN, [this, pid](std::uint32_t) { on_setup_pipe(pid); });
    output_.watch(ref.pid, ref.out, ref.err);
  }
  std::string unclaimed;
  for (const auto& name : upgrade::commit()) unclaimed += (unclaimed.empty() ? "" : ", ") + name;
  if (!unclaimed.empty()) log("upgrade: closed what this image did not take back: {}", unclaimed);
  bool ok = s.failure.empty();
  std::string text =
      ok ? fmt::format("upgraded: pid {} runs {}; {} adopted, replaced one at a time", sys::own_pid(),
                       upgrade::program_path(), workers_count(s.workers.size()))
         : fmt::format("upgrade failed: {}; pid {} runs the old image again with its {}", s.failure,
                       sys::own_pid(), workers_count(s.workers.size()));
  log("{}", text);
  if (attachment_.upgraded)
    attachment_.upgraded(reply, ok, text);
  else
    sys::close_fd(reply);
  if (ok && size_ > 0) {
    std::vector<int> ids;
    for (int i = 0; i < size_; ++i)
      if (table_.slot(i).current != 0) ids.push_back(i);
    if (auto why = reload(ids); !why.empty()) log("upgrade: the workers stay as they are: {}", why);
  }
}

}  // namespace ufork
