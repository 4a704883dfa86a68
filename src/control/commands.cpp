// The pool's commands: parse, call a verb or read the view, answer.
#include <signal.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <sstream>

#include "control/commands.hpp"
#include "core/signal_table.hpp"
#include "core/exit_status.hpp"
#include "core/pool.hpp"
#include "sys/procfs.hpp"
#include "sys/process.hpp"
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

// The length of the well-formed UTF-8 sequence that `v` starts with (no
// overlong form, no surrogate, nothing past U+10FFFF), or 0.
std::size_t utf8_at(std::string_view v) {
  auto b = [&](std::size_t i) { return static_cast<unsigned char>(v[i]); };
  unsigned char c = b(0);
  if (c < 0x80) return 1;
  std::size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n == 0 || v.size() < n) return 0;
  for (std::size_t i = 1; i < n; ++i)
    if ((b(i) & 0xc0) != 0x80) return 0;
  if ((c == 0xe0 && b(1) < 0xa0) || (c == 0xed && b(1) > 0x9f) || (c == 0xf0 && b(1) < 0x90) || (c == 0xf4 && b(1) > 0x8f))
    return 0;
  return n;
}

// Text from a worker (its STATUS=) made safe: each byte that is not part of
// well-formed UTF-8 becomes `bad(byte)`, each control character `control(byte)`.
template <class Bad, class Control>
std::string cleaned(std::string_view v, Bad bad, Control control) {
  std::string out;
  while (!v.empty()) {
    std::size_t n = utf8_at(v);
    auto c = static_cast<unsigned char>(v[0]);
    if (n == 0) {
      out += bad(c);
      n = 1;
    } else if (c < 0x20 || c == 0x7f) {
      out += control(c);
    } else {
      out.append(v.data(), n);
    }
    v.remove_prefix(n);
  }
  return out;
}

std::string hex_byte(unsigned char c) { return fmt::format("\\x{:02x}", c); }

// A Prometheus label value: valid UTF-8 (U+FFFD for what is not, as the
// JSON answers have it), backslash, double quote and newline escaped.
std::string label_value(std::string_view v) {
  std::string out;
  for (char c : cleaned(v, [](unsigned char) { return std::string("\xef\xbf\xbd"); },
                        [](unsigned char c) { return std::string(1, static_cast<char>(c)); })) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}

// For a terminal: no escape sequence of a worker's reaches it (\xHH instead).
std::string printable(std::string_view v) { return cleaned(v, hex_byte, hex_byte); }

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

reply with_data(std::string text, const json& data) { return ufork::ok(std::move(text), dump(data)); }

json to_json(const exit_info& e) {
  return {{"id", e.id},
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
          {"time", static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(e.when.time_since_epoch()).count()) / 1e3}};
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

const std::vector<commands::builtin>& commands::builtins() {
  static const std::vector<builtin> table = {
      {"help", "", "list the commands", &commands::help},
      {"status", "", "the pool in one line", &commands::status},
      {"workers", "", "a table of the workers", &commands::workers},
      {"dead", "", "the last 64 exits, with their reasons", &commands::dead},
      {"metrics", "", "Prometheus text exposition of the pool", &commands::metrics},
      {"size", "N", "set the number of workers (0 only with allow_empty)", &commands::size},
      {"kill", "ID [SIGNAL]", "send a signal (default TERM) to worker ID", &commands::kill},
      {"restart", "ID", "replace worker ID, the new one ready before the old one stops", &commands::restart},
      {"reload", "", "replace every worker that way, one at a time", &commands::reload},
      {"upgrade", "", "exec the program's file again (new code, same pid), then reload onto it", &commands::upgrade},
      {"reopen", "", "reopen the log files (as SIGUSR1; for logrotate)", &commands::reopen},
      {"stop", "", "stop the pool gracefully", &commands::stop},
      {"complete", "[WORDS]", "the words that may follow WORDS (a prompt's Tab)", &commands::complete},
  };
  return table;
}

std::vector<std::string> builtin_commands() {
  std::vector<std::string> names;
  for (const auto& b : commands::builtins()) names.emplace_back(b.name);
  return names;
}

std::vector<std::string> commands::names() const {
  std::vector<std::string> names;
  for (const auto& b : builtins()) names.emplace_back(b.name);
  for (const auto& [name, c] : registered_) names.push_back(name);
  return names;
}

