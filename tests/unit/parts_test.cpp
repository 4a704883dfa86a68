// The pool's parts that own fds, each on its own, on a reactor of the
// test's: output capture, loop calls, the manager link, signal intake.
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/loop_calls.hpp"
#include "core/manager_link.hpp"
#include "core/notify_channel.hpp"
#include "core/output_capture.hpp"
#include "core/reactor.hpp"
#include "core/signal_intake.hpp"
#include "sys/fd.hpp"
#include "sys/socket.hpp"

namespace ufork {
namespace {

using namespace std::chrono_literals;

// Turns of the loop until done() or 10 s.
template <class F>
bool run_until(reactor& loop, F done) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  loop.arm(deadline);
  while (!done() && std::chrono::steady_clock::now() < deadline) loop.run_once();
  return done();
}

struct captured {
  int slot;
  pid_t pid;
  stream_kind stream;
  std::string text;
};

TEST(output_capture, whole_lines_as_they_come_and_the_last_one_at_the_drain) {
  reactor loop;
  std::vector<captured> lines;
  output out(1024), err(1024);
  bool gone = false;
  output_capture capture(
      loop, 1024, [&](const log_line& l) { lines.push_back({l.id, l.pid, l.stream, std::string(l.text)}); },
      [&](pid_t pid, stream_kind s, int& slot) -> output* {
        slot = 3;
        return gone || pid != 77 ? nullptr : s == stream_kind::out ? &out : &err;
      });
  auto o = sys::make_pipe(0).value();
  auto e = sys::make_pipe(0).value();
  out.fd = std::move(o.read);
  err.fd = std::move(e.read);
  capture.watch(77, out, err);

  ASSERT_EQ(::write(o.write.get(), "one\ntw", 6), 6);
  ASSERT_TRUE(run_until(loop, [&] { return !lines.empty(); }));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].text, "one");
  EXPECT_EQ(lines[0].slot, 3);
  EXPECT_EQ(lines[0].pid, 77);
  EXPECT_EQ(lines[0].stream, stream_kind::out);

  // A worker no longer in the table: its pipe is not read.
  gone = true;
  ASSERT_EQ(::write(e.write.get(), "late\n", 5), 5);
  loop.arm(std::chrono::steady_clock::now());
  loop.run_once();
  EXPECT_EQ(lines.size(), 1u);

  // The exit: what is left in both, the torn last line too, and closed.
  ASSERT_EQ(::write(o.write.get(), "o\n", 2), 2);
  o.write.reset();
  capture.drain(3, 77, out, err);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1].text, "two");
  EXPECT_EQ(lines[2].text, "late");
  EXPECT_EQ(lines[2].stream, stream_kind::err);
  EXPECT_FALSE(out.fd);
  EXPECT_FALSE(err.fd);
}

TEST(loop_calls, a_call_from_another_thread_runs_on_the_loop_and_a_stop_request_runs_once) {
  reactor loop;
  int stops = 0;
  loop_calls calls(loop, [&] { ++stops; });
  // No loop yet: at once, on the caller's thread.
  EXPECT_EQ(calls.call([] { return std::this_thread::get_id(); }), std::this_thread::get_id());

  calls.begin();
  EXPECT_THROW(calls.begin(), std::logic_error);
  std::thread::id ran_on;
  int answer = 0;
  std::thread host([&] {
    answer = calls.call([&] {
      ran_on = std::this_thread::get_id();
      return 42;
    });
    calls.request_stop();
  });
  EXPECT_TRUE(run_until(loop, [&] { return stops == 1; }));
  host.join();
  EXPECT_EQ(answer, 42);
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  calls.run_posted();
  EXPECT_EQ(stops, 1);  // said once

  // Once the loop has ended, a call runs on its caller's thread again.
  calls.end();
  std::thread::id later;
  std::thread([&] { later = calls.call([] { return std::this_thread::get_id(); }); }).join();
  EXPECT_NE(later, std::this_thread::get_id());
}

