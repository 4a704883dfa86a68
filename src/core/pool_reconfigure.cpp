// A reload with new options (hooks::reload_options: `ufork run --config
// FILE` reads its file again): what a reload can change takes effect, each
// worker's successor forked with it; the rest is logged as taking a restart.
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <string_view>

#include "core/option_table.hpp"
#include "core/pool.hpp"

namespace ufork {
namespace {

// The options read where each worker is forked or watched: a reload's
// successors have them. (The size is applied by a resize.)
constexpr std::array<std::string_view, 16> reloadable = {
    "workers",     "timeout", "startup-timeout",     "graceful-timeout", "watchdog",        "ready-after",
    "chdir",       "env",     "max-rss",             "max-private-mem",  "max-fds-percent", "max-requests",
    "max-lifetime", "max-requests-jitter", "max-lifetime-jitter", "recycle-at-once"};

}  // namespace

std::string pool::reconfigure(const options& next) {
  // The reloadable options that changed, set in a copy that is checked
  // whole, then in opts_ one field at a time (other parts keep references
  // into it); and the others, said to take a restart.
  options merged = opts_;
  std::vector<const option_entry*> applied;
  std::vector<std::string> said, waiting;
  for (const auto& e : option_table()) {
    if (e.show(opts_) == e.show(next)) continue;
    if (std::find(reloadable.begin(), reloadable.end(), e.key) == reloadable.end()) {
      waiting.emplace_back(e.key);
      continue;
    }
    e.copy(merged, next);
    applied.push_back(&e);
    said.emplace_back(e.key);
  }
  // An exec'd program's command (no flag: the words after `--`).
  bool new_command = !opts_.exec.argv.empty() && !next.exec.argv.empty() && next.exec.argv != opts_.exec.argv;
  if (new_command) {
    merged.exec.argv = next.exec.argv;
    said.emplace_back("command");
  }
  try {
    validate(merged);
  } catch (const std::exception& e) {
    return fmt::format("not done: the new options: {}", e.what());
  }
  if (merged.workers != opts_.workers && merged.workers != size_)
    if (auto why = resize(merged.workers); !why.empty()) return fmt::format("not done: workers {}: {}", merged.workers, why);
  for (const auto* e : applied) e->copy(opts_, merged);
  if (new_command) {
    opts_.exec.argv = merged.exec.argv;
    set_command();  // exec_argv_ points into opts_.exec.argv
  }
  if (!said.empty()) log("reload: with new {}", fmt::join(said, ", "));
  if (!waiting.empty()) log("reload: {} changed, which takes a restart: not applied", fmt::join(waiting, ", "));
  return {};
}

}  // namespace ufork
