// What the tests of the ufork command share: starting it as a pool_process
// (with variables a service manager would have set), asking its workers,
// and its control socket. Header-only: UFORK_CLI_PATH is the binary's define.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "harness.hpp"

namespace ufork::test {

using json = nlohmann::json;

inline const std::string notify_worker = UFORK_NOTIFY_WORKER_PATH;
inline const std::string programs = UFORK_TEST_PROGRAMS_DIR;

inline std::string temp_path(const std::string& name) {
  return "/tmp/ufork-run-test-" + std::to_string(::getpid()) + "-" + name;
}

// `ufork ARGS...` with `env` ("K=V") added to its own environment: what a
// service manager would have given ufork itself.
inline pool_process ufork(std::vector<std::string> args, std::vector<std::string> env = {}) {
  return pool_process([args, env] {
    for (const auto& kv : env) ::putenv(::strdup(kv.c_str()));
    std::vector<char*> argv{const_cast<char*>(UFORK_CLI_PATH)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(UFORK_CLI_PATH, argv.data());
    say(std::string("exec failed: ") + std::strerror(errno));
    return 127;
  });
}

inline int port_of(pool_process& pool) { return std::stoi(pool.wait_for("listening on 127\\.0\\.0\\.1:(\\d+)")[1]); }

// One request; the answer's body ("" if nothing answered).
inline std::string ask(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string get = "GET / HTTP/1.0\r\n\r\n";
    (void)!::write(fd, get.data(), get.size());
    char buf[1024];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto body = got.find("\r\n\r\n");
  return body == std::string::npos ? "" : got.substr(body + 4);
}

inline json ctl(const std::string& socket, const std::string& command) {
  auto r = run_program(UFORK_CLI_PATH, {"ctl", "--socket", socket, "--json", command});
  return json::parse(r.out, nullptr, false);
}

}  // namespace ufork::test
