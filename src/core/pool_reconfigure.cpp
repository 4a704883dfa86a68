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
  std::vector<std::string> applied, waiting;
  for (const auto& e : option_table())
    if (e.show(opts_) != e.show(next))
      (std::find(reloadable.begin(), reloadable.end(), e.key) != reloadable.end() ? applied : waiting).emplace_back(e.key);
  bool exec = !opts_.exec.argv.empty();
  bool new_command = exec && !next.exec.argv.empty() && next.exec.argv != opts_.exec.argv;
  if (new_command) applied.emplace_back("command");

  // Checked whole, then assigned field by field: other parts keep
  // references into opts_.
  options merged = opts_;
  auto take = [&next, exec](options& o) {
    o.workers = next.workers;
    o.timeout = next.timeout;
    o.startup_timeout = next.startup_timeout;
    o.graceful_timeout = next.graceful_timeout;
    o.recycle = next.recycle;
    if (!exec) return;
    o.exec.env = next.exec.env;
    o.exec.chdir = next.exec.chdir;
    o.exec.ready_after = next.exec.ready_after;
    o.exec.watchdog = next.exec.watchdog;
    if (!next.exec.argv.empty()) o.exec.argv = next.exec.argv;
  };
  take(merged);
  try {
    validate(merged);
  } catch (const std::exception& e) {
    return fmt::format("not done: the new options: {}", e.what());
  }
  if (merged.workers != opts_.workers && merged.workers != size_)
    if (auto why = resize(merged.workers); !why.empty()) return fmt::format("not done: workers {}: {}", merged.workers, why);
  take(opts_);
  if (exec) set_command();  // exec_argv_ points into opts_.exec.argv
  if (!applied.empty()) log("reload: with new {}", fmt::join(applied, ", "));
  if (!waiting.empty()) log("reload: {} changed, which takes a restart: not applied", fmt::join(waiting, ", "));
  return {};
}

}  // namespace ufork
