// The pool's options by name (option_table.hpp), and validate().
#include "core/option_table.hpp"

#include <sys/resource.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <type_traits>

#include "sys/procfs.hpp"
#include "sys/process.hpp"
#include "ufork/error.hpp"

namespace ufork {
namespace {

[[noreturn]] void expected(const std::string& what, std::string_view v) {
  throw std::invalid_argument(fmt::format("expected {}, not '{}'", what, v));
}

std::string range_text(const option_spec& e) {
  auto n = [&e](double x) {
    return e.kind == option_kind::seconds ? fmt::format("{}", x) : fmt::format("{}", static_cast<long long>(x));
  };
  std::string none = e.zero_is_none ? " (or 0: none)" : "";
  switch (e.kind) {
    case option_kind::count: return fmt::format("a whole number from {} to {}{}", n(e.lo), n(e.hi), none);
    case option_kind::seconds: return fmt::format("seconds from {} to {}{}", n(e.lo), n(e.hi), none);
    case option_kind::mib: return fmt::format("a whole number of MiB from {} to {}{}", n(e.lo), n(e.hi), none);
    case option_kind::texts:  // a list of counts (refork-after), or free text (hi 0)
      return e.hi > 0 ? fmt::format("whole numbers from {} to {}, comma-separated", n(e.lo), n(e.hi)) : "";
    default: return "";
  }
}

bool in_range(const option_spec& e, double v) { return (v >= e.lo && v <= e.hi) || (e.zero_is_none && v == 0); }

double parse_number(const option_spec& e, std::string_view v) {
  if (e.kind == option_kind::count || e.kind == option_kind::mib) {  // compared as whole numbers: 2^62 + 1 is not 2^62
    long long n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    bool in = n >= static_cast<long long>(e.lo) && n <= static_cast<long long>(e.hi);
    if (ec != std::errc() || end != v.data() + v.size() || !(in || (e.zero_is_none && n == 0))) expected(range_text(e), v);
    return static_cast<double>(n);
  }
  std::string s(v);
  char* end = nullptr;
  double x = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !in_range(e, x)) expected(range_text(e), v);
  return x;
}

bool parse_flag(std::string_view v) {
  if (v == "true" || v == "True" || v == "1" || v.empty()) return true;
  if (v == "false" || v == "False" || v == "0") return false;
  expected("true or false", v);
}

// "core=0", "nofile=4096:65536", "as=unlimited".
resource_limit parse_rlimit(std::string_view text) {
  static const std::pair<const char*, int> names[] = {
      {"core", RLIMIT_CORE}, {"nofile", RLIMIT_NOFILE}, {"as", RLIMIT_AS},       {"nproc", RLIMIT_NPROC},
      {"data", RLIMIT_DATA}, {"stack", RLIMIT_STACK},   {"fsize", RLIMIT_FSIZE}, {"memlock", RLIMIT_MEMLOCK},
      {"cpu", RLIMIT_CPU}};
  auto bad = [&](const std::string& why) { throw std::invalid_argument(std::string(text) + ": " + why); };
  auto eq = text.find('=');
  if (eq == std::string_view::npos) bad("expected NAME=SOFT[:HARD]");
  std::string_view name = text.substr(0, eq), values = text.substr(eq + 1);
  int resource = -1;
  for (const auto& [n, r] : names)
    if (name == n) resource = r;
  if (resource < 0) bad("unknown limit '" + std::string(name) + "' (core, nofile, as, nproc, data, stack, fsize, memlock, cpu)");
  auto number = [&](std::string_view v) -> std::uint64_t {
    if (v == "unlimited" || v == "infinity") return RLIM_INFINITY;
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (v.empty() || ec != std::errc() || end != v.data() + v.size()) bad("'" + std::string(v) + "' is not a number");
    return n;
  };
  auto colon = values.find(':');
  std::uint64_t soft = number(values.substr(0, colon));
  std::uint64_t hard = colon == std::string_view::npos ? soft : number(values.substr(colon + 1));
  if (soft > hard) bad("the soft limit is above the hard one");
  return {resource, soft, hard};
}

// An entry for the field `field(o)` returns, of the kind its type and
// `kind` say: the one place a value as typed becomes a field's value
// (seconds into milliseconds, MiB into bytes).
template <class Field>
option_entry entry(const option_spec& spec, Field field) {
  option_entry e;
  static_cast<option_spec&>(e) = spec;
  auto at = [field](const options& o) -> const auto& { return field(const_cast<options&>(o)); };
  using T = std::remove_cvref_t<decltype(field(std::declval<options&>()))>;
  const option_kind kind = e.kind;
  // [=]: an instantiation that does not use a capture is no warning.
  e.set = [=](options& o, std::string_view v) {
    auto& f = field(o);
    if constexpr (std::is_same_v<T, bool>) {
      f = parse_flag(v);
    } else if constexpr (std::is_same_v<T, milliseconds>) {
      f = milliseconds(std::llround(parse_number(spec, v) * 1000));
    } else if constexpr (std::is_arithmetic_v<T>) {
      double x = parse_number(spec, v);
      f = static_cast<T>(kind == option_kind::mib ? x * 1024 * 1024 : x);
    } else if constexpr (std::is_same_v<T, std::string>) {
      f = std::string(v);
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
      f.emplace_back(v);
    } else if constexpr (std::is_same_v<T, std::vector<resource_limit>>) {
      f.push_back(parse_rlimit(v));
    } else if constexpr (std::is_same_v<T, std::vector<std::uint64_t>>) {  // "N[,N...]"
      for (std::size_t at = 0; at <= v.size();) {
        auto comma = std::min(v.find(',', at), v.size());
        f.push_back(static_cast<std::uint64_t>(parse_number(spec, v.substr(at, comma - at))));
        at = comma + 1;
      }
    }
  };
  e.number = [=](const options& o) -> double {
    const auto& f = at(o);
    if constexpr (std::is_same_v<T, bool>)
      return f ? 1 : 0;
    else if constexpr (std::is_same_v<T, milliseconds>)
      return static_cast<double>(f.count()) / 1000;
    else if constexpr (std::is_arithmetic_v<T>)
      return kind == option_kind::mib ? static_cast<double>(f) / (1024 * 1024) : static_cast<double>(f);
    else
      return 0;
  };
  e.copy = [field, at](options& to, const options& from) { field(to) = at(from); };
  e.show = [at, number = e.number](const options& o) -> std::string {
    const auto& f = at(o);
    if constexpr (std::is_same_v<T, std::string>)
      return f;
    else if constexpr (std::is_same_v<T, bool>)
      return f ? "true" : "false";
    else if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, milliseconds>)
      return fmt::format("{}", number(o));
    else if constexpr (std::is_same_v<T, std::vector<std::string>> || std::is_same_v<T, std::vector<std::uint64_t>>)
      return fmt::format("{}", fmt::join(f, ","));
    else {  // resource limits
      std::string out;
      for (const resource_limit& r : f) out += fmt::format("{}{}={}:{}", out.empty() ? "" : ",", r.resource, r.soft, r.hard);
      return out;
    }
  };
  return e;
}

