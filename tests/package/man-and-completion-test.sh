#!/bin/bash
# The man pages and the bash completion as installed under PREFIX (made by
# `ufork _docs` from the command's own parser): a page per subcommand that
# lists every flag its --help lists, pages groff renders without a warning
# (when groff is here), and the completion, sourced into bash as
# bash-completion would, completing subcommands, flags, users, ctl's
# commands (the built-in list, and a live arbiter's own) and run's command.
#   tests/package/man-and-completion-test.sh PREFIX UFORK_BUILT
set -u
prefix=$1 ufork=$2
fail=0
man=$prefix/share/man/man1
completion=$prefix/share/bash-completion/completions/ufork
[ -f "$completion" ] || { echo "FAIL: no $completion"; exit 1; }
for sub in "" hello run wsgi asgi ctl console top; do
  page=$man/ufork${sub:+-$sub}.1
  [ -f "$page" ] || { echo "FAIL: no $page"; fail=1; continue; }
  [ -n "$sub" ] || continue
  # Each long flag of --help, as roff spells it (\- for each dash).
  for flag in $("$ufork" "$sub" --help | grep -oE '^ +(-[a-z],)?--[a-z-]+' | grep -oE -- '--[a-z-]+'); do
    grep -qF -- "$(printf '%s' "$flag" | sed 's/-/\\-/g')" "$page" || { echo "FAIL: $page lacks $flag"; fail=1; }
  done
done
if command -v groff >/dev/null; then
  warnings=$(groff -man -Tutf8 -ww -z "$man"/ufork*.1 2>&1)
  [ -z "$warnings" ] || { echo "FAIL: groff: $warnings"; fail=1; }
else
  echo "(no groff here: the pages are not rendered)"
fi

# A live arbiter, whose control socket the completion asks.
dir=$(mktemp -d)
"$ufork" hello --bind 127.0.0.1:0 --workers 1 --control "$dir/ctl.sock" </dev/null >"$dir/out" 2>&1 &
pool=$!
trap 'kill -TERM $pool 2>/dev/null; wait $pool 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 600); do [ -S "$dir/ctl.sock" ] && break; sleep 0.05; done
expect() {  # $1: the words typed, the last being completed; $2: COMPREPLY, sorted, one line
  local got
  got=$(bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _ufork;
                 printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$completion" $1)
  [ "$got" = "$2" ] || { echo "FAIL: [$1] completed to [$got], not [$2]"; fail=1; }
}
expect "$ufork w" "wsgi "
expect "$ufork a" "asgi "
expect "$ufork ctl --socket /nowhere/ctl.sock wo" "workers "
expect "$ufork ctl --socket $dir/ctl.sock wo" "workers "
expect "$ufork ctl --socket $dir/ctl.sock re" "reload reopen restart "
expect "$ufork ctl --socket $dir/ctl.sock status --j" "--json "
expect "$ufork hello --max-req" "--max-requests --max-requests-jitter "
expect "$ufork wsgi --user roo" "root "
touch "$dir/my-program"
expect "$ufork run --bind :8000 -- $dir/my-p" "$dir/my-program "
expect "$ufork top --socket $dir/ctl.s" "$dir/ctl.sock "
[ $fail = 0 ] && echo "man pages and bash completion: as the parser has them"
exit $fail
