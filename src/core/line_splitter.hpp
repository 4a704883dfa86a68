// line_splitter: cuts a byte stream into lines. Pure: no fds, no formatting.
// A line longer than max_line is delivered in pieces of max_line bytes; the
// bytes after the last newline are kept until more arrive or finish().
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ufork {

class line_splitter {
 public:
  explicit line_splitter(std::size_t max_line) : max_(max_line == 0 ? 1 : max_line) {}

  template <class Emit>  // void(std::string_view line), without the newline
  void feed(std::string_view data, Emit&& emit) {
    while (!data.empty()) {
      auto nl = data.find('\n');
      std::string_view head = data.substr(0, nl);
      if (partial_.empty() && nl != std::string_view::npos && head.size() <= max_) {
        emit(head);  // the common case: no copy
      } else {
        partial_.append(head);
        spill(emit);
        if (nl != std::string_view::npos) {
          emit(std::string_view(partial_));
          partial_.clear();
        }
      }
      if (nl == std::string_view::npos) break;
      data.remove_prefix(nl + 1);
    }
  }

  // The bytes after the last newline, kept for the next feed.
  const std::string& pending() const noexcept { return partial_; }

  // End of stream: the last line without its newline, if any.
  template <class Emit>
  void finish(Emit&& emit) {
    if (!partial_.empty()) emit(std::string_view(partial_));
    partial_.clear();
  }

 private:
  template <class Emit>
  void spill(Emit& emit) {
    std::size_t off = 0;
    while (partial_.size() - off > max_) {
      emit(std::string_view(partial_).substr(off, max_));
      off += max_;
    }
    partial_.erase(0, off);
  }

  std::size_t max_;
  std::string partial_;
};

}  // namespace ufork
