#!/bin/sh
# The Python module links the objects the libraries are made of and compiles
# none of the library's sources again (with other defines, a second copy of
# the code that could differ): in the build's compile commands, each file
# under src/ is compiled once, and the module compiles only its own files
# (python/src/) and no_prompt.cpp, the prompt it attaches (none).
build=${1:?usage: python_links_the_library.sh BUILD_DIR SRC_DIR}
src=${2:?usage: python_links_the_library.sh BUILD_DIR SRC_DIR}
exec /usr/bin/python3 - "$build/compile_commands.json" "$src" <<'PY'
import collections, json, os, sys
commands = json.load(open(sys.argv[1]))
root = os.path.realpath(sys.argv[2])
src = root + '/src/'
twice = [f for f, n in collections.Counter(c['file'] for c in commands).items() if f.startswith(src) and n > 1]
module = sorted(c['file'] for c in commands if '_ufork.dir' in c['command'])
theirs = [f for f in module if not f.startswith(root + '/python/src/') and f != src + 'control/no_prompt.cpp']
print('compiled more than once:', twice or 'none')
print("the module compiles:", module)
if not module:
    sys.exit('FAIL: no compile command of the module (_ufork) found')
if twice or theirs:
    sys.exit('FAIL: the library\'s sources compiled again: %s' % (twice + theirs))
print('python module: links the library\'s objects, compiles none again')
PY
