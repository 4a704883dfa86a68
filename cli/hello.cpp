// `ufork hello`: uFork's example, a pre-forked server answering every request
// with "Hello, World! (from PID <pid>)".
#include <unistd.h>

#include <cstdlib>

#include <iostream>
#include <system_error>

#include "commands.hpp"
#include "net/listener.hpp"
#include "sys/process.hpp"
#include "listen.hpp"
#include "service.hpp"
#include "ufork/error.hpp"
#include "ufork/http/server.hpp"

namespace ufork::cli {

int run_hello(hello_options o) {
  // Socket activation: the manager's socket instead of --bind.
  if (activated_count() >= 1) {
    o.bind = "fd:3";
    forget_activation();
  }
  // --reuseport on an address another process listens on would share its
  // traffic with it, silently: a probe bind without SO_REUSEPORT tells. (An
  // instance still starting, whose workers do not listen yet, holds the port
  // without listening: the probe, which must allow TIME_WAIT, misses it.)
  if (o.reuseport && !o.join && !o.bind.starts_with("fd:") && !o.bind.ends_with(":0")) {
    try {
      (void)net::bind_endpoint(o.bind, false, false, 0);
    } catch (const ufork::error& e) {
      if (e.code() == std::errc::address_in_use) {
        std::cerr << "ufork hello: " << o.bind << " is in use by another process; --reuseport would share its "
                     "connections with it: stop it first, or add --join to share them on purpose\n";
        return exit_runtime;
      }
    }
  }
  service svc("ufork hello", o);
  return svc.run([&] {
    http::server_options so;
    svc.apply(so.pool);
    so.reuseport = o.reuseport;
    so.keepalive_timeout = o.keep_alive_ms();
    so.request_timeout = o.request_timeout_ms();
    // Its workers need nothing but the listening socket: not even an fd this
    // command inherited from the shell that started it.
    so.pool.strict_fds = true;
    // Ready when every first worker is: then the server answers.
    arbiter* pool = nullptr;
    so.configure = [&](arbiter& a) { pool = &a; };
    so.hooks.on_worker_ready = svc.ready_hook(pool);
    so.hooks.reload_options = svc.reload_hook(o, pool);
    auto hello = [](const http::request& req) {
      // Made on the first request, in the worker: its own pid.
      static const std::string body = "Hello, World! (from PID " + std::to_string(sys::own_pid()) + ")\n";
      http::response res{boost::beast::http::status::ok, req.version()};
      res.set(boost::beast::http::field::content_type, "text/plain");
      res.body() = body;
      return res;
    };
    return http::serve(hello, o.bind, so);
  });
}

}  // namespace ufork::cli
