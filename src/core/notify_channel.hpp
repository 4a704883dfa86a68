// The workers' sd_notify channel: the socket pair library workers write to
// (its worker end inherited by every worker), and in exec mode the named
// socket the programs find in NOTIFY_SOCKET (abstract: no file, and no owner,
// so anyone may send to it). Both are read on the pool's loop, a batch of
// datagrams per turn, so that a flood costs a bounded share of a turn. Each
// datagram is placed by its sender's credentials, as systemd places it: a
// worker, or in exec mode a process a worker started (sd_notify from a
// shell script's child); anything else is no worker's. What the lines say
// is the pool's (pool::on_notify_line). Internal.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <unordered_set>

#include "core/reactor.hpp"
#include "core/upgrade.hpp"
#include "sys/unique_fd.hpp"

namespace ufork {

class notify_channel {
 public:
  using is_worker_fn = std::function<bool(pid_t)>;
  // A datagram's text, the worker it speaks for (0: no worker's), and the
  // first fd it carried, if any (a mold's channel: core/mold.hpp).
  using deliver_fn = std::function<void(pid_t worker, std::string_view text, sys::unique_fd passed)>;

  // The sockets: made, or after an upgrade the old image's (up), as the
  // workers know them. named: exec mode's NOTIFY_SOCKET too; exec_mode: a
  // worker's descendants may speak for it. Throws ufork::error.
  notify_channel(reactor& loop, const upgrade::state* up, bool named, bool exec_mode, is_worker_fn is_worker,
                 deliver_fn deliver);
  notify_channel(const notify_channel&) = delete;
  notify_channel& operator=(const notify_channel&) = delete;

  // The fd a library worker writes to (kept open across its fork).
  int worker_end() const noexcept { return tx_.get(); }
  // NOTIFY_SOCKET for an exec'd worker ("@ufork-PID-N-RANDOM"); "" if none.
  const std::string& name() const noexcept { return name_; }
  // What an upgrade hands the new image.
  void handover(upgrade::state& s) const;

 private:
  void on_readable(int fd);
  pid_t worker_of(pid_t sender);

  is_worker_fn is_worker_;
  deliver_fn deliver_;
  bool exec_mode_;
  sys::unique_fd rx_, tx_, named_;
  std::string name_;
  std::unordered_set<pid_t> strangers_;  // senders found to be no worker's (at most 1,024, then forgotten)
};

}  // namespace ufork
