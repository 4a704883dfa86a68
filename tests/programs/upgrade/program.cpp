// The program of the upgrade tests: an HTTP pool whose workers answer with
// their build's id ("build A"). Each variant (variant_*.cpp) is linked with
// this file into its own executable; a test puts one at a path, starts it,
// puts another there, and asks for an upgrade.
//
//   upgrade_program CONTROL_SOCKET
//
// Each worker writes half a line when it starts and the rest when it stops,
// so a line that straddles an upgrade shows whether it arrives whole.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "ufork/http/server.hpp"

const char* build_id();
void before_serving();  // a variant's ways to fail before run(): first thing in main(),
void before_run();      // and with the socket bound and the arbiter made

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CONTROL_SOCKET\n", argv[0]);
    return 2;
  }
  before_serving();
  ufork::http::server_options o;
  o.pool.workers = 2;
  o.pool.control_path = argv[1];
  o.pool.console = false;
  ufork::arbiter* pool = nullptr;
  o.configure = [&pool](ufork::arbiter& a) {
    pool = &a;
    before_run();
  };
  o.hooks.on_worker_ready = [&pool](const ufork::worker_info& w) {
    if (pool) pool->log("event ready slot=" + std::to_string(w.id) + " pid=" + std::to_string(w.pid) + " build=" + build_id());
  };
  o.hooks.post_fork = [](ufork::worker&) {
    std::string half = "half a line from " + std::to_string(::getpid());
    (void)!::write(STDOUT_FILENO, half.data(), half.size());
  };
  o.hooks.child_pre_exit = [](ufork::worker&) { (void)!::write(STDOUT_FILENO, ", and its end\n", 14); };
  const std::string body = std::string("build ") + build_id();
  try {
    return ufork::http::serve(
        [&body](const ufork::http::request& req) {
          ufork::http::response res{boost::beast::http::status::ok, req.version()};
          res.body() = body;
          return res;
        },
        "127.0.0.1:0", o);
  } catch (const std::exception& e) {  // what was made is destroyed on the way here
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
}
