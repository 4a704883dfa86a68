// serve_wsgi: the C++ HTTP helper in each worker, calling a PEP 3333
// application under the GIL, taken for each request and each piece of a
// streamed body, and released while the worker's loop waits.
#pragma once

#include <utility>  // before any Boost header (Boost 1.74's awaitable.hpp)

#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

#include "http_app.hpp"
#include "ufork/http/server.hpp"

namespace ufork::python {

class wsgi_server final : public http_app {
 public:
  // Binds each of `addresses` ("HOST:PORT", "unix:PATH", "fd:N") now, in the
  // arbiter. Throws ufork::error.
  // A request from a peer in forwarded_allow_ips ("*": any) gets
  // REMOTE_ADDR and wsgi.url_scheme from its Forwarded or X-Forwarded-For
  // and X-Forwarded-Proto headers; from any other, the connection's own.
  // access_log: an fd (O_APPEND) for a line per request in the combined
  // format, or -1.
  wsgi_server(pybind11::object app, const std::vector<std::string>& addresses, http::http_options options,
              std::vector<std::string> forwarded_allow_ips, int access_log = -1);
  ~wsgi_server() override;
  // The application, for a server made with None (imported in each worker).
  void load(pybind11::object app);
  const std::string& address() const noexcept { return server_.address(); }
  const std::vector<std::string>& addresses() const noexcept override { return server_.addresses(); }
  void attach(options& pool, hooks& h) override { server_.attach(pool, h); }
  void log_to(arbiter& a) noexcept override { server_.log_to(a); }

 private:
  struct app;
  std::shared_ptr<app> app_;
  http::server server_;
};

}  // namespace ufork::python
