// Starts one worker through the installed library and stops once it is ready.
#include <cstdio>

#include <ufork/ufork.hpp>

int main() {
  // An exception thrown inside the library is caught here by its type
  // (a shared libufork must export its typeinfo).
  try {
    ufork::options bad;
    bad.workers = -1;
    ufork::arbiter refused(bad, {});
    std::puts("consumer: workers = -1 was not refused");
    return 1;
  } catch (const ufork::error& e) {
    std::printf("consumer: refused as it should be: %s\n", e.what());
  }
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
