// The verbs of the pool, one table for the ufork>> prompt, the control
// socket and arbiter::execute(). Each answers with text for people and JSON
// for programs. Transport is not this file's business.
#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>

#include "arbiter_impl.hpp"
#include "control_socket.hpp"
#include "exit_status.hpp"
#include "sys/sys.hpp"
#include "ufork/error.hpp"

namespace ufork {
namespace {

using json = nlohmann::json;

double secs(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

std::optional<long> parse_int(const std::string& s) {
  long v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// "TERM", "SIGTERM", "term" or "15".
std::optional<int> parse_signal(std::string s) {
  if (auto n = parse_int(s)) return *n > 0 && *n < NSIG ? std::optional<int>(static_cast<int>(*n)) : std::nullopt;
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::toupper(c); });
  if (s.rfind("SIG", 0) == 0) s.erase(0, 3);
  for (int sig = 1; sig < NSIG; ++sig)
    if (const char* name = ::sigabbrev_np(sig); name && s == name) return sig;
  return std::nullopt;
}

// Resident set size from /proc/PID/statm, in bytes; 0 if unreadable.
std::uint64_t rss_bytes(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
  std::uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

reply with_data(std::string text, const json& data) { return ufork::ok(std::move(text), dump(data)); }

json to_json(const exit_info& e) {
  return {{"worker", e.worker},
          {"pid", e.pid},
          {"generation", e.generation},
          {"code", e.code >= 0 ? json(e.code) : json(nullptr)},
          {"signal", e.signal ? json(signal_name(e.signal)) : json(nullptr)},
          {"core_dumped", e.core_dumped},
          {"oom_killed", e.oom_killed},
          {"oom_possible", e.oom_possible},
          {"reason", to_string(e.reason)},
          {"detail", e.detail},
          {"status", e.status_text()},
          {"uptime", secs(e.uptime)},
          {"time", std::chrono::duration_cast<std::chrono::milliseconds>(e.when.time_since_epoch()).count() / 1e3}};
}

}  // namespace

std::string answer_line(const reply& r) {
  json j{{"ok", r.ok}};
  if (!r.ok) {
    j["error"] = r.text;
  } else {
    j["data"] = !r.json.empty() && json::accept(r.json) ? json::parse(r.json) : json(r.text);
    j["text"] = r.text;
  }
  return dump(j);
}

std::vector<std::string> split_words(std::string_view line) {
  std::vector<std::string> words;
  std::istringstream in{std::string(line)};
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

const std::vector<arbiter::impl::builtin>& arbiter::impl::builtins() {
  static const std::vector<builtin> table = {
      {"help", "", "list the commands", &impl::cmd_help},
      {"status", "", "the pool in one line", &impl::cmd_status},
      {"workers", "", "a table of the workers", &impl::cmd_workers},
      {"dead", "", "the last 64 exits, with their reasons", &impl::cmd_dead},
      {"metrics", "", "Prometheus text exposition of the pool", &impl::cmd_metrics},
      {"size", "N", "set the number of workers", &impl::cmd_size},
      {"kill", "ID [SIGNAL]", "send a signal (default TERM) to worker ID", &impl::cmd_kill},
      {"restart", "ID", "replace worker ID, the new one ready before the old one stops", &impl::cmd_restart},
      {"reload", "", "replace every worker that way, one at a time", &impl::cmd_reload},
      {"reopen", "", "reopen the log files (as SIGUSR1; for logrotate)", &impl::cmd_reopen},
      {"stop", "", "stop the pool gracefully", &impl::cmd_stop},
  };
  return table;
}

std::vector<std::string> arbiter::impl::command_names() const {
  std::vector<std::string> names;
  for (const auto& b : builtins()) names.push_back(b.name);
  for (const auto& [name, c] : commands_) names.push_back(name);
  return names;
}

void arbiter::impl::add_command(std::string name, std::string help, command_handler handler) {
  if (name.empty() || split_words(name).size() != 1 || name[0] == '-')
    throw_invalid("a command name is one word: '" + name + "'");
  auto names = command_names();
  if (std::find(names.begin(), names.end(), name) != names.end())
    throw_invalid("command '" + name + "' exists already");
  commands_.emplace(std::move(name), registered{std::move(help), std::move(handler)});
}

reply arbiter::impl::execute(std::string_view line) {
  auto words = split_words(line);
  words.erase(std::remove(words.begin(), words.end(), "--json"), words.end());
  if (words.empty()) return fail("empty command; try help");
  std::string name = words.front();
  words.erase(words.begin());
  for (const auto& b : builtins())
    if (b.name == name) return (this->*b.run)(words);
  if (auto it = commands_.find(name); it != commands_.end()) {
    try {
      return it->second.handler(words);
    } catch (const std::exception& e) {
      return fail(name + ": " + e.what());
    }
  }
  return fail("unknown command '" + name + "'; try help");
}

reply arbiter::impl::cmd_help(const args&) {
  std::string text;
  json data = json::array();
  auto add = [&](const std::string& name, const std::string& params, const std::string& help) {
    std::string usage = params.empty() ? name : name + " " + params;
    text += fmt::format("  {:<18} {}\n", usage, help);
    data.push_back({{"command", name}, {"args", params}, {"help", help}});
  };
  for (const auto& b : builtins()) add(b.name, b.params, b.help);
  for (const auto& [name, c] : commands_) add(name, "", c.help);
  text += "  (add --json to any command for JSON)";
  return with_data(text, data);
}

reply arbiter::impl::cmd_status(const args&) {
  auto s = snapshot();
  std::map<std::string, int> by_state;
  for (const auto& w : s.workers) ++by_state[to_string(w.state)];
  auto up = clock::now() - started_;
  json data = {{"pid", ::getpid()},
               {"size", s.size},
               {"stopping", s.stopping},
               {"uptime", secs(up)},
               {"workers", by_state},
               {"counters",
                {{"spawned", s.counters.spawned},
                 {"exited", s.counters.exited},
                 {"hung", s.counters.hung},
                 {"backoffs", s.counters.backoffs},
                 {"spawn_errors", s.counters.spawn_errors},
                 {"wakeups", s.counters.wakeups},
                 {"stalls", s.counters.stalls},
                 {"log_lost", s.counters.log_lost}}}};
  std::string text = fmt::format(
      "arbiter pid {}, up {:.1f} s, size {}{}: {} ready, {} starting, {} stopping; spawned {}, exited {}, hung {}, "
      "backoffs {}{}",
      ::getpid(), secs(up), s.size, s.stopping ? " (stopping)" : "", by_state["ready"], by_state["starting"],
      by_state["stopping"], s.counters.spawned, s.counters.exited, s.counters.hung, s.counters.backoffs,
      s.counters.log_lost ? fmt::format("; {} log lines lost", s.counters.log_lost) : std::string());
  return with_data(text, data);
}

reply arbiter::impl::cmd_workers(const args&) {
  auto now = clock::now();
  std::vector<const process*> list;
  for (const auto& [pid, p] : table_.processes()) list.push_back(p.get());
  std::sort(list.begin(), list.end(),
            [](auto* a, auto* b) { return std::tie(a->slot, a->generation) < std::tie(b->slot, b->generation); });
  std::string text = fmt::format("{:>4} {:>8} {:>5} {:<9} {:>10} {:>10} {:>10} {:>9}", "id", "pid", "gen", "state",
                                 "uptime", "heartbeat", "rss", "requests");
  json data = json::array();
  for (const process* p : list) {
    auto w = info(*p, now);
    auto rss = rss_bytes(p->pid);
    auto requests = p->beat->requests.load(std::memory_order_relaxed);
    std::string beat = w.heartbeat_age ? fmt::format("{:.3f} s", secs(*w.heartbeat_age)) : "-";
    text += fmt::format("\n{:>4} {:>8} {:>5} {:<9} {:>8.1f} s {:>10} {:>6.1f} MiB {:>9}", w.id, w.pid, w.generation,
                        to_string(w.state), secs(w.uptime), beat, static_cast<double>(rss) / 1048576.0, requests);
    data.push_back({{"id", w.id},
                    {"pid", w.pid},
                    {"generation", w.generation},
                    {"state", to_string(w.state)},
                    {"uptime", secs(w.uptime)},
                    {"heartbeat_age", w.heartbeat_age ? json(secs(*w.heartbeat_age)) : json(nullptr)},
                    {"rss", rss},
                    {"requests", requests}});
  }
  return with_data(text, data);
}

reply arbiter::impl::cmd_dead(const args&) {
  std::string text;
  json data = json::array();
  for (const auto& e : dead_) {
    if (!text.empty()) text += '\n';
    text += e.describe();
    data.push_back(to_json(e));
  }
  if (text.empty()) text = "no worker has exited";
  return with_data(text, data);
}

reply arbiter::impl::cmd_metrics(const args&) {
  auto now = clock::now();
  std::string t;
  auto family = [&](const char* name, const char* type, const char* help) {
    t += fmt::format("# HELP ufork_{} {}\n# TYPE ufork_{} {}\n", name, help, name, type);
  };
  std::map<std::string, int> by_state{{"starting", 0}, {"ready", 0}, {"stopping", 0}};
  std::uint64_t requests = requests_of_exited_;
  for (const auto& [pid, p] : table_.processes()) {
    ++by_state[to_string(p->state)];
    requests += p->beat->requests.load(std::memory_order_relaxed);
  }
  family("workers", "gauge", "Worker processes by state.");
  for (const auto& [state, n] : by_state) t += fmt::format("ufork_workers{{state=\"{}\"}} {}\n", state, n);
  family("size", "gauge", "The desired number of workers.");
  t += fmt::format("ufork_size {}\n", size_);
  const std::pair<const char*, std::uint64_t> totals[] = {{"spawned", counters_.spawned},
                                                          {"exited", counters_.exited},
                                                          {"hung", counters_.hung},
                                                          {"backoffs", counters_.backoffs},
                                                          {"spawn_errors", counters_.spawn_errors},
                                                          {"requests", requests}};
  for (const auto& [name, value] : totals) {
    family(fmt::format("{}_total", name).c_str(), "counter", "Since the arbiter started.");
    t += fmt::format("ufork_{}_total {}\n", name, value);
  }
  std::map<std::string, std::uint64_t> exits;
  for (const auto& e : dead_) ++exits[to_string(e.reason)];
  family("recent_exits", "gauge", "Exits among the last 64, by reason.");
  for (const auto& [reason, n] : exits) t += fmt::format("ufork_recent_exits{{reason=\"{}\"}} {}\n", reason, n);
  family("worker_uptime_seconds", "gauge", "Per worker process.");
  for (const auto& [pid, p] : table_.processes())
    t += fmt::format("ufork_worker_uptime_seconds{{slot=\"{}\",pid=\"{}\"}} {:.3f}\n", p->slot, pid,
                     secs(now - p->started));
  family("worker_heartbeat_age_seconds", "gauge", "Since the worker's last heartbeat.");
  for (const auto& [pid, p] : table_.processes())
    if (auto age = info(*p, now).heartbeat_age)
      t += fmt::format("ufork_worker_heartbeat_age_seconds{{slot=\"{}\",pid=\"{}\"}} {:.3f}\n", p->slot, pid,
                       secs(*age));
  family("worker_rss_bytes", "gauge", "Resident memory of the worker process.");
  for (const auto& [pid, p] : table_.processes())
    t += fmt::format("ufork_worker_rss_bytes{{slot=\"{}\",pid=\"{}\"}} {}\n", p->slot, pid, rss_bytes(pid));
  family("worker_requests_total", "counter", "Counted by the worker process.");
  for (const auto& [pid, p] : table_.processes())
    t += fmt::format("ufork_worker_requests_total{{slot=\"{}\",pid=\"{}\"}} {}\n", p->slot, pid,
                     p->beat->requests.load(std::memory_order_relaxed));
  family("slot_generation", "gauge", "Forks of the slot so far.");
  for (int i = 0; i < size_; ++i)
    t += fmt::format("ufork_slot_generation{{slot=\"{}\"}} {}\n", i, table_.slot(i).generation);
  if (!t.empty()) t.pop_back();
  return with_data(t, json(t));
}

reply arbiter::impl::cmd_size(const args& a) {
  auto n = a.size() == 1 ? parse_int(a[0]) : std::nullopt;
  if (!n || *n < 0 || *n > 4096) return fail("usage: size N (0..4096)");
  if (stopping_) return fail("the pool is stopping");
  if (*n == 0 && !opts_.allow_empty) return fail(empty_pool_refused);
  do_resize(static_cast<int>(*n));
  return with_data(fmt::format("size {}", *n), json{{"size", *n}});
}

process* arbiter::impl::slot_process(const args& a, std::string& error) {
  auto id = a.empty() ? std::nullopt : parse_int(a[0]);
  if (!id) {
    error = "a worker id is a number";
    return nullptr;
  }
  process* p = *id < size_ ? table_.current(static_cast<int>(*id)) : nullptr;
  if (!p) {
    error = fmt::format("no worker {}", a[0]);
    return nullptr;
  }
  return p;
}

reply arbiter::impl::cmd_kill(const args& a) {
  if (a.empty() || a.size() > 2) return fail("usage: kill ID [SIGNAL]");
  std::string error;
  process* p = slot_process(a, error);
  if (!p) return fail(error);
  auto sig = a.size() == 2 ? parse_signal(a[1]) : std::optional<int>(SIGTERM);
  if (!sig) return fail(fmt::format("unknown signal '{}'", a[1]));
  if (auto ec = sys::pidfd_send_signal(p->pidfd.get(), *sig)) return fail("kill: " + ec.message());
  // Only a signal that ends a process by default makes the exit ours.
  for (int fatal : {SIGTERM, SIGKILL, SIGINT, SIGQUIT, SIGABRT, SIGHUP})
    if (*sig == fatal && !p->reason) p->reason = exit_reason::killed;
  log("kill: {} to worker {} pid {}", signal_name(*sig), p->slot, p->pid);
  return with_data(fmt::format("sent {} to worker {} pid {}", signal_name(*sig), p->slot, p->pid),
            json{{"worker", p->slot}, {"pid", p->pid}, {"signal", signal_name(*sig)}});
}

reply arbiter::impl::cmd_restart(const args& a) {
  if (a.size() != 1) return fail("usage: restart ID");
  std::string error;
  process* p = slot_process(a, error);
  if (!p) return fail(error);
  if (auto why = start_reload({p->slot}); !why.empty()) return fail(why);
  return with_data(fmt::format("restarting worker {}", p->slot), json{{"restarting", {p->slot}}});
}

reply arbiter::impl::cmd_reload(const args& a) {
  if (!a.empty()) return fail("usage: reload");
  std::vector<int> all;
  for (int i = 0; i < size_; ++i) all.push_back(i);
  if (auto why = start_reload(all); !why.empty()) return fail(why);
  return with_data(fmt::format("reloading {} workers, one at a time", all.size()), json{{"reloading", all}});
}

reply arbiter::impl::cmd_reopen(const args&) {
  opts_.sink->reopen();
  return with_data("log files reopened", json{{"reopened", true}});
}

reply arbiter::impl::cmd_stop(const args&) {
  begin_stop(false);
  return with_data("stopping", json{{"stopping", true}});
}

}  // namespace ufork
