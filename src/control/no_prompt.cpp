// A program with no prompt of ours (prompt.hpp): the Python module, whose
// prompt is Python's.
#include "control/prompt.hpp"

namespace ufork {

std::unique_ptr<prompt_attachment> attach_prompt(pool&, commands&) { return nullptr; }

}  // namespace ufork
