// Starts one worker through the installed library and stops once it is ready.
#include <cstdio>

#include <ufork/ufork.hpp>

int main() {
  ufork::options opts;
  opts.workers = 1;
  opts.handle_signals = false;
  ufork::arbiter* self = nullptr;
  ufork::hooks hooks;
  hooks.on_worker_ready = [&](const ufork::worker_info&) { self->stop(); };
  ufork::arbiter arbiter(opts, hooks);
  self = &arbiter;
  int code = arbiter.run();
  std::printf("consumer: ufork %s, run() returned %d\n", UFORK_VERSION_STRING, code);
  return code;
}
