// The library's ufork>> prompt (prompt.hpp): the console with the pool's
// commands, and the sink that draws the pool's lines above it.
#include "control/prompt.hpp"

#include <utility>

#include "control/commands.hpp"
#include "control/console.hpp"
#include "core/pool.hpp"

namespace ufork {
namespace {

// The console while it shows; shared by the attachment and its sink, which
// the pool may hold a moment longer (until its own sink is back).
struct shown {
  std::unique_ptr<console> prompt;
};

// The terminal's sink while the prompt shows: output goes above the line
// being typed, which is redrawn after it.
class console_sink final : public log_sink {
 public:
  console_sink(std::shared_ptr<log_sink> inner, std::shared_ptr<shown> s) : inner_(std::move(inner)), shown_(std::move(s)) {}
  void write(const log_line& line) override {
    if (shown_->prompt) shown_->prompt->hide();
    inner_->write(line);
    dirty_ = true;
  }
  void flush() override {
    if (!dirty_ || !shown_->prompt) return inner_->flush();
    shown_->prompt->hide();
    inner_->flush();
    shown_->prompt->show();
    dirty_ = false;
  }
  void reopen() override { inner_->reopen(); }
  std::uint64_t lost() const override { return inner_->lost(); }

 private:
  std::shared_ptr<log_sink> inner_;
  std::shared_ptr<shown> shown_;
  bool dirty_ = false;
};

class console_prompt final : public prompt_attachment {
 public:
  console_prompt(pool& p, commands& c) : pool_(p), commands_(c) {
    open();
    pool_.set_sink(std::make_shared<console_sink>(pool_.sink(), shown_));
  }
  ~console_prompt() override { shown_->prompt.reset(); }
  void suspend() noexcept override {
    was_open_ = shown_->prompt != nullptr;
    shown_->prompt.reset();
  }
  void resume() override {
    if (std::exchange(was_open_, false)) open();
  }

 private:
  void open() {
    shown_->prompt = std::make_unique<console>(
        pool_.loop(), pool_.opts().history_file, [this](const std::string& line) { on_line(line); },
        [this](const std::string& so_far) { return commands_.completions(so_far); });
  }
  void on_line(const std::string& line) {
    pool_.sink()->flush();
    reply r = commands_.execute(line);
    bool json = line.find("--json") != std::string::npos;
    shown_->prompt->print((json ? answer_line(r) : r.ok ? r.text : "error: " + r.text) + "\n");
  }

  pool& pool_;
  commands& commands_;
  std::shared_ptr<shown> shown_ = std::make_shared<shown>();
  bool was_open_ = false;
};

}  // namespace

std::unique_ptr<prompt_attachment> attach_prompt(pool& p, commands& c) {
  if (!console::available()) return nullptr;
  return std::make_unique<console_prompt>(p, c);
}

}  // namespace ufork