constexpr double big = 4611686018427387904.0;  // 2^62
constexpr double year = 31536000;

std::vector<option_entry> make_table() {
  using k = option_kind;
  auto run_py = in_run | in_python;
  auto hello_py = in_hello | in_python | in_app;
  auto library = in_hello | in_app;  // the pools whose workers are ufork's own code
  return {
      entry({"workers", "--workers,-w", k::count, 1, 4096, false, everywhere, "worker processes"},
            [](options& o) -> auto& { return o.workers; }),
      entry({"allow-empty", "--allow-empty", k::flag, 0, 0, false, everywhere,
             "allow size 0 (ufork ctl size 0, SIGTTOU at 1): connections wait unanswered"},
            [](options& o) -> auto& { return o.allow_empty; }),
      entry({"timeout", "--timeout,-t", k::seconds, 0.001, 86400, false, hello_py,
             "seconds without a heartbeat before a worker is hung"},
            [](options& o) -> auto& { return o.timeout; }),
      entry({"watchdog", "--watchdog,--timeout,-t", k::seconds, 0.001, 86400, true, in_run,
             "with --notify: a watchdog, as systemd's WatchdogSec=: WATCHDOG_USEC for each worker, which is hung "
             "after this many seconds without WATCHDOG=1 (--timeout is another name for it; default: none, "
             "only READY=1 and the worker's death are watched)"},
            [](options& o) -> auto& { return o.exec.watchdog; }),
      entry({"startup-timeout", "--startup-timeout", k::seconds, 0.001, 86400, false, run_py | in_app,
             "seconds for a worker to become ready"},
            [](options& o) -> auto& { return o.startup_timeout; }),
      entry({"graceful-timeout", "--graceful-timeout", k::seconds, 0.001, 86400, false, run_py | in_app,
             "seconds from SIGTERM to SIGKILL"},
            [](options& o) -> auto& { return o.graceful_timeout; }),
      entry({"notify", "--notify", k::flag, 0, 0, false, in_run,
             "workers speak sd_notify: READY=1 makes one ready, WATCHDOG=1 is its heartbeat (NOTIFY_SOCKET)"},
            [](options& o) -> auto& { return o.exec.notify; }),
      entry({"ready-after", "--ready-after", k::seconds, 0, 3600, false, in_run,
             "without --notify: seconds a worker must run after its exec to count as ready"},
            [](options& o) -> auto& { return o.exec.ready_after; }),
      entry({"chdir", "--chdir", k::text, 0, 0, false, in_run, "the workers' working directory"},
            [](options& o) -> auto& { return o.exec.chdir; }),
      entry({"env", "--env,-e", k::texts, 0, 0, false, in_run, "K=V added to the workers' environment (repeatable)"},
            [](options& o) -> auto& { return o.exec.env; }),
      entry({"control", "--control", k::text, 0, 0, false, everywhere,
             "a control socket for ufork ctl / ufork console"},
            [](options& o) -> auto& { return o.control_path; }),
      entry({"metrics", "--metrics", k::text, 0, 0, false, library | in_run,
             "HOST:PORT: the arbiter serves /metrics (Prometheus), /status and a live status page at /"},
            [](options& o) -> auto& { return o.metrics_address; }),
      entry({"min-ready", "--min-ready", k::count, 0, 4096, false, library | in_run,
             "the pool is ready (ctl status --check, READY=1 and WATCHDOG=1 to systemd) with this many ready workers"},
            [](options& o) -> auto& { return o.min_ready; }),
      entry({"drain-delay", "--drain-delay", k::seconds, 0, 3600, false, library | in_run,
             "on SIGTERM, say not ready but keep serving this many seconds, then stop (a load balancer's time)"},
            [](options& o) -> auto& { return o.drain_delay; }),
      entry({"subreaper", "--subreaper", k::flag, 0, 0, false, library | in_run,
             "reap every orphan re-parented to ufork, not only workers (always as PID 1)"},
            [](options& o) -> auto& { return o.subreaper; }),
      entry({"user", "--user", k::text, 0, 0, false, library | in_run,
             "workers drop to this user (and its groups) after the fork"},
            [](options& o) -> auto& { return o.user; }),
      entry({"group", "--group", k::text, 0, 0, false, library | in_run, "workers drop to this group after the fork"},
            [](options& o) -> auto& { return o.group; }),
      entry({"max-rss", "--max-rss", k::mib, 1, 1 << 30, true, everywhere,
             "MiB: a worker using more is recycled (its successor ready first)"},
            [](options& o) -> auto& { return o.recycle.max_rss; }),
      entry({"max-private-mem", "--max-private-mem", k::mib, 1, 1 << 30, true, everywhere,
             "MiB: a worker holding more of its own (USS: not what it shares) is recycled"},
            [](options& o) -> auto& { return o.recycle.max_private; }),
      entry({"max-fds-percent", "--max-fds-percent", k::count, 1, 100, true, everywhere,
             "a worker using more of its fd limit is recycled (uFork: 90)"},
            [](options& o) -> auto& { return o.recycle.max_fds_percent; }),
      entry({"max-requests", "--max-requests", k::count, 1, big, true, library | in_run,
             "a worker that has answered this many is recycled"},
            [](options& o) -> auto& { return o.recycle.max_requests; }),
      entry({"max-requests-jitter", "--max-requests-jitter", k::count, 0, big, false, library | in_run,
             "plus a random 0..N per worker"},
            [](options& o) -> auto& { return o.recycle.max_requests_jitter; }),
      entry({"max-lifetime", "--max-lifetime", k::seconds, 0.001, year, true, library | in_run,
             "seconds: an older worker is recycled"},
            [](options& o) -> auto& { return o.recycle.max_lifetime; }),
      entry({"max-lifetime-jitter", "--max-lifetime-jitter", k::seconds, 0, year, false, library | in_run,
             "plus a random 0..S seconds per worker"},
            [](options& o) -> auto& { return o.recycle.max_lifetime_jitter; }),
      entry({"refork-after", "--refork-after", k::texts, 1, big, false, everywhere,
             "N[,N...] requests: a worker past N becomes the mold every worker is forked from, so what it warmed is "
             "shared (one N per generation)"},
            [](options& o) -> auto& { return o.refork_after; }),
      entry({"min-workers", "--min-workers", k::count, 1, 4096, false, everywhere,
             "with --max-workers: the size the pool starts at and never shrinks below"},
            [](options& o) -> auto& { return o.scale.min_workers; }),
      entry({"max-workers", "--max-workers", k::count, 1, 4096, true, everywhere,
             "the pool sizes itself up to this many workers: it grows the moment requests queue or every worker "
             "is busy, and shrinks when idle (default: a fixed --workers)"},
            [](options& o) -> auto& { return o.scale.max_workers; }),
      entry({"idle-timeout", "--idle-timeout", k::seconds, 0.001, 86400, false, everywhere,
             "with --max-workers: seconds a worker has not been needed before it is stopped"},
            [](options& o) -> auto& { return o.scale.idle_timeout; }),
      entry({"max-pool-memory", "--max-pool-memory", k::mib, 1, 1 << 30, true, everywhere,
             "with --max-workers: MiB of PSS (arbiter, workers, mold) a scale-up never crosses"},
            [](options& o) -> auto& { return o.scale.max_pool_memory; }),
      entry({"recycle-at-once", "--recycle-at-once", k::count, 1, 4096, false, library | in_run,
             "slots recycling at once (a reload: one at a time)"},
            [](options& o) -> auto& { return o.recycle.at_once; }),
      entry({"max-starting", "--max-starting", k::count, 1, 4096, false, everywhere,
             "workers starting (forked, not yet ready) at once"},
            [](options& o) -> auto& { return o.max_starting; }),
      entry({"pin-cpus", "--pin-cpus", k::flag, 0, 0, false, library | in_run,
             "worker i runs on the i-th usable CPU (mod their number)"},
            [](options& o) -> auto& { return o.pin_cpus; }),
      entry({"nice", "--nice", k::count, -40, 40, false, library | in_run, "added to the workers' nice value"},
            [](options& o) -> auto& { return o.nice; }),
      entry({"rlimit", "--rlimit", k::texts, 0, 0, false, library | in_run,
             "NAME=SOFT[:HARD] for every worker: core=0, nofile=65536, as=unlimited, ..."},
            [](options& o) -> auto& { return o.rlimits; }),
  };
}

}  // namespace

