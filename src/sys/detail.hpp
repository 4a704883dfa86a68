// Inside src/sys/ only: the helpers every topic's wrappers share.
#pragma once

#include <cerrno>

#include "sys/fd.hpp"

namespace ufork::sys::detail {

template <class F>
auto retry_eintr(F f) {
  decltype(f()) r;
  do r = f();
  while (r == -1 && errno == EINTR);
  return r;
}

// A new fd of ufork's own (registered), or errno's error.
inline result<unique_fd> fd_or_error(int fd) {
  if (fd < 0) return last_error();
  own_fd(fd);
  return unique_fd(fd);
}

}  // namespace ufork::sys::detail
