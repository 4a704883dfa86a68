#!/bin/bash
# The Debian packages of `make deb`, installed on this machine with apt-get
# and used from the installed files only (no build tree on any path), then
# purged: nothing of theirs may be left. make test's last step, alone.
# Skipped, with the reason, where packages cannot be installed: not root
# (nor sudo without a password), or ufork's packages are installed already
# (they are someone's: this test does not replace them).
#   tests/package/deb-test.sh SOURCE_DIR DEB_DIR
set -u
src=$1 debs=$2
packages=(ufork libufork-dev python3-ufork)
skip() { echo "deb-test: SKIPPED: $*"; exit 0; }
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo -n true 2>/dev/null || skip "not root, and sudo asks for a password"
  sudo=(sudo -n)
fi
command -v apt-get >/dev/null || skip "no apt-get here"
for p in "${packages[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ] ||
    skip "$p is installed already"
done

fail=0
check() {  # $1: what; the rest: a command that must succeed
  local what=$1
  shift
  if "$@" >/tmp/deb-test.$$ 2>&1; then echo "ok: $what"; else
    echo "FAIL: $what:"; sed 's/^/  /' /tmp/deb-test.$$; fail=1
  fi
}
work=$(mktemp -d)
purge() {
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${packages[@]}" >/dev/null 2>&1
  rm -rf "$work" /tmp/deb-test.$$
}
trap purge EXIT

shopt -s nullglob
files=("$debs"/*.deb)
[ ${#files[@]} -eq 3 ] || { echo "FAIL: expected 3 packages in $debs, found: ${files[*]}"; exit 1; }
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${files[@]/#/$(pwd)/}" \
  || { echo "FAIL: apt-get install"; exit 1; }
dpkg -L "${packages[@]}" | sort -u >"$work/files"

# From here on: the installed files, and a PATH with nothing of the build.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset PYTHONPATH LD_LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH
version=$(sed -n 's/^project(ufork VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
check "ufork --version says $version" test "$(/usr/bin/ufork --version)" = "ufork $version"
check "ufork.__version__ from Debian's python3 (no PYTHONPATH)" \
  test "$(cd / && /usr/bin/python3 -c 'import ufork; print(ufork.__version__)')" = "$version"

# Runs "$@" in the background (`server`: its pid), reading its output line
# by line as it comes (no polling) until a line holds $1: `url`, the first
# http:// address it said. False after 60 s without it.
start_until() {
  local want=$1 line
  shift
  exec {output}< <(exec "$@" </dev/null 2>&1)
  server=$! url=
  while IFS= read -r -t 60 line <&"$output"; do
    [[ -n $url || ! $line =~ (http://[0-9.:]+/) ]] || url=${BASH_REMATCH[1]}
    [[ $line == *"$want"* ]] && return 0
  done
  echo "FAIL: no line with '$want' from $*"
  fail=1
  return 1
}
stop_server() {  # SIGTERM; its exit status
  kill -TERM "$server"
  wait "$server"
  local status=$?
  exec {output}<&-
  return $status
}

# ufork hello answers.
start_until "ready, 2 workers" /usr/bin/ufork hello --bind 127.0.0.1:0 --workers 2
check "ufork hello answers at $url" /usr/bin/python3 -c "
import sys, urllib.request
body = urllib.request.urlopen(sys.argv[1], timeout=10).read()
assert body.startswith(b'Hello'), body" "$url"
stop_server
check "ufork hello stopped on SIGTERM with 0" test $? = 0

# ufork wsgi, the command and the module together, set up by a config file
# (the app first, a typed flag after it).
cat >"$work/app.py" <<'APP'
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'wsgi from the package\n']
APP
printf 'bind = ["127.0.0.1:0"]\nchdir = "%s"\nworkers = 3\n' "$work" >"$work/app.toml"
start_until "ready, 1 worker" /usr/bin/ufork wsgi app:application --config "$work/app.toml" -w 1
check "ufork wsgi --config answers at $url" /usr/bin/python3 -c "
import sys, urllib.request
assert urllib.request.urlopen(sys.argv[1], timeout=10).read() == b'wsgi from the package\n'" "$url"
stop_server
check "ufork wsgi stopped on SIGTERM with 0" test $? = 0

# The manuals (unless dpkg was told to leave manuals out, as Debian's
# container images are) and the completion.
if grep -qs '^path-exclude[= ]/usr/share/man' /etc/dpkg/dpkg.cfg.d/*; then
  echo "(dpkg leaves /usr/share/man out here: man -w not checked)"
  man_check=no
else
  check "man -w ufork" test "$(man -w ufork)" = /usr/share/man/man1/ufork.1.gz
  check "man -w ufork-wsgi" test "$(man -w ufork-wsgi)" = /usr/share/man/man1/ufork-wsgi.1.gz
  check "man -w 5 ufork.toml" test "$(man -w 5 ufork.toml)" = /usr/share/man/man5/ufork.toml.5.gz
  man_check=yes
fi
check "bash completes 'ufork ctl --socket S wo' to workers" test "$(bash -c '
  source /usr/share/bash-completion/completions/ufork
  COMP_WORDS=(ufork ctl --socket /nowhere.sock wo); COMP_CWORD=4; _ufork; echo "${COMPREPLY[*]}"')" = workers

# A consumer of libufork-dev, with find_package and with pkg-config, against /usr.
check "find_package(ufork COMPONENTS http) against /usr" \
  ctest --build-and-test "$src/tests/package" "$work/consumer" --build-generator "Unix Makefiles" \
        --build-options -DCMAKE_BUILD_TYPE=Release -DWITH_HTTP=ON --test-command ctest --output-on-failure
check "pkg-config ufork and ufork-http against /usr" \
  "$src/tests/package/pkg-config-test.sh" /usr "$src/tests/package" "$work/pkg-config-consumer"

# (Where systemd-analyze cannot run at all, a container without systemd,
# it says "Failed to ..." of itself and nothing of the unit: skipped, as
# the service test does.)
verified=$(systemd-analyze verify --man=$man_check /usr/lib/systemd/system/ufork@.service 2>&1)
if [[ $verified == *"Failed to"* && $verified != *"ufork@"* ]]; then
  echo "(systemd-analyze cannot run here: $verified)"
else
  check "systemd-analyze verify ufork@.service (man=$man_check) says nothing" test -z "$verified"
  [ -z "$verified" ] || echo "$verified"
fi

# Removed, nothing of theirs left (directories others share excepted).
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${packages[@]}" >/dev/null 2>&1
left=$(while read -r f; do [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"; done <"$work/files")
check "apt-get purge leaves none of their files" test -z "$left"
[ -z "$left" ] || echo "$left" | head
for p in "${packages[@]}"; do
  check "$p is gone" test "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed"
done
[ $fail = 0 ] && echo "deb-test: the packages install, work from /usr and leave nothing behind"
exit $fail
