// A new build that exits before run() (its flags no longer parse, say): the
// old image must come back.
#include <cstdlib>
const char* build_id() { return "B"; }
void before_serving() { std::exit(2); }
void before_run() {}
