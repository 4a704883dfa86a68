#!/bin/sh
# The source's layering, as a test: each rule of docs/layout.md ("The
# rules the build holds") checked on the includes. A part includes only
# the public API (ufork/), itself, and the parts below it; only src/sys/
# calls the kernel. Our code calls libc qualified (::close), so a qualified
# call of a syscall's name outside src/sys/ is a call that belongs there.
# Usage: layering.sh SRC_ROOT (the checkout: src/, cli/, python/src/)
root=${1:?usage: layering.sh SOURCE_ROOT}
[ -d "$root/src" ] || { echo "layering.sh: no src/ under $root"; exit 2; }
status=0

# rule DIR ALLOWED...: every #include "X/..." in DIR names an allowed X/.
rule() {
  dir=$1
  shift
  allowed=$(echo "$@" | tr ' ' '|')
  found=$(grep -rnE '#include "[a-z_]+/' "$root/$dir" --include='*.cpp' --include='*.hpp' |
          grep -vE "#include \"($allowed)/")
  if [ -n "$found" ]; then
    echo "$found"
    echo "FAIL: $dir/ may include only: $*"
    status=1
  fi
}
rule src/sys sys ufork
rule src/log log sys ufork
rule src/daemon daemon sys ufork
rule src/core core sys ufork
rule src/net net sys ufork                      # addresses and binding
rule src/control control core net sys ufork    # never the HTTP helper
rule src/http http net sys ufork                # the helper: the public API, never the pool's inside
rule cli core net sys ufork                     # the program: the public API and a few internals, below
rule python/src core sys ufork                  # no prompt of ours, no pool internals: through ufork::arbiter

# What cli/ and python/src/ may take from the inside: the option table, the
# exit codes (cli/), the binding (net/, cli/), sys.
if grep -rnE '#include "core/' "$root/cli" | grep -vE '"core/(exit_status|option_table).hpp"'; then
  echo "FAIL: cli/ takes of core/ only exit_status.hpp and option_table.hpp"
  status=1
fi
if grep -rnE '#include "core/' "$root/python/src" | grep -v '"core/option_table.hpp"'; then
  echo "FAIL: python/src/ takes of core/ only option_table.hpp"
  status=1
fi
syscalls='accept4?|bind|chdir|chmod|clock_gettime|close|close_range|connect|dup2?|dup3|epoll_[a-z]+|eventfd|fcntl|flock|fork|ftruncate|getpid|getppid|geteuid|getrandom|getsockname|getsockopt|ioctl|isatty|kill|listen|lseek|lstat|mkdir|mmap|munmap|open|openat|pidfd_[a-z_]+|pipe2?|poll|prctl|pread|pthread_sigmask|pwrite|raise|read|recv|recvmsg|sched_getaffinity|send|sendmsg|setpgid|setrlimit|setsid|setsockopt|sigaction|signal|signalfd|sigprocmask|socket|socketpair|stat|syscall|tcgetattr|tcsetattr|timerfd_[a-z]+|umask|unlink|wait|waitid|waitpid|write|_exit'
if grep -rnE "(^|[^A-Za-z0-9_>.:])::($syscalls)\(" "$root/src" "$root/cli" "$root/python/src" --include='*.cpp' --include='*.hpp' |
   grep -v "^$root/src/sys/"; then
  echo "FAIL: the lines above call the kernel outside src/sys/"
  status=1
fi
[ $status -eq 0 ] && echo "layering: ok"
exit $status
