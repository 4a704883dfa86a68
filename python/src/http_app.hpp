// What serve_wsgi's and serve_asgi's servers share: an HTTP helper bound in
// the arbiter, attached to the pool that runs the app.
#pragma once

#include <string>
#include <vector>

#include "ufork/arbiter.hpp"

namespace ufork::python {

class http_app {
 public:
  http_app() = default;
  virtual ~http_app() = default;
  http_app(const http_app&) = delete;
  http_app& operator=(const http_app&) = delete;
  // The HTTP helper runs in each worker after the pool's post_fork.
  virtual void attach(options& pool, hooks& h) = 0;
  virtual void log_to(arbiter& a) noexcept = 0;
  virtual const std::vector<std::string>& addresses() const noexcept = 0;
};

}  // namespace ufork::python
