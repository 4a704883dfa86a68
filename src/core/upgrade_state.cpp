// The in-place upgrade's state as text (upgrade.hpp): one record per line,
// a worker's fields through its one field list (worker_record.hpp).
#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "core/exit_status.hpp"
#include "core/upgrade.hpp"

namespace ufork::upgrade {
namespace {

// ---- the text --------------------------------------------------------------

class writer {
 public:
  writer& word(std::string_view w) {
    if (!out_.empty() && out_.back() != '\n') out_ += ' ';
    out_ += w;
    return *this;
  }
  template <class T>
  writer& num(T v) { return word(fmt::format("{}", v)); }
  writer& str(std::string_view v) { return word(fmt::format("{}:", v.size())).raw(v); }
  writer& fd(int v) { return num(v); }
  void end() { out_ += '\n'; }
  std::string take() { return std::move(out_); }

 private:
  writer& raw(std::string_view v) {
    out_ += v;
    return *this;
  }
  std::string out_;
};

struct bad_state : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class reader {
 public:
  explicit reader(std::string_view text) : rest_(text) {}
  bool done() const noexcept { return rest_.empty(); }
  // The next field is "-", an optional field's none: taken.
  bool none() {
    std::string_view r = rest_;
    if (!r.empty() && r.front() == ' ') r.remove_prefix(1);
    if (r.empty() || r.front() != '-' || (r.size() > 1 && r[1] != ' ' && r[1] != '\n')) return false;
    r.remove_prefix(1);
    rest_ = r;
    return true;
  }
  std::string_view word() {
    if (!rest_.empty() && rest_.front() == ' ') rest_.remove_prefix(1);
    std::size_t n = 0;
    while (n < rest_.size() && rest_[n] != ' ' && rest_[n] != '\n') ++n;
    if (n == 0) throw bad_state("a field is missing");
    std::string_view w = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return w;
  }
  template <class T>
  T num() {
    std::string_view w = word();
    T v{};
    auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), v);
    if (ec != std::errc() || end != w.data() + w.size()) throw bad_state("not a number: '" + std::string(w) + "'");
    return v;
  }
  std::string str() {
    if (!rest_.empty() && rest_.front() == ' ') rest_.remove_prefix(1);
    auto colon = rest_.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon > 10) throw bad_state("a string field is malformed");
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(rest_.data(), rest_.data() + colon, n);
    if (ec != std::errc() || end != rest_.data() + colon || n > rest_.size() - colon - 1)
      throw bad_state("a string field is malformed");
    std::string s(rest_.substr(colon + 1, n));
    rest_.remove_prefix(colon + 1 + n);
    return s;
  }
  // An fd field: -1 (none) or one above stdio.
  int fd() {
    int v = num<int>();
    if (v != -1 && v < 3) throw bad_state("fd " + std::to_string(v) + " is not one the state may name");
    return v;
  }
  void end() {
    if (rest_.empty() || rest_.front() != '\n') throw bad_state("a record has more fields than it should");
    rest_.remove_prefix(1);
  }

 private:
  std::string_view rest_;
};

template <class T>
T in_range(T v, T lo, T hi, const char* what) {
  if (v < lo || v > hi) throw bad_state(fmt::format("{} {} is out of range", what, v));
  return v;
}

// ---- a field's text, by its type -------------------------------------------

template <class E>
constexpr E last_of();
template <>
constexpr worker_state last_of<worker_state>() { return worker_state::exited; }
template <>
constexpr exit_reason last_of<exit_reason>() { return exit_reason::recycled; }
template <>
constexpr worker_role last_of<worker_role>() { return worker_role::outgoing; }

// An enum travels by its name: a reordered enum cannot change a value's meaning.
template <class E>
E named(std::string_view word, const char* what) {
  for (int i = 0; i <= static_cast<int>(last_of<E>()); ++i)
    if (word == to_string(static_cast<E>(i))) return static_cast<E>(i);
  throw bad_state(fmt::format("{}: unknown '{}'", what, word));
}

template <class T>
struct is_time_point : std::false_type {};
template <class C, class D>
struct is_time_point<std::chrono::time_point<C, D>> : std::true_type {};
template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};
template <class T>
struct is_duration : std::false_type {};
template <class R, class P>
struct is_duration<std::chrono::duration<R, P>> : std::true_type {};

