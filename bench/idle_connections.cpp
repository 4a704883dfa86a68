// idle_connections PORT SERVER_PID N: opens N keep-alive connections to
// 127.0.0.1:PORT, asks once on each and reads the answer, then prints how
// much the resident memory of SERVER_PID's children (its workers) grew, per
// connection held. Run by bench/http-vs-nginx.sh against nginx and ufork.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

// The sum of VmRSS over the children of `server`'s main thread, in KiB.
long workers_rss_kib(int server) {
  std::ifstream children("/proc/" + std::to_string(server) + "/task/" + std::to_string(server) + "/children");
  long sum = 0;
  for (int pid; children >> pid;) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmRSS:", 0) == 0) sum += std::stol(line.substr(6));
  }
  return sum;
}

int fail(const std::string& what) {
  std::fprintf(stderr, "idle_connections: %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0, server = 0, n = 0;
  if (argc != 4 || std::sscanf(argv[1], "%d", &port) != 1 || std::sscanf(argv[2], "%d", &server) != 1 ||
      std::sscanf(argv[3], "%d", &n) != 1 || n <= 0) {
    std::fprintf(stderr, "usage: idle_connections PORT SERVER_PID N\n");
    return 2;
  }
  long before = workers_rss_kib(server);
  if (before == 0) return fail("no workers under pid " + std::to_string(server));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const std::string request = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail("socket");
    fds.push_back(fd);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return fail("connect");
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
      return fail("send");
  }
  for (int fd : fds) {  // each answer's head (the small body comes with it)
    std::string got;
    char buf[4096];
    while (got.find("\r\n\r\n") == std::string::npos) {
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r <= 0) return fail("an answer");
      got.append(buf, static_cast<std::size_t>(r));
    }
  }
  long after = workers_rss_kib(server);
  std::printf("%.0f bytes per connection (workers' RSS %ld -> %ld KiB over %d connections)\n",
              static_cast<double>(after - before) * 1024 / n, before, after, n);
  for (int fd : fds) ::close(fd);
  return 0;
}
