#!/bin/sh
# Builds the fuzz harnesses (clang 14: ASan + UBSan + libFuzzer) in a build of
# their own and runs each for SECONDS over its committed corpus
# (tests/fuzz/corpus/NAME; what it finds new goes to BUILD/corpus-NAME).
# A crash, a leak or a timeout fails, with the fuzzer's report and the input
# that did it (BUILD/crash-*: add it to the corpus as a regression test).
#   tests/fuzz/run.sh SRC_DIR BUILD_DIR [SECONDS]
set -eu
src=$1 build=$2 secs=${3:-5}
cxx=$(command -v clang++-14 || command -v clang++) || { echo "fuzz: clang++ not found (scripts/install-deps)"; exit 1; }
cmake -S "$src" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DUFORK_FUZZ=ON \
  -DUFORK_BUILD_TESTS=OFF -DUFORK_BUILD_EXAMPLES=OFF -DUFORK_HTTP=OFF -DUFORK_PYTHON=OFF -DUFORK_INSTALL=OFF >/dev/null
names="line_splitter commands status_request follow upgrade_state notify http_session"
targets=""
for n in $names; do targets="$targets fuzz_$n"; done
cmake --build "$build" -j 2 --target $targets >/dev/null
for n in $names; do
  mkdir -p "$build/corpus-$n"
  log="$build/fuzz-$n.log"
  if ! (cd "$build" && "./tests/fuzz/fuzz_$n" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        "corpus-$n" "$src/tests/fuzz/corpus/$n") >"$log" 2>&1; then
    tail -60 "$log"
    echo "FAIL: fuzz_$n (the input is in $build)"
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  echo "fuzz_$n: $runs runs in ${secs} s, $speed per second, $cov edges, no crash"
done
