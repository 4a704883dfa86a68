// A new build that will not read the state it is handed (as one whose
// format is older would): the old image must come back.
#include <cstdlib>
const char* build_id() { return "B"; }
void before_serving() { ::setenv("UFORK_UPGRADE_TEST_REJECT", "1", 1); }
void before_run() {}
