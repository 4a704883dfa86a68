// docs/http.md's first sample, built here so that it compiles
// (tests/docs_samples.sh checks that the document shows this text).
#include <cstdio>

#include <ufork/error.hpp>
#include <ufork/http/server.hpp>

int main() {
  try {
    return ufork::http::serve([](const ufork::http::request& req) {
      ufork::http::response res{boost::beast::http::status::ok, req.version()};
      res.body() = "hello\n";
      return res;
    }, "127.0.0.1:8080");
  } catch (const ufork::error& e) {  // "cannot listen on 127.0.0.1:8080: bind: Address already in use"
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
