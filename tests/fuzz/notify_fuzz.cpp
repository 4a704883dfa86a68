// The sd_notify datagram, line by line, as a worker may send anything: each
// line is read as one kind, with its value in range.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/notify.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {  // as pool::on_notify cuts a datagram
    auto end = std::min(rest.find('\n'), rest.size());
    ufork::notify_line n = ufork::parse_notify_line(rest.substr(0, end));
    using k = ufork::notify_line;
    if (n.what == k::timeout && (n.timeout_value.count() < 1 || n.timeout_value.count() > 86'400'000)) std::abort();
    if (n.what == k::error && (n.error_value < 0 || n.error_value >= 4096)) std::abort();
    if (n.text.size() > ufork::max_status) std::abort();
    rest.remove_prefix(std::min(end + 1, rest.size()));
  }
  return 0;
}