void commands::add(std::string name, std::string help, command_handler handler) {
  if (name.empty() || split_words(name).size() != 1 || name[0] == '-')
    throw_invalid("a command name is one word: '" + name + "'");
  auto all = names();
  if (std::find(all.begin(), all.end(), name) != all.end()) throw_invalid("command '" + name + "' exists already");
  registered_.emplace(std::move(name), registered{std::move(help), std::move(handler)});
}

reply commands::execute(std::string_view line) {
  auto words = split_words(line);
  words.erase(std::remove(words.begin(), words.end(), "--json"), words.end());
  if (words.empty()) return fail("empty command; try help");
  std::string name = words.front();
  words.erase(words.begin());
  for (const auto& b : builtins())
    if (b.name == name) return (this->*b.run)(words);
  if (auto it = registered_.find(name); it != registered_.end()) {
    try {
      return it->second.handler(words);
    } catch (const std::exception& e) {
      return fail(name + ": " + e.what());
    }
  }
  return fail("unknown command '" + name + "'; try help");
}

std::vector<std::string> commands::completions(const std::string& so_far) const {
  auto words = split_words(so_far);
  if (words.empty()) return names();
  if (words.size() == 1 && (words[0] == "kill" || words[0] == "restart")) {
    std::vector<std::string> ids;
    ids.reserve(pool_.size());
    for (int i = 0; i < pool_.size(); ++i) ids.push_back(std::to_string(i));
    return ids;
  }
  return {};
}

reply commands::complete(const args& words) {
  std::string so_far;
  for (const auto& w : words) so_far += w + " ";
  auto next = completions(so_far);
  std::string text;
  for (const auto& w : next) text += (text.empty() ? "" : "\n") + w;
  return with_data(text, next);
}

reply commands::help(const args&) {
  std::string text;
  json data = json::array();
  auto add = [&](const std::string& name, const std::string& params, const std::string& help) {
    std::string usage = params.empty() ? name : name + " " + params;
    text += fmt::format("  {:<18} {}\n", usage, help);
    data.push_back({{"command", name}, {"args", params}, {"help", help}});
  };
  for (const auto& b : builtins()) add(b.name, b.params, b.help);
  for (const auto& [name, c] : registered_) add(name, "", c.help);
  text += "  (add --json to any command for JSON)\nsignals to the arbiter (under run()):\n";
  for (const auto& e : signal_table) text += fmt::format("  SIG{:<16} {}\n", e.name, e.does);
  text.pop_back();
  return with_data(text, data);
}

namespace {

// A process's memory as JSON: {"rss", "pss", "uss"} in bytes, or nulls if
// it cannot be read (sys::memory_of).
json memory_json(const std::optional<sys::memory_use>& m) {
  if (!m) return {{"rss", nullptr}, {"pss", nullptr}, {"uss", nullptr}};
  return {{"rss", m->rss}, {"pss", m->pss}, {"uss", m->uss}};
}

std::string mib(std::uint64_t bytes) { return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / 1048576.0); }

json scale_json(const pool_status::scaling& sc) {
  if (sc.max_workers == 0) return nullptr;
  json queues = json::object();
  for (const auto& [name, n] : sc.queues) queues[name] = n < 0 ? json(nullptr) : json(n);
  return {{"min", sc.min_workers}, {"max", sc.max_workers}, {"target", sc.target}, {"why", sc.why},
          {"ups", sc.ups},         {"downs", sc.downs},     {"looking", sc.looking}, {"queues", queues}};
}

// "; autoscaling 1..8, target 5 (last move: accept queue 41 on 0.0.0.0:8000), accept queue 0"
std::string scale_text(const pool_status::scaling& sc) {
  if (sc.max_workers == 0) return {};
  int queued = 0;
  for (const auto& [name, n] : sc.queues) queued += std::max(n, 0);
  return fmt::format("; autoscaling {}..{}, target {}{}, accept queue {}", sc.min_workers, sc.max_workers, sc.target,
                     sc.why.empty() ? std::string() : " (last move: " + sc.why + ")", queued);
}

}  // namespace

std::optional<sys::memory_use> commands::memory_of(pid_t pid) {
  auto now = std::chrono::steady_clock::now();
  if (memory_.size() > 4096) memory_.clear();  // the readings of workers long gone
  reading& r = memory_[pid];
  if (r.at == std::chrono::steady_clock::time_point{} || now - r.at > std::chrono::milliseconds(100))
    r = {now, sys::memory_of(pid)};
  return r.use;
}

