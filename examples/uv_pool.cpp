// A pool whose workers run their own libuv loop (ufork/uv.hpp): each prints
// a line every second from a uv timer, and stops cleanly on Ctrl-C.
#include <ufork/ufork.hpp>
#include <ufork/uv.hpp>

#include <cstdio>

int main() {
  ufork::options o;
  o.workers = 2;
  ufork::hooks h;
  h.post_fork = [](ufork::worker& w) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_timer_t tick;
    uv_timer_init(&loop, &tick);
    tick.data = &w;
    uv_timer_start(
        &tick, [](uv_timer_t* t) { std::printf("worker %d: tick\n", static_cast<ufork::worker*>(t->data)->id()); },
        0, 1000);
    {
      ufork::uv_worker attached(w, &loop, [&] {
        uv_close(reinterpret_cast<uv_handle_t*>(&tick), nullptr);  // the program's own work ends...
        attached.detach();  // ...and the attachment's: uv_run() returns
      });
      uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_loop_close(&loop);
  };
  return ufork::arbiter(o, h).run();
}
