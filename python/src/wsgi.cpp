#include "wsgi.hpp"

#include "gil.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "request_view.hpp"
#include "sys/fd.hpp"

namespace ufork::python {
namespace {

namespace py = pybind11;
namespace bhttp = boost::beast::http;

std::string_view sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// PATH_INFO: %XX decoded, as bytes read as latin-1 (PEP 3333's native string).
py::str path_info(std::string_view path) {
  std::string out = percent_decoded(path);
  return py::reinterpret_steal<py::str>(PyUnicode_DecodeLatin1(out.data(), static_cast<Py_ssize_t>(out.size()), nullptr));
}

py::str latin1(std::string_view s) {
  return py::reinterpret_steal<py::str>(PyUnicode_DecodeLatin1(s.data(), static_cast<Py_ssize_t>(s.size()), nullptr));
}

// "HTTP_ACCEPT_ENCODING" for Accept-Encoding.
std::string cgi_name(std::string_view field) {
  std::string out = "HTTP_";
  for (char c : field) out.push_back(c == '-' ? '_' : static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c));
  return out;
}

void append_bytes(std::string& out, const py::handle& item) {
  if (!PyBytes_Check(item.ptr())) throw py::type_error("a WSGI application must yield bytes");
  char* data;
  Py_ssize_t n;
  PyBytes_AsStringAndSize(item.ptr(), &data, &n);
  out.append(data, static_cast<std::size_t>(n));
}

// What start_response was given.
struct started {
  bool called = false, sent = false;
  std::string status;
  py::list headers;
  std::string written;  // by the legacy write()
};

// The Content-Length an application gave start_response, if it gave one of
// digits only.
std::optional<std::size_t> declared_length(const py::list& headers) {
  for (auto h : headers) {
    auto pair = h.cast<py::tuple>();
    if (bhttp::string_to_field(pair[0].cast<std::string>()) != bhttp::field::content_length) continue;
    auto value = pair[1].cast<std::string>();
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size() || value.empty()) return std::nullopt;
    return n;
  }
  return std::nullopt;
}

// An application's iterable being sent: the rest of it, pulled one piece at
// a time, and its close() called once, whatever ends the response.
struct streaming {
  py::object result, it;
  bool closed = false;
  void close() {
    if (closed) return;
    closed = true;
    if (py::hasattr(result, "close")) result.attr("close")();
  }
  // discard_as_unraisable throws only for an error already restored, which
  // nothing here does.
  ~streaming() {  // NOLINT(bugprone-exception-escape)
    try {
      close();
    } catch (py::error_already_set& e) {
      e.discard_as_unraisable("the response's close()");  // printed, as Python does in a __del__
    } catch (...) {  // not Python's: a C++ error in pybind11 itself
      PySys_WriteStderr("the response's close() failed\n");
    }
  }
};

}  // namespace

struct wsgi_server::app {
  py::object fn, bytes_io;
  py::dict base;  // the environ's constant part
  std::vector<std::string> trusted;  // forwarded_allow_ips ("*": every peer)
  int access_log = -1;
  bool several = false;  // addresses: SERVER_NAME and SERVER_PORT are the connection's own

  http::answer operator()(const http::request& req) {
    py::gil_scoped_acquire gil;
    std::shared_ptr<access_entry> entry;
    try {
      py::dict env = environ(req);
      if (access_log >= 0) entry = std::make_shared<access_entry>(access_log, remote_of(env), req);
      http::answer a = call(req, env);
      if (entry) {
        entry->status = a.res.result_int();
        if (!a.stream) entry->bytes = req.method() == bhttp::verb::head ? 0 : a.res.body().size();
        else a.stream = [entry, inner = std::move(a.stream)](std::string& out) {
          std::size_t before = out.size();
          bool more = inner(out);
          entry->bytes += out.size() - before;
          return more;
        };
      }
      return a;
    } catch (py::error_already_set& e) {
      e.restore();
      PyErr_Print();  // the traceback, to the worker's stderr: its log
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ufork wsgi: %s\n", e.what());
    }
    http::response res{bhttp::status::internal_server_error, req.version()};
    res.set(bhttp::field::content_type, "text/plain");
    res.body() = "internal server error\n";
    if (entry) entry->status = 500, entry->bytes = res.body().size();
    return res;
  }

  static std::string remote_of(const py::dict& env) {
    return env.contains("REMOTE_ADDR") ? py::str(env["REMOTE_ADDR"]).cast<std::string>() : "-";
  }

  py::dict environ(const http::request& req) {
    py::dict env = py::reinterpret_steal<py::dict>(PyDict_Copy(base.ptr()));
    std::string_view target = sv(req.target());
    auto q = target.find('?');
    env["REQUEST_METHOD"] = latin1(sv(req.method_string()));
    env["PATH_INFO"] = path_info(target.substr(0, q));
    env["QUERY_STRING"] = latin1(q == std::string_view::npos ? std::string_view() : target.substr(q + 1));
    env["SERVER_PROTOCOL"] = req.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
    for (const auto& f : req) {
      std::string_view name = sv(f.name_string());
      std::string key = f.name() == bhttp::field::content_type     ? "CONTENT_TYPE"
                        : f.name() == bhttp::field::content_length ? "CONTENT_LENGTH"
                                                                   : cgi_name(name);
      py::str k(key);
      if (env.contains(k) && key.starts_with("HTTP_"))  // repeated: joined, as CGI does
        env[k] = py::str(env[k]) + py::str(",") + latin1(sv(f.value()));
      else
        env[k] = latin1(sv(f.value()));
    }
    env["wsgi.input"] = bytes_io(py::bytes(req.body()));
    if (several)
      if (auto here = http::current_local()) {
        env["SERVER_NAME"] = here->host;
        env["SERVER_PORT"] = std::to_string(here->port);
      }
    // The client: the connection's peer, or what a proxy it trusts says.
    client_view who = client_of(req, trusted);
    if (!who.addr.empty()) env["REMOTE_ADDR"] = who.addr;
    if (who.port) env["REMOTE_PORT"] = std::to_string(who.port);
    env["wsgi.url_scheme"] = who.scheme;
    return env;
  }