using nanoseconds = std::chrono::nanoseconds;

// Writes the fields a for_each_field visits; field_reader reads them back.
struct field_writer {
  writer& w;
  template <class T>
  void operator()(const char* name, const T& v) const {
    if constexpr (is_optional<T>::value) {
      if (v)
        (*this)(name, *v);
      else
        w.word("-");  // none: no value of any field's type is "-"
    } else if constexpr (std::is_same_v<T, bool>)
      w.num(v ? 1 : 0);
    else if constexpr (std::is_enum_v<T>)
      w.word(to_string(v));
    else if constexpr (std::is_same_v<T, std::string>)
      w.str(v);
    else if constexpr (std::is_same_v<T, carried_fd>)
      w.fd(v.fd);
    else if constexpr (is_time_point<T>::value)
      w.num(std::chrono::duration_cast<nanoseconds>(v.time_since_epoch()).count());
    else if constexpr (is_duration<T>::value)
      w.num(v.count());
    else
      w.num(v);
  }
};

struct field_reader {
  reader& r;
  template <class T>
  void operator()(const char* name, T& v) const {
    if constexpr (is_optional<T>::value) {
      if (r.none()) {
        v.reset();
      } else {
        typename T::value_type value{};
        (*this)(name, value);
        v = std::move(value);
      }
    } else if constexpr (std::is_same_v<T, bool>) {
      v = in_range(r.num<int>(), 0, 1, name) == 1;
    } else if constexpr (std::is_enum_v<T>) {
      v = named<T>(r.word(), name);
    } else if constexpr (std::is_same_v<T, std::string>) {
      v = r.str();
    } else if constexpr (std::is_same_v<T, carried_fd>) {
      v.fd = r.fd();
    } else if constexpr (is_time_point<T>::value) {
      v = T(std::chrono::duration_cast<typename T::duration>(nanoseconds(r.num<std::int64_t>())));
    } else if constexpr (is_duration<T>::value) {
      v = T(r.num<typename T::rep>());
    } else {
      v = r.num<T>();
    }
  }
};

// The pool's counters and an exit, field by field: as for_each_field, a
// field added to them and not here does not compile.
template <class C, class F>
void for_each_counter(C& c, F&& f) {
  auto& [spawned, exited, hung, backoffs, spawn_errors, wakeups, stalls, log_lost, requests, notify_ignored,
         orphans_reaped] = c;
  for (auto* v : {&spawned, &exited, &hung, &backoffs, &spawn_errors, &wakeups, &stalls, &log_lost, &requests,
                  &notify_ignored, &orphans_reaped})
    f("counter", *v);
}

template <class X, class F>
void for_each_exit_field(X& x, F&& f) {
  auto& [id, pid, generation, code, signal, core_dumped, oom_killed, oom_possible, was_ready, reason, detail, uptime,
         when] = x;
  f("id", id);
  f("pid", pid);
  f("generation", generation);
  f("code", code);
  f("signal", signal);
  f("core_dumped", core_dumped);
  f("oom_killed", oom_killed);
  f("oom_possible", oom_possible);
  f("was_ready", was_ready);
  f("reason", reason);
  f("detail", detail);
  f("uptime", uptime);
  f("when", when);
}

// A record of one word and the fields `visit` names.
template <class T, class Visit>
void write_record(writer& w, const char* word, const T& v, Visit visit) {
  w.word(word);
  visit(v, field_writer{w});
  w.end();
}


}  // namespace

const char* to_string(worker_role r) noexcept {
  switch (r) {
    case worker_role::current: return "current";
    case worker_role::incoming: return "incoming";
    case worker_role::outgoing: return "outgoing";
  }
  return "?";
}

std::vector<int> state::fds() const {
  std::vector<int> out;
  for (int fd : {board, notify_rx, notify_tx, exec_notify, reply})
    if (fd >= 0) out.push_back(fd);
  for (const auto& w : workers)
    for (carried_fd c : {w.pidfd, w.out, w.err, w.setup})
      if (c.fd >= 0) out.push_back(c.fd);
  return out;
}

