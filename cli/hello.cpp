// `ufork hello`: uFork's example, a pre-forked server answering every request
// with "Hello, World! (from PID <pid>)".
#include <unistd.h>

#include <cstdlib>

#include "commands.hpp"
#include "listen.hpp"
#include "service.hpp"
#include "ufork/http/server.hpp"

namespace ufork::cli {

int run_hello(hello_options o) {
  // Socket activation: the manager's socket instead of --bind.
  if (activated_count() >= 1) {
    o.bind = "fd:3";
    forget_activation();
  }
  service svc("ufork hello", o);
  return svc.run([&] {
    http::server_options so;
    svc.apply(so.pool);
    so.pool.timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_seconds * 1000));
    so.reuseport = o.reuseport;
    // Its workers need nothing but the listening socket: not even an fd this
    // command inherited from the shell that started it.
    so.pool.strict_fds = true;
    // Ready when every first worker is: then the server answers.
    arbiter* pool = nullptr;
    so.configure = [&](arbiter& a) { pool = &a; };
    so.hooks.on_worker_ready = svc.ready_hook(pool);
    auto hello = [](const http::request& req) {
      // Made on the first request, in the worker: its own pid.
      static const std::string body = "Hello, World! (from PID " + std::to_string(::getpid()) + ")\n";
      http::response res{boost::beast::http::status::ok, req.version()};
      res.set(boost::beast::http::field::content_type, "text/plain");
      res.body() = body;
      return res;
    };
    return http::serve(hello, o.bind, so);
  });
}

}  // namespace ufork::cli
