// `ufork top`: a live view of a running arbiter, from its control socket
// (uwsgitop, `pm2 monit`). It asks status, workers and dead once per
// refresh; CPU % comes from /proc/PID/stat over the interval, requests/s
// from the workers' counters. Plain ANSI on the alternate screen, the
// terminal restored on every way out. Without a terminal it prints one
// frame, after one interval (so CPU % and requests/s mean something), and
// exits (for scripts).
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "client.hpp"
#include "commands.hpp"
#include "sys/event.hpp"
#include "sys/fd.hpp"
#include "sys/process.hpp"
#include "sys/procfs.hpp"
#include "sys/terminal.hpp"

namespace ufork::cli {
namespace {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

volatile sig_atomic_t g_quit = 0, g_resized = 0;

std::string human_bytes(double b) {
  if (b >= 1024.0 * 1024 * 1024) return fmt::format("{:.1f}G", b / (1024.0 * 1024 * 1024));
  if (b >= 1024.0 * 1024) return fmt::format("{:.1f}M", b / (1024.0 * 1024));
  return fmt::format("{:.0f}K", b / 1024.0);
}

std::string human_time(double s) {
  if (s < 60) return fmt::format("{:.1f}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return fmt::format("{}h{:02}m", static_cast<int>(s) / 3600, static_cast<int>(s) / 60 % 60);
}

struct row {
  long id = 0, pid = 0, generation = 0;
  std::string state;
  double uptime = 0, cpu = 0, rss = 0, pss = 0, uss = 0, rate = 0;
  std::optional<double> beat;
};

// What a frame shows, and what the next one compares with.
class view {
 public:
  enum sort_key { by_id, by_cpu, by_uss, by_rate, sort_keys };

  // Asks the arbiter; false if it is gone.
  bool refresh(control_client& c) {
    auto answer = [&c](const char* line) -> std::optional<json> {
      auto a = c.request(line, std::chrono::seconds(10));
      if (!a) return std::nullopt;
      auto j = json::parse(*a, nullptr, false);
      if (j.is_discarded() || !j.value("ok", false)) return std::nullopt;
      return j["data"];
    };
    auto status = answer("status"), workers = answer("workers"), dead = answer("dead");
    if (!status || !workers || !dead) return false;
    auto now = clock_type::now();
    double dt = std::chrono::duration<double>(now - when_).count();
    std::map<long, std::pair<double, double>> seen;  // pid -> (CPU seconds, requests)
    rows_.clear();
    for (const auto& w : *workers) {
      row r;
      r.id = w.value("id", 0L);
      r.pid = w.value("pid", 0L);
      r.generation = w.value("generation", 0L);
      r.state = w.value("state", "");
      r.uptime = w.value("uptime", 0.0);
      auto bytes = [&w](const char* key) { return w[key].is_number() ? w[key].get<double>() : 0; };
      r.rss = bytes("rss");
      r.pss = bytes("pss");
      r.uss = bytes("uss");
      if (w["heartbeat_age"].is_number()) r.beat = w["heartbeat_age"].get<double>();
      double requests = w.value("requests", 0.0);
      double cpu = sys::cpu_seconds(static_cast<pid_t>(r.pid));
      if (auto it = last_.find(r.pid); it != last_.end() && dt > 0) {
        r.cpu = (cpu - it->second.first) / dt * 100;
        r.rate = (requests - it->second.second) / dt;
      }
      seen[r.pid] = {cpu, requests};
      rows_.push_back(r);
    }
    last_ = std::move(seen);
    when_ = now;
    status_ = std::move(*status);
    dead_ = std::move(*dead);
    sort();
    return true;
  }

  void next_sort() {
    sort_ = static_cast<sort_key>((sort_ + 1) % sort_keys);
    sort();
  }
  void move(int delta) {
    if (!rows_.empty()) selected_ = std::clamp(selected_ + delta, 0, static_cast<int>(rows_.size()) - 1);
  }
  const row* selection() const { return rows_.empty() ? nullptr : &rows_[static_cast<std::size_t>(selected_)]; }

  // The frame, `cols` wide and at most `lines` high.
  std::string draw(int cols, int lines, const std::string& prompt) const {
    std::vector<std::string> out;
    auto counters = status_.value("counters", json::object());
    auto states = status_.value("workers", json::object());
    std::string by_state;
    for (const auto& [state, n] : states.items()) by_state += fmt::format("{}{} {}", by_state.empty() ? "" : ", ", n.get<long>(), state);
    // What the pool really holds: the arbiter's share and each worker's.
    auto own = status_.value("arbiter_memory", json::object());
    double pool_pss = own["pss"].is_number() ? own["pss"].get<double>() : 0, pool_uss = own["uss"].is_number() ? own["uss"].get<double>() : 0;
    for (const row& r : rows_) {
      pool_pss += r.pss;
      pool_uss += r.uss;
    }
    out.push_back(fmt::format("ufork top: arbiter pid {}, up {}, size {}{}; pool PSS {}, USS {}", status_.value("pid", 0L),
                              human_time(status_.value("uptime", 0.0)), status_.value("size", 0L),
                              status_.value("stopping", false) ? ", stopping" : "", human_bytes(pool_pss),
                              human_bytes(pool_uss)));
    out.push_back(fmt::format("workers: {}; spawned {}, exited {}, hung {}, backoffs {}", by_state.empty() ? "none" : by_state,
                              counters.value("spawned", 0L), counters.value("exited", 0L), counters.value("hung", 0L),
                              counters.value("backoffs", 0L)));
    if (auto sc = status_.value("scale", json()); sc.is_object()) {  // autoscaling
      long queued = 0;
      for (const auto& [name, n] : sc.value("queues", json::object()).items()) queued += n.is_number() ? n.get<long>() : 0;
      out.push_back(fmt::format("autoscaling {}..{}: target {}, accept queue {}, up {}, down {}{}", sc.value("min", 0L),
                                sc.value("max", 0L), sc.value("target", 0L), queued, sc.value("ups", 0L),
                                sc.value("downs", 0L),
                                sc.value("why", std::string()).empty() ? "" : "; last: " + sc.value("why", std::string())));
    }
    out.emplace_back();
    // Columns, dropped from the right as the terminal narrows.
    bool rss = cols >= 96, beat = cols >= 88, rate = cols >= 79, uss = cols >= 70, pss = cols >= 58, cpu = cols >= 50;
    static const char* sort_names[] = {"id", "cpu", "uss", "req/s"};
    std::string head = fmt::format("{:>4} {:>8} {:>4} {:<9} {:>8}", "ID", "PID", "GEN", "STATE", "UPTIME");
    if (cpu) head += fmt::format(" {:>6}", "CPU%");
    if (pss) head += fmt::format(" {:>7}", "PSS");
    if (uss) head += fmt::format(" {:>7}", "USS");
    if (rate) head += fmt::format(" {:>8}", "REQ/S");
    if (beat) head += fmt::format(" {:>8}", "BEAT");
    if (rss) head += fmt::format(" {:>7}", "RSS");
    out.push_back("\x1b[7m" + fit(head + fmt::format("  sorted by {}", sort_names[sort_]), cols) + "\x1b[0m");
    int room = std::max(lines - 11, 1);  // the header above, the exits and keys below
    for (std::size_t i = 0; i < rows_.size() && static_cast<int>(i) < room; ++i) {
      const row& r = rows_[i];
      std::string l = fmt::format("{:>4} {:>8} {:>4} {:<9} {:>8}", r.id, r.pid, r.generation, r.state, human_time(r.uptime));
      if (cpu) l += fmt::format(" {:>6.1f}", r.cpu);
      if (pss) l += fmt::format(" {:>7}", human_bytes(r.pss));
      if (uss) l += fmt::format(" {:>7}", human_bytes(r.uss));
      if (rate) l += fmt::format(" {:>8.1f}", r.rate);
      if (beat) l += fmt::format(" {:>8}", r.beat ? fmt::format("{:.2f}s", *r.beat) : "-");
      if (rss) l += fmt::format(" {:>7}", human_bytes(r.rss));
      bool sel = static_cast<int>(i) == selected_;
      out.push_back((sel ? "\x1b[1m>" : " ") + fit(l, cols - 1) + (sel ? "\x1b[0m" : ""));
    }
    out.emplace_back();
    out.emplace_back("last exits:");
    std::size_t shown = 0;
    for (auto it = dead_.rbegin(); it != dead_.rend() && shown < 4; ++it, ++shown)
      out.push_back(fit(fmt::format("  worker {} pid {} gen {} {}: {}", it->value("id", 0L), it->value("pid", 0L),
                                    it->value("generation", 0L), it->value("reason", ""), it->value("status", "")),
                        cols));
    if (shown == 0) out.emplace_back("  none");
    out.emplace_back();
    out.push_back(fit(prompt.empty() ? "up/down select  s sort  k kill  r restart  q quit" : prompt, cols));
    std::string frame = "\x1b[H";
    for (const auto& l : out) frame += l + "\x1b[K\n";  // the terminal's OPOST makes it \r\n
    return frame + "\x1b[J";
  }

 private:
  static std::string fit(const std::string& s, int cols) {
    return static_cast<int>(s.size()) <= cols ? s : s.substr(0, static_cast<std::size_t>(std::max(cols, 0)));
  }
  void sort() {
    auto key = [this](const row& r) {
      switch (sort_) {
        case by_cpu: return -r.cpu;
        case by_uss: return -r.uss;
        case by_rate: return -r.rate;
        default: return static_cast<double>(r.id);
      }
    };
    std::stable_sort(rows_.begin(), rows_.end(), [&](const row& a, const row& b) { return key(a) < key(b); });
    move(0);
  }

  std::vector<row> rows_;
  json status_ = json::object(), dead_ = json::array();
  std::map<long, std::pair<double, double>> last_;
  clock_type::time_point when_ = clock_type::now();
  sort_key sort_ = by_id;
  int selected_ = 0;
};

// The terminal in a state for a live view, and back as it was.
class screen {
 public:
  screen() : saved_(sys::terminal_settings(STDIN_FILENO).value_or(termios{})) {
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    sys::set_terminal(STDIN_FILENO, raw);
    put("\x1b[?1049h\x1b[?25l");  // the alternate screen; no cursor
  }
  ~screen() {
    put("\x1b[?25h\x1b[?1049l");
    sys::set_terminal(STDIN_FILENO, saved_);
  }
  screen(const screen&) = delete;
  screen& operator=(const screen&) = delete;
  static void put(const std::string& s) { (void)sys::write_all(STDOUT_FILENO, s.data(), s.size()); }
  static std::pair<int, int> size() {
    auto size = sys::size_of_terminal(STDOUT_FILENO).value_or(sys::terminal_size{80, 24});
    return {size.columns, size.rows};
  }

 private:
  termios saved_{};
};

// A key: a character, or 'U' / 'D' for the arrows; 0 for none.
char read_key() {
  char buf[8];
  auto got = sys::read(STDIN_FILENO, buf, sizeof buf);
  std::size_t n = got ? got.value() : 0;
  if (n == 0) return 0;
  if (n >= 3 && buf[0] == '\x1b' && buf[1] == '[') return buf[2] == 'A' ? 'U' : buf[2] == 'B' ? 'D' : '\0';
  return buf[0];
}

}  // namespace

int run_top(const std::string& socket, double interval) {
  int refused = 0;
  auto client = control_client::connect(socket, "ufork top", refused);
  if (!client) return refused;
  view v;
  if (!v.refresh(*client)) {
    std::cerr << "ufork top: no answer from " << socket << "\n";
    return exit_unreachable;
  }
  if (!sys::is_terminal(STDOUT_FILENO) || !sys::is_terminal(STDIN_FILENO)) {  // one frame, for a script, after one interval
    std::this_thread::sleep_for(std::chrono::duration<double>(interval));
    if (!v.refresh(*client)) {
      std::cerr << "ufork top: no answer from " << socket << "\n";
      return exit_unreachable;
    }
    std::string frame = v.draw(120, 1000, " ");
    std::string plain;
    for (std::size_t i = 0; i < frame.size(); ++i) {  // without the escapes
      if (frame[i] == '\x1b') {
        while (i < frame.size() && !std::isalpha(static_cast<unsigned char>(frame[i]))) ++i;
        continue;
      }
      if (frame[i] != '\r') plain += frame[i];
    }
    std::cout << plain;
    return 0;
  }
  struct sigaction quit{}, resized{};
  quit.sa_handler = [](int) { g_quit = 1; };
  resized.sa_handler = [](int) { g_resized = 1; };
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sys::set_action(sig, quit, nullptr);
  sys::set_action(SIGWINCH, resized, nullptr);

  int code = 0;
  {
  screen term;
  auto period = std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(interval));
  auto next = clock_type::now() + period;
  std::string prompt;
  char confirming = 0;  // 'k' or 'r' awaiting y/n
  long target = -1;
  auto draw = [&] {
    auto [cols, lines] = screen::size();
    screen::put(v.draw(cols, lines, prompt));
  };
  draw();
  while (!g_quit) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next - clock_type::now()).count();
    pollfd in{STDIN_FILENO, POLLIN, 0};
    auto r = sys::poll_once(&in, 1, static_cast<int>(std::max<long>(left, 0)));  // a signal: g_quit, g_resized
    if (!r && r.error() != std::errc::interrupted) break;
    if (r && r.value() > 0) {
      char k = read_key();
      if (confirming) {
        if (k == 'y' || k == 'Y') {
          auto a = client->request(fmt::format("{} {}", confirming == 'k' ? "kill" : "restart", target), std::chrono::seconds(10));
          prompt = a ? "done: " + nlohmann::json::parse(*a, nullptr, false).value("text", *a) : "no answer";
        } else {
          prompt.clear();
        }
        confirming = 0;
      } else if (k == 'q' || k == 'Q') {
        break;
      } else if (k == 's') {
        v.next_sort();
      } else if (k == 'U' || k == 'D') {
        v.move(k == 'U' ? -1 : 1);
      } else if ((k == 'k' || k == 'r') && v.selection()) {
        confirming = k;
        target = v.selection()->id;
        prompt = fmt::format("{} worker {} pid {}? y/n", k == 'k' ? "kill (SIGTERM)" : "restart", target, v.selection()->pid);
      }
      draw();
    }
    if (g_resized) {
      g_resized = 0;
      draw();
    }
    if (clock_type::now() >= next) {
      if (!v.refresh(*client)) {
        code = exit_unreachable;
        break;
      }
      draw();
      next = clock_type::now() + period;
    }
  }
  }  // the terminal restored
  if (code == exit_unreachable) std::cerr << "ufork top: the arbiter at " << socket << " went away\n";
  return code;
}

}  // namespace ufork::cli