std::string encode(const state& s) {
  writer w;
  w.word(state_header).num(format_version).end();
  w.word("from").num(s.from).end();
  w.word("board").fd(s.board).end();
  w.word("notify").fd(s.notify_rx).fd(s.notify_tx).fd(s.exec_notify).str(s.notify_name).end();
  w.word("nofile").num(s.nofile.rlim_cur).num(s.nofile.rlim_max).end();
  w.word("reply").fd(s.reply).end();
  w.word("size").num(s.size).end();
  w.word("generations").num(s.generations.size());
  for (unsigned g : s.generations) w.num(g);
  w.end();
  auto counters = [](const auto& c, auto f) { for_each_counter(c, f); };
  auto worker = [](const auto& p, auto f) { for_each_field(p, f); };
  auto dead = [](const auto& d, auto f) { for_each_exit_field(d, f); };
  write_record(w, "counters", s.counters, counters);
  w.word("requests_of_exited").num(s.requests_of_exited).end();
  for (const auto& p : s.workers) write_record(w, "worker", p, worker);
  for (const auto& d : s.dead) write_record(w, "dead", d, dead);
  w.word("end").end();
  return w.take();
}

std::variant<state, std::string> decode(std::string_view text) {
  try {
    reader r(text);
    if (r.word() != state_header) throw bad_state("not an upgrade state");
    int version = r.num<int>();
    if (version != format_version)
      throw bad_state(fmt::format("its format is version {}; this build reads version {}", version, format_version));
    r.end();
    state s;
    bool ended = false;
    while (!ended) {
      if (r.done()) throw bad_state("it ends before its end record");
      std::string_view what = r.word();
      if (what == "from") {
        s.from = r.num<pid_t>();
      } else if (what == "board") {
        s.board = r.fd();
      } else if (what == "notify") {
        s.notify_rx = r.fd();
        s.notify_tx = r.fd();
        s.exec_notify = r.fd();
        s.notify_name = r.str();
      } else if (what == "nofile") {
        s.nofile.rlim_cur = r.num<rlim_t>();
        s.nofile.rlim_max = r.num<rlim_t>();
      } else if (what == "reply") {
        s.reply = r.fd();
      } else if (what == "size") {
        s.size = in_range(r.num<int>(), 0, 1 << 20, "size");
      } else if (what == "generations") {
        auto n = in_range<std::size_t>(r.num<std::size_t>(), 0, 1 << 20, "slot count");
        for (std::size_t i = 0; i < n; ++i) s.generations.push_back(r.num<unsigned>());
      } else if (what == "counters") {
        for_each_counter(s.counters, field_reader{r});
      } else if (what == "requests_of_exited") {
        s.requests_of_exited = r.num<std::uint64_t>();
      } else if (what == "worker") {
        worker_record p;
        for_each_field(p, field_reader{r});
        in_range(p.saved.slot, 0, 1 << 20, "slot");
        in_range(p.saved.pid, 1, 1 << 30, "pid");
        // A table holds starting, ready and stopping workers (not one being forked, nor a reaped one).
        if (p.state < worker_state::starting || p.state > worker_state::stopping)
          throw bad_state(fmt::format("a worker's state is {}", to_string(p.state)));
        if (p.pidfd.fd < 0) throw bad_state("a worker has no pidfd");
        s.workers.push_back(std::move(p));
      } else if (what == "dead") {
        exit_info d;
        for_each_exit_field(d, field_reader{r});
        s.dead.push_back(std::move(d));
      } else if (what == "end") {
        ended = true;
      } else {
        throw bad_state("unknown record '" + std::string(what) + "'");
      }
      r.end();
    }
    if (!r.done()) throw bad_state("bytes after its end record");
    if (s.from <= 0 || s.board < 0 || s.notify_rx < 0 || s.notify_tx < 0) throw bad_state("a record is missing");
    if (s.generations.size() < static_cast<std::size_t>(s.size)) throw bad_state("fewer slots than its size");
    for (const auto& w : s.workers)
      if (static_cast<std::size_t>(w.saved.slot) >= s.generations.size()) throw bad_state("a worker's slot is past the slots");
    return s;
  } catch (const bad_state& e) {
    return std::string(e.what());
  }
}


}  // namespace ufork::upgrade
