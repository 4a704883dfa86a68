// The worker output line cutter: any bytes, cut at any points, give lines
// of at most max_line bytes without a newline that join back to the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/line_splitter.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::size_t max_line = data[0] % 64 + 1;  // small, so long lines are common
  std::size_t chunk = data[1] % 32 + 1;
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  ufork::line_splitter cut(max_line);
  std::string joined;
  bool last_full = true;  // the previous piece was max_line long (the line goes on)
  auto emit = [&](std::string_view line) {
    if (line.size() > max_line || line.find('\n') != std::string_view::npos) std::abort();
    if (!joined.empty() && !last_full) joined += '\n';
    joined.append(line);
    last_full = line.size() == max_line;
  };
  for (std::size_t off = 0; off < in.size(); off += chunk) cut.feed(in.substr(off, chunk), emit);
  cut.finish(emit);
  // Without the newlines and pieces' boundaries, the same bytes in order.
  std::string a, b;
  for (char c : in)
    if (c != '\n') a += c;
  for (char c : joined)
    if (c != '\n') b += c;
  if (a != b) std::abort();
  return 0;
}
