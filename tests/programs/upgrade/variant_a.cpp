const char* build_id() { return "A"; }
void before_serving() {}
void before_run() {}
