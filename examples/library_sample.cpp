// The library's sample in README.md and docs/library.md, built here so that it
// compiles (tests/docs_samples.sh checks that the documents show this text).
#include <poll.h>

#include <cstdio>

#include <ufork/ufork.hpp>

// One batch of the program's own work: here, a wait of up to 100 ms that a
// stop ends at once.
void serve_one_batch(ufork::worker& w) {
  pollfd stop{w.stop_fd(), POLLIN, 0};
  (void)::poll(&stop, 1, 100);
}

int main() {
  ufork::options opts;
  opts.workers = 4;
  opts.timeout = std::chrono::seconds(5);

  ufork::hooks hooks;
  hooks.post_fork = [](ufork::worker& w) {
    // Runs in each worker. Either return (ufork's thread then heartbeats for
    // the process, while the program serves from its own threads), or run
    // the program's own loop and beat from it, so a wedged loop is detected:
    while (!w.stopping()) {
      serve_one_batch(w);
      w.heartbeat();  // a store to shared memory, no syscall
    }
  };
  try {
    ufork::arbiter arbiter(opts, hooks);
    arbiter.add_command("flush-cache", "empties the cache", [](const auto&) { return ufork::ok("done"); });
    return arbiter.run();  // until SIGINT / SIGTERM; 0, or 3 if no worker could ever start
  } catch (const ufork::error& e) {  // options it refuses, a control socket it cannot open, ...
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
