// The mold's side (core/mold.hpp): it runs in what was a worker, after its
// program has stopped serving, and forks workers as the arbiter asks.
#include "core/mold.hpp"

#include <unistd.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

#include <fmt/format.h>

#include "core/scoreboard.hpp"
#include "sys/process.hpp"
#include "sys/procfs.hpp"
#include "sys/socket.hpp"

namespace ufork::detail {
namespace {

[[noreturn]] void leave(const std::string& why) noexcept {
  std::fprintf(stderr, "ufork: this worker cannot be the mold: %s\n", why.c_str());
  std::fflush(nullptr);
  sys::child::exit(0);
}

void call(const std::function<void()>& hook, const char* name) noexcept {
  if (!hook) return;
  try {
    hook();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ufork: mold: hook %s threw: %s\n", name, e.what());
  } catch (...) {
    std::fprintf(stderr, "ufork: mold: hook %s threw\n", name);
  }
}

}  // namespace

sys::result<spawned> spawn_sibling(const spawn_plan& plan, int error_fd) {
  int pidfd = -1;
  auto forked = sys::fork_sibling_blocking_signals(&pidfd);
  if (!forked) return forked.error();
  if (forked.value() == 0) run_child(plan, error_fd, -1);
  return spawned{forked.value(), sys::unique_fd(pidfd), {}};
}

namespace {

[[noreturn]] void serve_as_mold(const spawn_plan& own, int stop_fd) {
  // A fork copies one thread: another one's locks would stay held in every
  // child, and what it was doing would be lost.
  if (int n = sys::thread_count(); n != 1)
    leave(fmt::format("{} threads still run after post_fork returned, and a fork copies one", n));
  auto pair = sys::make_packet_pair();
  if (!pair) leave("socketpair: " + pair.error().message());
  auto [channel, theirs] = std::move(pair).value();
  static constexpr char ready[] = "UFORK_MOLD=ready";
  int passed = theirs.get();
  if (auto ec = sys::send_with_fds(own.notify_fd, ready, sizeof ready - 1, &passed, 1))
    leave("its notify socket: " + ec.message());
  theirs.reset();
  std::string_view was(own.title);
  if (was.starts_with("ufork: ")) was.remove_prefix(7);
  std::string title = fmt::format("ufork: mold, was {}", was);  // ps: "ufork: mold, was worker 0 gen 1 (...)"
  sys::child::set_title(title.c_str(), true);
  // What a worker's setup did once is done in the mold already: its user,
  // its nice value (added again, it would add up).
  spawn_plan base = own;
  base.drop = nullptr;
  base.nice = 0;
  fd_runs close = runs_of({channel.get(), stop_fd});
  base.close_runs = &close;
  for (;;) {
    mold_request rq{};
    sys::unique_fd fds[3];
    std::size_t got = 0;
    auto n = sys::receive_with_fds(channel.get(), &rq, sizeof rq, fds, 3, &got);
    if (!n || n.value() == 0) sys::child::exit(0);  // the arbiter let go of it
    mold_reply reply{0, EINVAL};
    sys::result<spawned> child = std::make_error_code(std::errc::invalid_argument);
    if (n.value() == sizeof rq && got == 3) {
      rq.title[sizeof rq.title - 1] = 0;
      worker_environment env(own.envp, {}, {rq.slot, rq.generation, nullptr, "", {}});
      spawn_plan plan = base;
      plan.slot = rq.slot;
      plan.generation = rq.generation;
      plan.beat_cell = own.beat_cell + rq.cell;
      plan.out_fd = fds[0].get();
      plan.err_fd = fds[1].get();
      plan.envp = env.envp();
      plan.cpu = rq.cpu;
      plan.title = rq.title;
      std::cout.flush();
      std::fflush(nullptr);  // nothing buffered may be inherited: the child would print it again
      call(own.callbacks->before_fork, "before_fork");
      child = spawn_sibling(plan, fds[2].get());
      call(own.callbacks->after_fork_parent, "after_fork_parent");
      reply = child ? mold_reply{child->pid, 0} : mold_reply{0, child.error().value()};
    }
    int pidfd = child ? child->pidfd.get() : -1;
    if (sys::send_with_fds(channel.get(), &reply, sizeof reply, &pidfd, child ? 1 : 0)) sys::child::exit(0);
  }
}

}  // namespace

[[noreturn]] void run_mold(const spawn_plan& own, int stop_fd) noexcept {
  try {
    serve_as_mold(own, stop_fd);
  } catch (const std::exception& e) {  // out of memory: the arbiter sees the channel close
    std::fprintf(stderr, "ufork: the mold failed: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "ufork: the mold failed\n");
  }
  std::fflush(nullptr);
  sys::child::exit(70);  // EX_SOFTWARE
}

}  // namespace ufork::detail
