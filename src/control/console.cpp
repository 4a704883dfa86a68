// The prompt. The terminal is put back as it was when the console closes,
// and also if the arbiter's own code crashes (a fatal signal handler
// restores it before the default action).
#include "control/console.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

// clang-format off
#include <cstdio>
#include <editline/readline.h>
// clang-format on

#include <cstdlib>
#include <cstring>

#include "sys/fd.hpp"
#include "sys/terminal.hpp"
#include "sys/process.hpp"

namespace ufork {
namespace {

constexpr const char* prompt = "ufork>> ";
console* g_console = nullptr;
console::words_fn g_words;
std::vector<std::string> g_candidates;
termios g_saved{};
constexpr int fatal_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
struct sigaction g_old_fatal[std::size(fatal_signals)];

void restore_terminal_on_crash(int sig) {
  sys::set_terminal(STDIN_FILENO, g_saved);  // async-signal-safe
  sys::reraise(sig);
}

char* next_candidate(const char* text, int state) {
  static std::size_t i;
  if (state == 0) i = 0;
  std::size_t len = std::strlen(text);
  while (i < g_candidates.size()) {
    const std::string& c = g_candidates[i++];
    if (c.compare(0, len, text) == 0) return ::strdup(c.c_str());
  }
  return nullptr;
}

char** complete(const char* text, int start, int) {
  rl_attempted_completion_over = 1;  // no file names when nothing matches
  g_candidates = g_words(std::string(rl_line_buffer, static_cast<std::size_t>(start)));
  return rl_completion_matches(text, next_candidate);
}

std::string default_history() {
  const char* state = std::getenv("XDG_STATE_HOME");
  const char* home = std::getenv("HOME");
  std::string dir = state && *state ? std::string(state) : home ? std::string(home) + "/.local/state" : "";
  if (dir.empty()) return {};
  dir += "/ufork";
  sys::make_dirs(dir, 0700);  // best effort: without it there is simply no history file
  return dir + "/history";
}

}  // namespace

bool console::available() noexcept { return sys::is_terminal(STDIN_FILENO) && sys::is_terminal(STDOUT_FILENO); }

console::console(reactor& loop, std::string history_file, line_fn on_line, words_fn completions)
    : loop_(loop), history_(history_file.empty() ? default_history() : std::move(history_file)),
      on_line_(std::move(on_line)) {
  saved_ = sys::terminal_settings(STDIN_FILENO).value_or(termios{});
  g_saved = saved_;
  struct sigaction sa{};
  sa.sa_handler = restore_terminal_on_crash;
  sa.sa_flags = SA_RESETHAND;
  for (std::size_t i = 0; i < std::size(fatal_signals); ++i) sys::set_action(fatal_signals[i], sa, &g_old_fatal[i]);

  g_console = this;
  g_words = std::move(completions);
  rl_catch_signals = 0;  // signals are the arbiter's (signalfd)
  rl_readline_name = "ufork";
  rl_attempted_completion_function = complete;
  using_history();
  stifle_history(1000);
  if (!history_.empty()) (void)read_history(history_.c_str());
  rl_callback_handler_install(prompt, on_line_cb);
  token_ = loop_.add(STDIN_FILENO, EPOLLIN, [this](std::uint32_t events) {
    // The terminal hung up (its window closed): stdin would stay readable
    // forever, and the loop would spin. The pool goes on without a prompt.
    if (events & (EPOLLHUP | EPOLLERR)) return close();
    on_input();
  });
  open_ = true;
}

console::~console() {
  close();
  for (std::size_t i = 0; i < std::size(fatal_signals); ++i) sys::set_action(fatal_signals[i], g_old_fatal[i], nullptr);
  g_console = nullptr;
}

void console::close() noexcept {
  if (!open_) return;
  hide();
  open_ = false;
  loop_.remove(token_);
  rl_callback_handler_remove();
  std::fflush(stdout);
  sys::set_terminal(STDIN_FILENO, saved_);
}

void console::on_input() {
  line_done_ = false;
  rl_callback_read_char();
  // libedit (3.1-2022) leaves its line state behind after the callback and
  // draws no new prompt: installing the handler again resets the line and
  // draws the prompt, as a blocking readline() would.
  if (line_done_ && open_) {
    rl_callback_handler_install(prompt, on_line_cb);
    std::fflush(stdout);
  }
}

void console::on_line_cb(char* line) {
  console* self = g_console;
  self->line_done_ = true;
  if (!line) {  // Ctrl-D
    self->close();
    self->print("console closed; the pool keeps running (SIGINT or SIGTERM stops it)\n");
    return;
  }
  std::string text(line);
  std::free(line);
  if (text.find_first_not_of(" \t") == std::string::npos) return;
  add_history(text.c_str());
  if (!self->history_.empty()) (void)write_history(self->history_.c_str());
  // On a fresh line, and on_input draws the prompt once this returns:
  // output meanwhile needs no hiding and no redraw.
  self->hidden_ = true;
  self->on_line_(text);
  self->hidden_ = false;
}

// libedit writes to the stdout FILE, buffered: everything the console
// writes goes through that stream too, flushed, so the order holds.
void console::hide() noexcept {
  std::fflush(stdout);
  if (!open_ || hidden_) return;
  std::fputs("\r\x1b[K", stdout);
  std::fflush(stdout);
  hidden_ = true;
}

void console::show() noexcept {
  if (!open_ || !hidden_) return;
  hidden_ = false;
  rl_forced_update_display();
  std::fflush(stdout);
}

void console::print(const std::string& text) noexcept {
  hide();
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace ufork
