// `ufork ctl` and `ufork console`: the control socket from the shell.
#include <unistd.h>

// clang-format off
#include <cstdio>
#include <editline/readline.h>
// clang-format on

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "client.hpp"
#include "commands.hpp"

namespace ufork::cli {
namespace {

using namespace std::chrono_literals;
constexpr auto answer_timeout = 30s;

struct answer {
  bool ok = false;
  std::string text;
};

// The protocol's answer line, as a person reads it.
answer read_answer(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("ok")) return {false, "bad answer from the arbiter: " + line};
  if (!j["ok"].get<bool>()) return {false, j.value("error", "error")};
  return {true, j.value("text", "")};
}

// The console's Tab: the words the arbiter says may come next (its command
// table, with the commands its program added), those that start as typed.
control_client* g_console_client = nullptr;
std::vector<std::string> g_candidates;

char* next_candidate(const char* text, int state) {
  static std::size_t i;
  if (state == 0) i = 0;
  std::string_view typed(text);
  while (i < g_candidates.size())
    if (const std::string& c = g_candidates[i++]; c.starts_with(typed)) return ::strdup(c.c_str());
  return nullptr;
}

char** complete_remotely(const char* text, int start, int) {
  rl_attempted_completion_over = 1;  // no file names when nothing matches
  g_candidates.clear();
  auto reply = g_console_client->request("complete " + std::string(rl_line_buffer, static_cast<std::size_t>(start)), 5s);
  auto j = reply ? nlohmann::json::parse(*reply, nullptr, false) : nlohmann::json();
  if (j.is_object() && j.value("ok", false) && j["data"].is_array())
    for (const auto& w : j["data"])
      if (w.is_string()) g_candidates.push_back(w.get<std::string>());
  return rl_completion_matches(text, next_candidate);
}

}  // namespace

int run_ctl(const std::string& socket, const std::vector<std::string>& words, bool json, bool check) {
  if (check && (words.size() != 1 || words[0] != "status")) {
    std::cerr << "ufork ctl: --check goes with status alone\n";
    return exit_usage;
  }
  int code = 0;
  auto client = control_client::connect(socket, "ufork ctl", code);
  if (!client) return code;
  std::string line;
  for (const auto& w : words) line += (line.empty() ? "" : " ") + w;
  auto reply = client->request(line, answer_timeout);
  if (!reply) {
    std::cerr << "ufork ctl: no answer from " << socket << "\n";
    return exit_unreachable;
  }
  auto a = read_answer(*reply);
  if (check) {  // a readiness probe: the pool's own word, "ready"
    auto j = nlohmann::json::parse(*reply, nullptr, false);
    bool ready = a.ok && !j.is_discarded() && j["data"].value("ready", false);
    std::cout << (ready ? "ready" : "not ready") << ": " << a.text << "\n";
    return ready ? 0 : exit_error_answer;
  }
  if (json)
    std::cout << *reply << "\n";
  else if (a.ok)
    std::cout << a.text << (a.text.empty() ? "" : "\n");
  else
    std::cerr << "ufork ctl: " << a.text << "\n";
  return a.ok ? 0 : exit_error_answer;
}

int run_follow(const std::string& socket, bool json, bool events, int worker) {
  int code = 0;
  auto client = control_client::connect(socket, "ufork ctl", code);
  if (!client) return code;
  std::string line = std::string("follow") + (json ? " --json" : "") + (events ? " --events" : "") +
                     (worker >= 0 ? " --worker " + std::to_string(worker) : "");
  auto first = client->request(line, answer_timeout);
  if (!first) {
    std::cerr << "ufork ctl: no answer from " << socket << "\n";
    return exit_unreachable;
  }
  auto a = read_answer(*first);
  if (!a.ok) {
    std::cerr << "ufork ctl: " << a.text << "\n";
    return exit_error_answer;
  }
  std::cout << (json ? *first : a.text) << std::endl;  // live from here on
  while (auto l = client->read_line(std::chrono::milliseconds(-1))) {
    if (l->starts_with(R"({"ok":false)")) {  // dropped: it fell behind
      std::cout.flush();
      std::cerr << "ufork ctl: " << read_answer(*l).text << "\n";
      return exit_error_answer;
    }
    std::cout << *l << '\n';
    if (!client->has_line()) std::cout.flush();  // a batch at a time, not a write per line
  }
  std::cout.flush();
  std::cerr << "ufork ctl: the arbiter closed the stream\n";
  return 0;
}

int run_console(const std::string& socket) {
  int code = 0;
  auto client = control_client::connect(socket, "ufork console", code);
  if (!client) return code;
  std::cout << "connected to " << socket << "; help lists the commands, Ctrl-D leaves (the pool keeps running)\n";
  using_history();
  g_console_client = &*client;
  rl_attempted_completion_function = complete_remotely;
  while (char* raw = ::readline("ufork>> ")) {
    std::string line(raw);
    std::free(raw);
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    add_history(line.c_str());
    auto reply = client->request(line, answer_timeout);
    if (!reply) {
      std::cerr << "the arbiter went away\n";
      return exit_unreachable;
    }
    auto a = read_answer(*reply);
    bool json = line.find("--json") != std::string::npos;
    std::cout << (json ? *reply : a.ok ? a.text : "error: " + a.text) << "\n";
  }
  std::cout << "\n";
  return 0;
}

}  // namespace ufork::cli
