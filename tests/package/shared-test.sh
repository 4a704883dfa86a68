#!/bin/sh
# A shared build of ufork: it exports its public API and none of its inside
# (only the few sys calls ufork-http and the ufork command share with it, and
# the option table the command makes its flags from),
# and the consumer
# project builds and runs against it.
set -eu
src=$1 build=$2 prefix=$3
cmake -S "$src" -B "$build" -DBUILD_SHARED_LIBS=ON -DUFORK_BUILD_TESTS=OFF -DUFORK_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j 2 >/dev/null
cmake --install "$build" --prefix "$prefix" >/dev/null
lib="$prefix/lib/libufork.so"
inside=$(nm -DC --defined-only "$lib" | sed 's/^[0-9a-f]* . //' |
  grep -E '^((typeinfo|typeinfo name|vtable) for )?ufork::(pool|commands|control_server|console|policy|worker_table|reactor|detail|oom_witness|sys)\b' |
  grep -vE '^ufork::sys::(local_address|make_tcp_socket|set_socket_option|bind|listen|disown_fd|duplicate|receive_now|send_now|accept_connection|close_connection|shutdown_sending|make_epoll|epoll_add|epoll_remove|epoll_wait|watch_exclusively|tcp_accept_queue|make_eventfd|drain_counter|eventfd_signal|executable|find_in_path|syslog_reachable|set_cloexec|close_fd|read|write_all|own_pid|set_action|make_unix_socket|connect_unix|send_waiting|poll_once|is_terminal|terminal_settings|set_terminal|size_of_terminal|cpu_seconds|describe|address_of|peer_address|host_and_port|is_ip_address)(\[abi:cxx11\])?\(' || true)
if [ -n "$inside" ]; then
  echo "FAIL: $lib exports its inside:"
  echo "$inside"
  exit 1
fi
echo "$lib exports $(nm -D --defined-only "$lib" | wc -l) symbols, none of its inside"
cmake -S "$src/tests/package" -B "$build/consumer" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$build/consumer" >/dev/null
"$build/consumer/consumer"
[ ! -e "$build/consumer/consumer_http" ] || "$build/consumer/consumer_http"
