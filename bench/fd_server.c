/* fd_server: a small HTTP server in C for `ufork run` benchmarks. With
 * LISTEN_FDS (systemd's protocol, as `ufork run --bind` gives it) it serves
 * on fd 3 as one process; alone, `fd_server PORT WORKERS` binds the port and
 * forks WORKERS processes itself. Each answers every request on a keep-alive
 * connection with a fixed 200, from one epoll loop. With NOTIFY_SOCKET it
 * says READY=1 (a datagram, no libsystemd). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static const char answer[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n";

static void notify_ready(void) {
  const char* path = getenv("NOTIFY_SOCKET");
  if (!path || !*path) return;
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  size_t n = strlen(path);
  if (n >= sizeof a.sun_path) return;
  memcpy(a.sun_path, path, n);
  if (a.sun_path[0] == '@') a.sun_path[0] = 0;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sendto(fd, "READY=1", 7, 0, (struct sockaddr*)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
  close(fd);
}

static void serve(int listener) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = listener};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  struct epoll_event events[256];
  char buf[8192];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == listener) {
        int c;
        while ((c = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      ssize_t got = read(fd, buf, sizeof buf);
      if (got <= 0) {
        close(fd);
        continue;
      }
      /* One answer per request in what was read (wrk sends one at a time). */
      for (char* p = buf; (p = memmem(p, (size_t)(buf + got - p), "\r\n\r\n", 4)); p += 4)
        if (write(fd, answer, sizeof answer - 1) < 0) break;
    }
  }
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  const char* fds = getenv("LISTEN_FDS");
  if (fds && atoi(fds) >= 1) {
    fcntl(3, F_SETFL, fcntl(3, F_GETFL) | O_NONBLOCK);  /* an event loop's socket, as nginx sets its inherited ones */
    notify_ready();
    serve(3);
  }
  if (argc != 3) {
    fprintf(stderr, "usage: fd_server PORT WORKERS (or under ufork run --bind)\n");
    return 2;
  }
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int on = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1])),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(listener, (struct sockaddr*)&a, sizeof a) != 0 || listen(listener, 4096) != 0) {
    perror("fd_server: bind");
    return 1;
  }
  for (int i = 1; i < atoi(argv[2]); ++i)
    if (fork() == 0) serve(listener);
  serve(listener);
}