// A datagram socket the test listens on as a service manager would.
class fake_manager {
 public:
  fake_manager() : path_(testing::TempDir() + "manager-" + std::to_string(::getpid())) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path_.c_str());
    ::unlink(path_.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ADD_FAILURE() << "bind " << path_;
    timeval wait{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  }
  ~fake_manager() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  const std::string& path() const { return path_; }
  std::string next() {
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n < 0 ? "(nothing)" : std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST(manager_link, ready_once_status_on_change_reloading_and_the_watchdog_only_while_enough_are_ready) {
  fake_manager manager;
  ::setenv("NOTIFY_SOCKET", manager.path().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "2000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  manager_link link;
  std::vector<std::string> said;
  link.open([&](const std::string& s) { said.push_back(s); });
  for (const char* var : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) ::unsetenv(var);
  ASSERT_TRUE(link.is_open());
  auto t0 = std::chrono::steady_clock::now();

  link.update({0, 2, 1, false, true, ""}, t0);  // none ready: no READY, no WATCHDOG
  EXPECT_EQ(manager.next(), "STATUS=0 of 2 workers ready");
  ASSERT_TRUE(link.next_beat());
  EXPECT_EQ(*link.next_beat(), t0 + 1s);  // half of WATCHDOG_USEC

  link.update({2, 2, 1, false, true, ""}, t0 + 1s);
  EXPECT_EQ(manager.next(), "READY=1\nMAINPID=" + std::to_string(::getpid()) + "\nSTATUS=2 of 2 workers ready\nWATCHDOG=1");
  link.update({2, 2, 1, false, true, ""}, t0 + 1500ms);  // nothing changed, no beat due: nothing said

  link.reloading(t0 + 1600ms);
  EXPECT_EQ(manager.next().rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u);
  link.update({2, 2, 1, false, false, "reloading"}, t0 + 1700ms);
  EXPECT_EQ(manager.next(), "STATUS=2 of 2 workers ready; reloading");
  link.update({2, 2, 1, false, true, ""}, t0 + 1800ms);  // the reload is done: READY again
  EXPECT_EQ(manager.next(), "READY=1\nSTATUS=2 of 2 workers ready");
  link.stopping();
  EXPECT_EQ(manager.next(), "STOPPING=1");
  EXPECT_TRUE(said.empty()) << said.front();
}

TEST(manager_link, nothing_without_notify_socket) {
  ::unsetenv("NOTIFY_SOCKET");
  manager_link link;
  link.open({});
  EXPECT_FALSE(link.is_open());
  EXPECT_FALSE(link.next_beat());
}

TEST(signal_intake, a_signal_reaches_the_handler_with_its_sender_and_close_puts_the_mask_back) {
  sigset_t before;
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, nullptr, &before), 0);
  ASSERT_FALSE(sigismember(&before, SIGHUP));
  struct sigaction pipe_before {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &pipe_before), 0);

  reactor loop;
  std::vector<std::pair<int, pid_t>> got;
  {
    signal_intake intake;
    intake.open(loop, false, [&](int sig, pid_t sender) { got.emplace_back(sig, sender); });
    struct sigaction pipe_now {};
    ::sigaction(SIGPIPE, nullptr, &pipe_now);
    EXPECT_EQ(pipe_now.sa_handler, SIG_IGN);
    ASSERT_EQ(::kill(::getpid(), SIGHUP), 0);  // blocked: waits in the signalfd
    ASSERT_TRUE(run_until(loop, [&] { return !got.empty(); }));
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].first, SIGHUP);
    EXPECT_EQ(got[0].second, ::getpid());
  }  // closed
  sigset_t after;
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, nullptr, &after), 0);
  EXPECT_FALSE(sigismember(&after, SIGHUP));
  struct sigaction pipe_after {};
  ::sigaction(SIGPIPE, nullptr, &pipe_after);
  EXPECT_EQ(pipe_after.sa_handler, pipe_before.sa_handler);
}

// A child of this process says `text` on the named socket and stays alive
// (its credentials are looked up) until the test has read it.
struct speaking_child {
  pid_t pid = -1;
  int hold = -1;
  speaking_child(const std::string& socket, const std::string& text) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    pid = ::fork();
    if (pid == 0) {
      ::close(fds[1]);
      auto fd = sys::make_datagram_socket();
      if (fd) (void)sys::send_notify(fd->get(), socket, text);
      char c;
      (void)!::read(fds[0], &c, 1);  // until the parent closes its end
      ::_exit(0);
    }
    ::close(fds[0]);
    hold = fds[1];
  }
  ~speaking_child() {
    ::close(hold);
    int status = 0;
    if (pid > 0) ::waitpid(pid, &status, 0);
  }
};

TEST(notify_channel, a_worker_speaks_for_itself_its_children_only_in_exec_mode_and_a_stranger_for_nobody) {
  for (bool exec_mode : {false, true}) {
    reactor loop;
    pid_t worker = ::getpid();  // the test plays the worker
    std::vector<std::pair<pid_t, std::string>> got;
    int passed_fds = 0;
    notify_channel channel(
        loop, nullptr, true, exec_mode, [&](pid_t pid) { return pid == worker; },
        [&](pid_t w, std::string_view text, sys::unique_fd passed) {
          got.emplace_back(w, std::string(text));
          passed_fds += passed ? 1 : 0;
        });
    ASSERT_EQ(channel.name().rfind("@ufork-", 0), 0u) << channel.name();

    // On the socket pair's worker end, as a library worker says it.
    ASSERT_FALSE(sys::send_waiting(channel.worker_end(), "READY=1", 7));
    ASSERT_TRUE(run_until(loop, [&] { return got.size() == 1; }));
    EXPECT_EQ(got[0], std::make_pair(worker, std::string("READY=1")));
    EXPECT_EQ(passed_fds, 0);
    {  // an fd passed along (a mold's channel) reaches the pool, once
      auto pipe = sys::make_pipe(0);
      ASSERT_TRUE(pipe);
      int fd = pipe->read.get();
      ASSERT_FALSE(sys::send_with_fds(channel.worker_end(), "UFORK_MOLD=ready", 16, &fd, 1));
      ASSERT_TRUE(run_until(loop, [&] { return got.size() == 2; }));
      EXPECT_EQ(passed_fds, 1);
      got.pop_back();
    }

    {  // a process the worker started, on NOTIFY_SOCKET
      speaking_child child(channel.name(), "STATUS=child");
      ASSERT_TRUE(run_until(loop, [&] { return got.size() == 2; }));
      EXPECT_EQ(got[1], std::make_pair(exec_mode ? worker : pid_t{0}, std::string("STATUS=child")));
    }
    worker = 1;  // now nobody here is a worker
    {
      speaking_child stranger(channel.name(), "READY=1");
      ASSERT_TRUE(run_until(loop, [&] { return got.size() == 3; }));
      EXPECT_EQ(got[2].first, 0) << "exec mode " << exec_mode;
    }
  }
}

}  // namespace
}  // namespace ufork
