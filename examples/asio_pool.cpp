// A pool whose workers run their own Boost.Asio loop (ufork/asio.hpp): each
// prints a line every second from a timer of its own, and stops cleanly on
// Ctrl-C. A handler that wedged the loop would get its worker replaced.
#include <ufork/asio.hpp>
#include <ufork/ufork.hpp>

#include <cstdio>

int main() {
  ufork::options o;
  o.workers = 2;
  ufork::hooks h;
  h.post_fork = [](ufork::worker& w) {
    boost::asio::io_context io;
    boost::asio::steady_timer tick(io);
    std::function<void()> again = [&] {
      std::printf("worker %d: tick\n", w.id());
      tick.expires_after(std::chrono::seconds(1));
      tick.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) again();
      });
    };
    ufork::asio_worker attached(w, io, [&] {
      tick.cancel();  // the program's own work ends...
      attached.detach();  // ...and the attachment's: io.run() returns
    });
    again();
    io.run();
  };
  return ufork::arbiter(o, h).run();
}
