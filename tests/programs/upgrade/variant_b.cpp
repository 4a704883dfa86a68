const char* build_id() { return "B"; }
void before_serving() {}
void before_run() {}
