// The ufork>> prompt as the arbiter attaches it to the pool, as it attaches
// the control socket (arbiter.cpp): the library's own is prompt.cpp, the
// console (console.hpp, on libedit) with the pool's commands; a program
// that has a prompt of its own links no_prompt.cpp's instead (the Python
// module: libedit and the GNU readline Python loads must not share a
// process). arbiter.cpp is the same object in both. Internal.
#pragma once

#include <memory>

namespace ufork {

class pool;
class commands;

class prompt_attachment {
 public:
  virtual ~prompt_attachment() = default;
  // Around an upgrade's exec: the terminal's settings back as they were
  // (the next image shows its own prompt), and the prompt again if the
  // exec failed.
  virtual void suspend() noexcept = 0;
  virtual void resume() = 0;
};

// The prompt on the pool's terminal, its output drawn above the line being
// typed (it wraps the pool's sink); null when stdin and stdout are not both
// terminals, or when this program has no prompt of ours.
std::unique_ptr<prompt_attachment> attach_prompt(pool& p, commands& c);

}  // namespace ufork