reply commands::status(const args&) {
  auto s = pool_.snapshot();
  std::map<std::string, int> by_state;
  for (const auto& w : s.workers) ++by_state[to_string(w.state)];
  auto up = pool_.uptime();
  pid_t pid = sys::own_pid();
  json data = {{"pid", pid},
               {"size", s.size},
               {"stopping", s.stopping},
               {"draining", s.draining},
               {"ready", s.ready},
               {"min_ready", s.min_ready},
               {"uptime", secs(up)},
               {"workers", by_state},
               {"arbiter_memory", memory_json(memory_of(pid))},
               {"mold", s.mold ? json{{"pid", s.mold}, {"generation", s.refork_generation}} : json(nullptr)},
               {"scale", scale_json(s.scale)},
               {"counters",
                {{"spawned", s.counters.spawned},
                 {"exited", s.counters.exited},
                 {"hung", s.counters.hung},
                 {"backoffs", s.counters.backoffs},
                 {"spawn_errors", s.counters.spawn_errors},
                 {"wakeups", s.counters.wakeups},
                 {"stalls", s.counters.stalls},
                 {"notify_ignored", s.counters.notify_ignored},
                 {"orphans_reaped", s.counters.orphans_reaped},
                 {"log_lost", s.counters.log_lost}}}};
  std::string text = fmt::format(
      "arbiter pid {}, up {:.1f} s, size {}{}: {} ready, {} starting, {} stopping; spawned {}, exited {}, hung {}, "
      "backoffs {}{}{}{}",
      pid, secs(up), s.size, s.stopping ? " (stopping)" : s.draining ? " (draining)" : "", by_state["ready"], by_state["starting"],
      by_state["stopping"], s.counters.spawned, s.counters.exited, s.counters.hung, s.counters.backoffs,
      s.counters.log_lost ? fmt::format("; {} log lines lost", s.counters.log_lost) : std::string(),
      s.mold ? fmt::format("; forked by the mold, pid {} (generation {})", s.mold, s.refork_generation) : std::string(),
      scale_text(s.scale));
  return with_data(text, data);
}

// Memory per worker: RSS (every page it maps, shared ones too), PSS (its
// share of each: the pool's sum is what it really holds) and USS (what it
// alone holds), read now (sys::memory_of); the pool's PSS and USS last,
// the arbiter's included.
reply commands::workers(const args&) {
  std::string text = fmt::format("{:>4} {:>8} {:>5} {:<9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}", "id", "pid", "gen",
                                 "state", "uptime", "heartbeat", "rss", "pss", "uss", "requests");
  json data = json::array();
  auto own = memory_of(sys::own_pid());
  std::uint64_t pss = own ? own->pss : 0, uss = own ? own->uss : 0;
  auto snap = pool_.snapshot();
  const auto& workers = snap.workers;
  std::string mold;
  if (snap.mold)
    if (auto m = memory_of(snap.mold)) {  // its pages are the workers' too: its PSS is the pool's
      pss += m->pss;
      uss += m->uss;
      mold = fmt::format(", the mold (pid {}: PSS {}, USS {})", snap.mold, mib(m->pss), mib(m->uss));
    }
  for (const worker_info& w : workers) {
    auto m = memory_of(w.pid);
    if (m) {
      pss += m->pss;
      uss += m->uss;
    }
    std::string beat = w.heartbeat_age ? fmt::format("{:.3f} s", secs(*w.heartbeat_age)) : "-";
    auto cell = [&](std::uint64_t sys::memory_use::*field) { return m ? mib((*m).*field) : "-"; };
    text += fmt::format("\n{:>4} {:>8} {:>5} {:<9} {:>8.1f} s {:>10} {:>10} {:>10} {:>10} {:>9}{}", w.id, w.pid,
                        w.generation, to_string(w.state), secs(w.uptime), beat, cell(&sys::memory_use::rss),
                        cell(&sys::memory_use::pss), cell(&sys::memory_use::uss), w.requests,
                        w.status.empty() ? "" : "  " + printable(w.status));
    json j = {{"id", w.id},
              {"pid", w.pid},
              {"generation", w.generation},
              {"state", to_string(w.state)},
              {"uptime", secs(w.uptime)},
              {"heartbeat_age", w.heartbeat_age ? json(secs(*w.heartbeat_age)) : json(nullptr)},
              {"requests", w.requests},
              {"status", w.status}};
    j.update(memory_json(m));
    data.push_back(std::move(j));
  }
  text += fmt::format("\npool: PSS {}, USS {} (the arbiter{} and {} workers)", mib(pss), mib(uss), mold, workers.size());
  return with_data(text, data);
}

