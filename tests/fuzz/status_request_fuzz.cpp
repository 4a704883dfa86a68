// The status page's request parser: any head gets one HTTP/1.1 answer,
// and none of the paths that answer 200 is a verb.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "control/status_server.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view request(reinterpret_cast<const char*>(data), size);
  std::string asked;
  std::string out = ufork::answer_status_request(request, [&](const std::string& command, bool) {
    asked = command;
    return std::string("{}");
  });
  if (!out.starts_with("HTTP/1.1 ") || out.find("\r\n\r\n") == std::string::npos) std::abort();
  if (!asked.empty() && asked != "metrics" && asked != "status" && asked != "workers" && asked != "dead") std::abort();
  return 0;
}
