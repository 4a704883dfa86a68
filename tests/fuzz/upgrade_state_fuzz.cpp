// The upgrade state reader: a new image reads what an old one wrote, and a
// state it cannot read must be refused with a reason, never a crash. What
// it accepts is written again the same way (encode(decode(x)) reads back to
// the same text).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/upgrade.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ufork::upgrade;
  auto decoded = decode(std::string_view(reinterpret_cast<const char*>(data), size));
  if (auto* s = std::get_if<state>(&decoded)) {
    std::string again = encode(*s);
    auto round = decode(again);
    auto* r = std::get_if<state>(&round);
    if (!r || encode(*r) != again) std::abort();
  } else if (std::get<std::string>(decoded).empty()) {
    std::abort();  // a refusal names its reason
  }
  return 0;
}
