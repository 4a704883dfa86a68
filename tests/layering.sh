#!/bin/sh
# The source's layering, as a test: the core (and what it builds on) includes
# nothing of the parts above it, and only src/sys/ calls the kernel. Our code
# calls libc qualified (::close), so a qualified call of a syscall's name
# outside src/sys/ is a call that belongs there.
src=${1:?usage: layering.sh SRC_DIR}
status=0
if grep -rnE '#include "(control|daemon|http)/' "$src/core" "$src/log" "$src/sys"; then
  echo "FAIL: the lines above include a part that builds on them"
  status=1
fi
syscalls='accept4?|bind|chdir|chmod|clock_gettime|close|close_range|connect|dup2?|dup3|epoll_[a-z]+|eventfd|fcntl|flock|fork|ftruncate|getpid|getppid|geteuid|getrandom|getsockname|getsockopt|ioctl|isatty|kill|listen|lseek|lstat|mkdir|mmap|munmap|open|openat|pidfd_[a-z_]+|pipe2?|poll|prctl|pread|pthread_sigmask|pwrite|raise|read|recv|recvmsg|sched_getaffinity|send|sendmsg|setpgid|setrlimit|setsid|setsockopt|sigaction|signal|signalfd|sigprocmask|socket|socketpair|stat|syscall|tcgetattr|tcsetattr|timerfd_[a-z]+|umask|unlink|wait|waitid|waitpid|write|_exit'
if grep -rnE "(^|[^A-Za-z0-9_>.:])::($syscalls)\(" "$src" --include='*.cpp' --include='*.hpp' | grep -v "^$src/sys/"; then
  echo "FAIL: the lines above call the kernel outside src/sys/"
  status=1
fi
[ $status -eq 0 ] && echo "layering: ok"
exit $status
