// Links the HTTP helper from the installed package; a bad address must come
// back as ufork::error naming it.
#include <cstdio>

#include <ufork/error.hpp>
#include <ufork/http/server.hpp>

int main() {
  try {
    ufork::http::serve([](const ufork::http::request& req) { return ufork::http::response{{}, req.version()}; },
                       "not-an-endpoint");
  } catch (const ufork::error& e) {
    std::printf("consumer_http: %s\n", e.what());
    return 0;
  }
  return 1;
}
