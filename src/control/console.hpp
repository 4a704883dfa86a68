// console: the ufork>> prompt on the arbiter's terminal, through libedit's
// readline-compatible callback interface, so reading a key never blocks the
// event loop. It knows nothing of what commands mean. One per process
// (libedit's readline emulation is global).
#pragma once

#include <termios.h>

#include <functional>
#include <string>
#include <vector>

#include "core/reactor.hpp"

namespace ufork {

class console {
 public:
  using line_fn = std::function<void(const std::string& line)>;
  using words_fn = std::function<std::vector<std::string>(const std::string& line_so_far)>;

  // True when stdin and stdout are both terminals.
  static bool available() noexcept;

  // Shows the prompt. on_line gets each line typed; completions gives the
  // candidate words for the word being completed. Ctrl-D closes the prompt.
  console(reactor& loop, std::string history_file, line_fn on_line, words_fn completions);
  ~console();  // the terminal's settings back as they were
  console(const console&) = delete;
  console& operator=(const console&) = delete;

  bool open() const noexcept { return open_; }
  // Around any output to the terminal: clear the prompt line, then redraw
  // the prompt and what was being typed.
  void hide() noexcept;
  void show() noexcept;
  // Writes text above the prompt.
  void print(const std::string& text) noexcept;
  // Closes the prompt (Ctrl-D does this); the pool keeps running.
  void close() noexcept;

 private:
  void on_input();
  static void on_line_cb(char* line);
  reactor& loop_;
  std::string history_;
  line_fn on_line_;
  reactor::token token_ = 0;
  bool open_ = false;
  bool hidden_ = false;
  bool line_done_ = false;
  termios saved_{};
};

}  // namespace ufork