  http::answer call(const http::request& req, const py::dict& env) {
    auto st = std::make_shared<started>();
    py::object write = py::cpp_function([st](const py::bytes& data) { append_bytes(st->written, data); });
    py::cpp_function start_response(
        [st, write](const std::string& status, py::list headers, const py::object& exc_info) -> py::object {
          if (!exc_info.is_none()) {
            if (st->sent) {  // too late to change the answer: raise it again
              PyErr_SetObject(exc_info[py::int_(0)].ptr(), exc_info[py::int_(1)].ptr());
              throw py::error_already_set();
            }
          } else if (st->called) {
            throw py::value_error("start_response called a second time without exc_info");
          }
          if (status.size() < 4 || status[3] != ' ' || !http::header_problem("status", status).empty())
            throw py::value_error("status must be like '200 OK' (no CR, LF or NUL): " + py::repr(py::str(status)).cast<std::string>());
          for (auto h : headers) {  // response splitting: refused here, where the traceback names the app's line
            auto pair = h.cast<py::tuple>();
            auto why = http::header_problem(pair[0].cast<std::string>(), pair[1].cast<std::string>());
            if (!why.empty()) throw py::value_error("header " + py::repr(pair[0]).cast<std::string>() + ": " + why);
          }
          st->called = true;
          st->status = status;
          st->headers = std::move(headers);
          return write;
        },
        py::arg("status"), py::arg("headers"), py::arg("exc_info") = py::none());

    py::object result = fn(env, start_response);
    auto s = shared_with_gil(new streaming{result, py::none()});
    std::string first = std::move(st->written);
    bool more = false;
    if (PyList_Check(result.ptr()) || PyTuple_Check(result.ptr())) {
      for (auto item : result) append_bytes(first, item);
    } else {
      s->it = py::iter(result);
      // Up to the first piece that is not empty: start_response may come
      // as late as that.
      while (first.empty()) {
        PyObject* item = PyIter_Next(s->it.ptr());
        if (!item) {
          if (PyErr_Occurred()) throw py::error_already_set();
          break;
        }
        append_bytes(first, py::reinterpret_steal<py::object>(item));
        more = true;
      }
      if (!first.empty()) more = true;
      // The whole body already, by the app's own Content-Length (Django's
      // and Flask's responses say theirs): sent with its length, not
      // chunked; the iterable closed now, as PEP 3333 allows.
      if (more && declared_length(st->headers) == first.size()) {
        s->close();
        more = false;
      }
    }
    if (!st->called) throw std::runtime_error("the application returned without calling start_response");
    st->sent = true;

    http::response res{static_cast<bhttp::status>(std::stoi(st->status.substr(0, 3))), req.version()};
    res.reason(st->status.substr(4));
    for (auto h : st->headers) {
      auto pair = h.cast<py::tuple>();
      auto name = pair[0].cast<std::string>();
      if (bhttp::string_to_field(name) == bhttp::field::transfer_encoding)
        continue;  // the helper frames the body itself (a Content-Length kept is written only for a bodiless HEAD answer)
      res.insert(name, pair[1].cast<std::string>());
    }
    if (!more) {
      s->close();
      res.body() = std::move(first);
      return res;
    }
    // The rest streamed: each piece pulled under the GIL when the previous
    // one is written, so a client is fed no faster than it reads.
    return {std::move(res), [s, first = std::move(first)](std::string& out) mutable {
              if (!first.empty()) {
                out += first;
                first.clear();
                return true;
              }
              py::gil_scoped_acquire gil;
              try {
                for (;;) {
                  PyObject* item = PyIter_Next(s->it.ptr());
                  if (!item) {
                    if (PyErr_Occurred()) throw py::error_already_set();
                    s->close();
                    return false;
                  }
                  append_bytes(out, py::reinterpret_steal<py::object>(item));
                  if (!out.empty()) return true;
                }
              } catch (py::error_already_set& e) {
                e.restore();
                PyErr_Print();
                throw std::runtime_error("the application's iterable failed");
              }
            }};
  }
};

wsgi_server::wsgi_server(py::object fn, const std::vector<std::string>& addresses, http::http_options options,
                         std::vector<std::string> forwarded_allow_ips, int access_log)
    : app_(shared_with_gil(new app{std::move(fn), py::module_::import("io").attr("BytesIO"), py::dict(),
                                   std::move(forwarded_allow_ips), access_log})),
      server_([a = app_](const http::request& req) { return (*a)(req); }, addresses, std::move(options)) {
  app_->several = server_.addresses().size() > 1;
  const std::string& bound = server_.address();
  auto colon = bound.rfind(':');
  py::dict& b = app_->base;
  b["SERVER_NAME"] = bound.substr(0, colon);
  b["SERVER_PORT"] = bound.substr(colon + 1);
  b["SERVER_SOFTWARE"] = "ufork";
  b["SCRIPT_NAME"] = "";
  b["wsgi.version"] = py::make_tuple(1, 0);
  b["wsgi.url_scheme"] = "http";
  b["wsgi.errors"] = py::module_::import("sys").attr("stderr");
  b["wsgi.multithread"] = false;
  b["wsgi.multiprocess"] = true;
  b["wsgi.run_once"] = false;
}

wsgi_server::~wsgi_server() = default;

void wsgi_server::load(py::object fn) { app_->fn = std::move(fn); }

}  // namespace ufork::python