reply commands::dead(const args&) {
  std::string text;
  json data = json::array();
  for (const auto& e : pool_.snapshot().dead) {
    if (!text.empty()) text += '\n';
    text += e.describe();
    data.push_back(to_json(e));
  }
  if (text.empty()) text = "no worker has exited";
  return with_data(text, data);
}

namespace {

// Prometheus text, a family at a time.
struct exposition {
  const std::vector<worker_info>& workers;
  std::string t;
  void family(const char* name, const char* type, const char* help) {
    t += fmt::format("# HELP ufork_{} {}\n# TYPE ufork_{} {}\n", name, help, name, type);
  }
  // One sample per worker: ufork_NAME{id="3",pid="4312"} VALUE.
  template <class F>
  void per_worker(const char* name, const char* type, const char* help, F value) {
    family(name, type, help);
    for (const worker_info& w : workers)
      if (auto v = value(w)) t += fmt::format("ufork_{}{{id=\"{}\",pid=\"{}\"}} {}\n", name, w.id, w.pid, *v);
  }
};

// Each worker's RSS, PSS and USS, and the pool's PSS (the arbiter's share
// included), read now (smaps_rollup: the kernel walks each page table).
template <class Read>
void memory_families(exposition& out, pid_t mold, Read&& memory_of) {
  std::map<pid_t, std::optional<sys::memory_use>> memory;
  for (const worker_info& w : out.workers) memory[w.pid] = memory_of(w.pid);
  auto memory_field = [&](std::uint64_t sys::memory_use::*field) {
    return [&memory, field](const worker_info& w) {
      const auto& m = memory[w.pid];
      return m ? std::optional((*m).*field) : std::nullopt;
    };
  };
  out.per_worker("worker_rss_bytes", "gauge", "Resident memory of the worker process, the pages it shares included.",
                 memory_field(&sys::memory_use::rss));
  out.per_worker("worker_pss_bytes", "gauge", "Proportional memory of the worker process: each page divided by its sharers.",
                 memory_field(&sys::memory_use::pss));
  out.per_worker("worker_uss_bytes", "gauge", "Unique memory of the worker process: what it alone holds (private pages).",
                 memory_field(&sys::memory_use::uss));
  out.family("pool_pss_bytes", "gauge",
             "Proportional memory of the arbiter, its workers and the mold (reforking): what the pool really holds.");
  std::uint64_t pool_pss = 0;
  if (auto own = memory_of(sys::own_pid())) pool_pss += own->pss;
  if (auto m = mold ? memory_of(mold) : std::nullopt) pool_pss += m->pss;
  for (const auto& [pid, m] : memory)
    if (m) pool_pss += m->pss;
  out.t += fmt::format("ufork_pool_pss_bytes {}\n", pool_pss);
}

}  // namespace

