#!/bin/sh
# The documents' first C++ sample is the text of a program under examples/,
# which the build compiles: README.md and docs/library.md show
# examples/library_sample.cpp, docs/http.md examples/http_sample.cpp (each
# without its first two lines, the comment that says so).
#   tests/docs_samples.sh SOURCE_DIR
set -eu
top=$1
status=0
check() {
  shown=$(awk '/^```cpp$/ { on = 1; next } on && /^```$/ { exit } on { print }' "$top/$1")
  built=$(tail -n +3 "$top/$2")
  if [ "$shown" != "$built" ]; then
    echo "$1: its first cpp sample is not $2 (less its first two lines):"
    printf '%s\n' "$shown" > /tmp/ufork-docs-shown.$$
    printf '%s\n' "$built" | diff /tmp/ufork-docs-shown.$$ - || true
    rm -f /tmp/ufork-docs-shown.$$
    status=1
  fi
}
check README.md examples/library_sample.cpp
check docs/library.md examples/library_sample.cpp
check docs/http.md examples/http_sample.cpp
exit $status
