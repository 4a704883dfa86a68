// A new build that fails in main, before run(): the old image must come back.
#include <stdexcept>
const char* build_id() { return "B"; }
void before_serving() { throw std::runtime_error("B cannot start"); }
void before_run() {}