reply commands::metrics(const args&) {
  auto s = pool_.snapshot();
  exposition out{s.workers, {}};
  std::map<std::string, int> by_state{{"starting", 0}, {"ready", 0}, {"stopping", 0}};
  for (const worker_info& w : s.workers) ++by_state[to_string(w.state)];
  out.family("workers", "gauge", "Worker processes by state.");
  for (const auto& [state, n] : by_state) out.t += fmt::format("ufork_workers{{state=\"{}\"}} {}\n", state, n);
  out.family("size", "gauge", "The desired number of workers.");
  out.t += fmt::format("ufork_size {}\n", s.size);
  const std::pair<const char*, std::uint64_t> totals[] = {{"spawned", s.counters.spawned},
                                                          {"exited", s.counters.exited},
                                                          {"hung", s.counters.hung},
                                                          {"backoffs", s.counters.backoffs},
                                                          {"spawn_errors", s.counters.spawn_errors},
                                                          {"requests", s.counters.requests}};
  for (const auto& [name, value] : totals) {
    out.family(fmt::format("{}_total", name).c_str(), "counter", "Since the arbiter started.");
    out.t += fmt::format("ufork_{}_total {}\n", name, value);
  }
  std::map<std::string, std::uint64_t> exits;
  for (const auto& e : s.dead) ++exits[to_string(e.reason)];
  out.family("recent_exits", "gauge", "Exits among the last 64, by reason.");
  for (const auto& [reason, n] : exits) out.t += fmt::format("ufork_recent_exits{{reason=\"{}\"}} {}\n", reason, n);
  out.per_worker("worker_uptime_seconds", "gauge", "Per worker process.",
                 [](const worker_info& w) { return std::optional(fmt::format("{:.3f}", secs(w.uptime))); });
  out.per_worker("worker_heartbeat_age_seconds", "gauge", "Since the worker's last heartbeat.",
                 [](const worker_info& w) {
                   return w.heartbeat_age ? std::optional(fmt::format("{:.3f}", secs(*w.heartbeat_age))) : std::nullopt;
                 });
  memory_families(out, s.mold, [this](pid_t pid) { return memory_of(pid); });
  out.family("refork_generation", "gauge", "Reforking: the molds promoted so far (0: workers forked by the arbiter).");
  out.t += fmt::format("ufork_refork_generation {}\n", s.refork_generation);
  out.family("mold", "gauge", "Reforking: 1 while a mold forks the workers, 0 while the arbiter does.");
  out.t += fmt::format("ufork_mold {}\n", s.mold ? 1 : 0);
  if (s.scale.max_workers > 0) {
    out.family("pool_target_workers", "gauge", "Autoscaling: the size the pool wants now.");
    out.t += fmt::format("ufork_pool_target_workers {}\n", s.scale.target);
    out.family("scale_events_total", "counter", "Autoscaling: the size moved up or down.");
    out.t += fmt::format("ufork_scale_events_total{{direction=\"up\"}} {}\n", s.scale.ups);
    out.t += fmt::format("ufork_scale_events_total{{direction=\"down\"}} {}\n", s.scale.downs);
    out.family("listen_queue_depth", "gauge", "Autoscaling: connections waiting in a listening socket's accept queue.");
    for (const auto& [name, n] : s.scale.queues)
      if (n >= 0) out.t += fmt::format("ufork_listen_queue_depth{{socket=\"{}\"}} {}\n", label_value(name), n);
  }
  out.per_worker("worker_requests_total", "counter", "Counted by the worker process.",
                 [](const worker_info& w) { return std::optional(w.requests); });
  out.family("worker_status_info", "gauge", "An exec'd worker's last STATUS= (sd_notify), as a label.");
  for (const worker_info& w : s.workers)
    if (!w.status.empty())
      out.t += fmt::format("ufork_worker_status_info{{id=\"{}\",pid=\"{}\",status=\"{}\"}} 1\n", w.id, w.pid,
                       label_value(w.status));
  out.per_worker("worker_cpu_seconds_total", "counter", "User and system CPU time of the worker process.",
                 [](const worker_info& w) { return std::optional(fmt::format("{:.2f}", sys::cpu_seconds(w.pid))); });
  out.family("worker_state", "gauge", "1 for the worker's state.");
  for (const worker_info& w : s.workers)
    out.t += fmt::format("ufork_worker_state{{id=\"{}\",pid=\"{}\",state=\"{}\"}} 1\n", w.id, w.pid, to_string(w.state));
  out.family("slot_generation", "gauge", "Forks of the slot so far.");
  auto generations = pool_.generations();
  std::uint64_t restarts = 0;
  for (std::size_t i = 0; i < generations.size(); ++i) {
    out.t += fmt::format("ufork_slot_generation{{id=\"{}\"}} {}\n", i, generations[i]);
    restarts += generations[i] > 0 ? generations[i] - 1 : 0;
  }
  out.family("restarts_total", "counter", "Forks that replaced a worker of the same slot.");
  out.t += fmt::format("ufork_restarts_total {}\n", restarts);
  const pool_tallies& tally = pool_.tallies();
  auto labelled = [&](const char* name, const char* label, const char* help, const auto& counts) {
    out.family(name, "counter", help);
    for (const auto& [value, n] : counts) out.t += fmt::format("ufork_{}{{{}=\"{}\"}} {}\n", name, label, value, n);
  };
  labelled("exits_total", "reason", "Worker exits since the arbiter started, by reason.", tally.exits_by_reason);
  labelled("exit_codes_total", "code", "Workers that exited by themselves, by exit code.", tally.exit_codes);
  labelled("exit_signals_total", "signal", "Workers ended by a signal, by signal.", tally.exit_signals);
  labelled("hung_by_clock_total", "clock", "Workers killed as hung, by the clock that fired (heartbeat: timeout; startup: "
           "startup_timeout).", tally.hung_by_clock);
  auto histogram_of = [&](const char* name, const char* help, const histogram& h) {
    out.family(name, "histogram", help);
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < h.counts.size(); ++i) {
      cumulative += h.counts[i];
      std::string le = i < h.bounds.size() ? fmt::format("{}", h.bounds[i]) : "+Inf";
      out.t += fmt::format("ufork_{}_bucket{{le=\"{}\"}} {}\n", name, le, cumulative);
    }
    out.t += fmt::format("ufork_{}_sum {}\nufork_{}_count {}\n", name, h.sum, name, h.count);
  };
  histogram_of("exit_uptime_seconds", "How long workers lived, at their exit.", tally.uptime_at_exit);
  histogram_of("respawn_latency_seconds", "From a worker's death (or hang) to its slot's next fork.",
               tally.respawn_latency);
  if (!out.t.empty()) out.t.pop_back();
  return with_data(out.t, json(out.t));
}

