#!/bin/sh
# Compiles and runs the consumer with the flags pkg-config gives for ufork.
set -eu
prefix=$1 src=$2 out=$3
shift 3  # the rest: extra compiler flags (the sanitizers of the build under test)
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
c++ "$@" -o "$out" "$src/main.cpp" $(pkg-config --cflags --libs ufork)
"$out"
[ -e "$prefix/lib/pkgconfig/ufork-http.pc" ] || exit 0  # built with -DUFORK_HTTP=OFF
c++ "$@" -o "$out-http" "$src/http.cpp" $(pkg-config --cflags --libs ufork-http)
"$out-http"
