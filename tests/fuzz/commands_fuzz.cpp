// The command parser (words, numbers, signal names, --json) behind the
// prompt, the control socket and arbiter::execute: any line gets an
// answer that is one line of JSON. The pool is not running: no fork.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "control/commands.hpp"
#include "core/pool.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ufork::options o;
  o.workers = 2;
  o.sink = ufork::make_callback_sink([](const ufork::log_line&) {});
  ufork::pool p(o, {});
  ufork::commands c(p);
  std::string_view all(reinterpret_cast<const char*>(data), size);
  while (!all.empty()) {  // each line a command, as a client would send them
    auto nl = all.find('\n');
    std::string answer = ufork::answer_line(c.execute(all.substr(0, nl)));
    if (answer.find('\n') != std::string::npos || !nlohmann::json::accept(answer)) std::abort();
    if (nl == std::string_view::npos) break;
    all.remove_prefix(nl + 1);
  }
  return 0;
}