reply commands::size(const args& a) {
  auto n = a.size() == 1 ? parse_int(a[0]) : std::nullopt;
  int least = pool_.opts().allow_empty ? 0 : 1;
  if (!n || *n < 0 || *n > 4096) return fail(fmt::format("usage: size N ({}..4096)", least));
  if (auto why = pool_.resize(static_cast<int>(*n)); !why.empty()) return fail(why);
  return with_data(fmt::format("size {}", *n), json{{"size", *n}});
}

namespace {

// The slot of a command's first argument, if it has a worker.
std::optional<int> worker_id(const pool& p, const std::vector<std::string>& a, std::string& error) {
  auto id = a.empty() ? std::nullopt : parse_int(a[0]);
  if (!id) {
    error = "a worker id is a number";
    return std::nullopt;
  }
  if (*id < 0 || *id >= p.size() || p.worker_pid(static_cast<int>(*id)) == 0) {
    error = fmt::format("no worker {}", a[0]);
    return std::nullopt;
  }
  return static_cast<int>(*id);
}

}  // namespace

reply commands::kill(const args& a) {
  if (a.empty() || a.size() > 2) return fail("usage: kill ID [SIGNAL]");
  std::string error;
  auto id = worker_id(pool_, a, error);
  if (!id) return fail(error);
  auto sig = a.size() == 2 ? parse_signal(a[1]) : std::optional<int>(SIGTERM);
  if (!sig) return fail(fmt::format("unknown signal '{}'", a[1]));
  pid_t pid = pool_.worker_pid(*id);
  if (auto ec = pool_.signal(*id, *sig)) return fail("kill: " + ec.message());
  return with_data(fmt::format("sent {} to worker {} pid {}", signal_name(*sig), *id, pid),
                   json{{"id", *id}, {"pid", pid}, {"signal", signal_name(*sig)}});
}

reply commands::restart(const args& a) {
  if (a.size() != 1) return fail("usage: restart ID");
  std::string error;
  auto id = worker_id(pool_, a, error);
  if (!id) return fail(error);
  if (auto why = pool_.reload({*id}, "restart"); !why.empty()) return fail(why);
  return with_data(fmt::format("restarting worker {}", *id), json{{"restarting", {*id}}});
}

reply commands::reload(const args& a) {
  if (!a.empty()) return fail("usage: reload");
  std::vector<int> all;
  all.reserve(pool_.size());
  for (int i = 0; i < pool_.size(); ++i) all.push_back(i);
  if (auto why = pool_.reload(all); !why.empty()) return fail(why);
  return with_data(fmt::format("reloading {} workers, one at a time", all.size()), json{{"reloading", all}});
}

// Returns only when the upgrade did not happen; else the image that adopts
// the pool answers the client that asked.
reply commands::upgrade(const args& a) {
  if (!a.empty()) return fail("usage: upgrade");
  return fail(pool_.upgrade(requester_));
}

reply commands::reopen(const args&) {
  pool_.reopen_logs();
  return with_data("log files reopened", json{{"reopened", true}});
}

reply commands::stop(const args&) {
  pool_.stop(false);
  return with_data("stopping", json{{"stopping", true}});
}

}  // namespace ufork
