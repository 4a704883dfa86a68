// A pool whose workers say hello, then heartbeat from their own loop and
// report now and then. Ctrl-C stops it cleanly; try `kill -9` on a worker's
// pid and watch it come back.
#include <poll.h>

#include <cstdio>

#include "ufork/ufork.hpp"

int main() {
  ufork::options opts;
  opts.workers = 3;
  opts.timeout = std::chrono::seconds(5);

  ufork::hooks hooks;
  hooks.post_fork = [](ufork::worker& w) {
    std::printf("hello from worker %d (generation %u, pid %d)\n", w.id(), w.generation(), getpid());
    // The program's own loop: it beats, so a wedged loop would be detected.
    for (int tick = 1; !w.stopping(); ++tick) {
      w.heartbeat();
      if (tick % 10 == 0) std::printf("worker %d still here after %d s\n", w.id(), tick);
      pollfd pfd{w.stop_fd(), POLLIN, 0};
      (void)poll(&pfd, 1, 1000);
    }
    std::printf("worker %d stopping\n", w.id());
  };

  try {
    ufork::arbiter arbiter(opts, hooks);
    return arbiter.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hello_pool: %s\n", e.what());
    return 1;
  }
}