std::string range_help(const option_spec& e) {
  if (e.kind != option_kind::count && e.kind != option_kind::seconds && e.kind != option_kind::mib) return "";
  double lo = e.zero_is_none ? 0 : e.lo;
  if (e.kind == option_kind::seconds) return fmt::format("SECONDS in [{}, {}]", lo, e.hi);
  return fmt::format("INT in [{}, {}]", static_cast<long long>(lo), static_cast<long long>(e.hi));
}

const std::vector<option_entry>& option_table() {
  static const std::vector<option_entry> table = make_table();
  return table;
}

const option_entry* find_option(std::string_view key) {
  std::string k(key);
  std::replace(k.begin(), k.end(), '_', '-');
  for (const auto& e : option_table())
    if (k == e.key) return &e;
  return nullptr;
}

void validate(const options& o) {
  auto positive = [](milliseconds d, const char* name) {
    if (d <= milliseconds::zero()) throw_invalid(fmt::format("{} must be > 0", name));
  };
  if (o.workers == 0 && !o.allow_empty) throw_invalid(empty_pool_refused);
  // The table's ranges: what a flag accepts is what a program may set.
  for (const auto& e : option_table()) {
    if (!e.number || e.kind == option_kind::flag || e.kind == option_kind::text || e.kind == option_kind::texts) continue;
    if (std::string_view(e.key) == "workers" && o.workers == 0) continue;  // allowed above
    if (double v = e.number(o); !in_range(e, v))
      throw_invalid(fmt::format("--{}: expected {}, not {}", e.key, range_text(e), v));
  }
  const recycle_limits& r = o.recycle;
  positive(r.check_interval, "recycle.check_interval");
  if (r.max_requests && !o.exec.argv.empty())
    throw_invalid("--max-requests needs a request counter, which a program run by ufork does not have: "
                  "--max-lifetime, --max-rss, --max-private-mem and --max-fds-percent apply (and a worker may send UFORK_RECYCLE=1)");
  if (std::ranges::count(o.refork_after, 0U) > 0) throw_invalid("--refork-after: each threshold is 1 request or more");
  if (!o.refork_after.empty() && !o.exec.argv.empty())
    throw_invalid("--refork-after forks workers from a warmed worker's memory, which a program run by ufork replaces "
                  "with exec: it is for library pools (ufork hello, the Python module, the C++ library)");
  if (const scaling& sc = o.scale; sc.max_workers > 0) {
    if (sc.min_workers > sc.max_workers)
      throw_invalid(fmt::format("--min-workers {} is above --max-workers {}", sc.min_workers, sc.max_workers));
    // The arbiter holds a pidfd and two pipes per worker, and a fourth fd while it starts.
    rlimit fds = sys::fd_limit();
    if (fds.rlim_max != 0 && fds.rlim_max != RLIM_INFINITY &&
        static_cast<rlim_t>(sc.max_workers) * 4 + 64 > fds.rlim_max)
      throw_invalid(fmt::format("--max-workers {} needs about {} fds in the arbiter; its fd limit is {} (ulimit -Hn)",
                                sc.max_workers, sc.max_workers * 4 + 64, fds.rlim_max));
    // A worker starts as a copy of the arbiter: its footprint is at least what the arbiter holds alone now.
    if (auto own = sys::memory_of(sys::own_pid()); own && sc.max_pool_memory > 0 && own->pss >= sc.max_pool_memory)
      throw_invalid(fmt::format("--max-pool-memory {} MiB is below one worker's footprint: the arbiter alone holds "
                                "{:.1f} MiB (PSS), and a worker starts as a copy of it",
                                sc.max_pool_memory >> 20, static_cast<double>(own->pss) / (1 << 20)));
  } else if (sc.max_pool_memory > 0) {
    throw_invalid("--max-pool-memory is the ceiling of a pool that sizes itself: it needs --max-workers");
  }
  if (o.max_boot_failures < 0) throw_invalid("max_boot_failures must be >= 0");
  positive(o.abort_timeout, "abort_timeout");
  positive(o.backoff.initial, "backoff.initial");
  if (o.backoff.min_interval < milliseconds::zero()) throw_invalid("backoff.min_interval must be >= 0");
  if (o.backoff.cap < o.backoff.initial) throw_invalid("backoff.cap must be >= backoff.initial");
  const exec_spec& x = o.exec;
  if (x.argv.empty() && (x.notify || !x.listen_fds.empty() || !x.env.empty() || !x.chdir.empty()))
    throw_invalid("exec options need exec.argv (the program to run)");
  if (!x.argv.empty() && x.argv[0].empty()) throw_invalid("exec.argv[0] is empty");
  if (!x.listen_names.empty() && x.listen_names.size() != x.listen_fds.size())
    throw_invalid("exec.listen_names needs one name per listen fd");
  for (const auto& name : x.listen_names)
    if (name.empty() || name.find(':') != std::string::npos)
      throw_invalid("a listen fd name is not empty and has no ':': '" + name + "'");
  for (const auto& var : x.env)
    if (var.find('=') == std::string::npos || var[0] == '=') throw_invalid("--env takes K=V: '" + var + "'");
  if (x.watchdog > milliseconds::zero() && !x.notify)
    throw_invalid("--watchdog (--timeout) needs --notify: without it a worker sends no WATCHDOG=1, and only its "
                  "death is watched");
}

}  // namespace ufork
