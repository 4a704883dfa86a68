// A new build that fails after it has taken back the listening socket and
// made its arbiter, and destroys both on its way out of main(): what it
// took were copies, so the old image gets the pool back whole.
#include <stdexcept>
const char* build_id() { return "B"; }
void before_serving() {}
void before_run() { throw std::runtime_error("B fails late"); }
