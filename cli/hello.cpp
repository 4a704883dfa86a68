// `ufork hello`: uFork's example, a pre-forked server answering every request
// with "Hello, World! (from PID <pid>)".
#include <unistd.h>

#include <iostream>

#include "commands.hpp"
#include "ufork/error.hpp"
#include "ufork/http/server.hpp"

namespace ufork::cli {

int run_hello(const hello_options& o) {
  http::server_options so;
  so.pool.workers = o.workers;
  so.pool.timeout = std::chrono::milliseconds(static_cast<long>(o.timeout_seconds * 1000));
  so.pool.control_path = o.control;
  so.reuseport = o.reuseport;
  so.on_listening = [](const std::string& address) {
    std::cout << "ufork hello: listening on http://" << address << "/ (Ctrl-C stops)" << std::endl;
  };
  auto hello = [](const http::request& req) {
    // Made on the first request, in the worker: its own pid.
    static const std::string body = "Hello, World! (from PID " + std::to_string(::getpid()) + ")\n";
    http::response res{boost::beast::http::status::ok, req.version()};
    res.set(boost::beast::http::field::content_type, "text/plain");
    res.body() = body;
    return res;
  };
  try {
    return http::serve(hello, o.bind, so);
  } catch (const std::exception& e) {
    std::cerr << "ufork hello: " << e.what() << "\n";
    return exit_runtime;
  }
}

}  // namespace ufork::cli
