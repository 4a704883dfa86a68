// Not a ufork program: it dies of SIGSEGV in a static initializer, before
// main() and before any code of ufork's could run (an upgrade's new file
// that cannot give the pool back).
#include <csignal>

namespace {
const int crash = [] {
  std::raise(SIGSEGV);
  return 0;
}();
}  // namespace

int main() { return crash; }
