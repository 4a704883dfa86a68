// `follow [--json] [--events] [--worker ID]`: any line is a spec or a
// one-line reason; a worker id is never negative but -1 (every worker).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include "control/control_socket.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parsed = ufork::parse_follow(std::string_view(reinterpret_cast<const char*>(data), size));
  if (auto* f = std::get_if<ufork::follow_spec>(&parsed)) {
    if (f->worker < -1) std::abort();
  } else if (std::get<std::string>(parsed).empty()) {
    std::abort();
  }
  return 0;
}
