// A new build that dies of a fatal signal before run(): the old image must
// come back.
#include <csignal>
const char* build_id() { return "B"; }
void before_serving() { std::raise(SIGSEGV); }
void before_run() {}
