#!/usr/bin/env bash
# `ufork wsgi MODULE:APP` and `ufork asgi MODULE:APP` (the command line,
# every default) against the servers a Python user would otherwise type,
# 2 workers each, every server with its own defaults but the address and
# the worker count (and uvicorn's access log off: a stricter peer):
#   WSGI: gunicorn (sync workers) and uWSGI --master, on the Django 3.2 page
#   of bench/memory-vs-peers.sh (bench/django_site) and on the hello app
#   (bench/wsgi_hello.py);
#   ASGI: uvicorn --workers 2 and gunicorn -k uvicorn.workers.UvicornWorker
#   (uvloop and httptools), on a raw ASGI hello (bench/asgi_hello.py) and a
#   FastAPI app's / and /json (bench/fastapi_app.py).
# wrk -c64 with one thread and with two (the client shapes give different
# ratios), the servers taking turns for ROUNDS rounds (default 3): medians.
# Each peer's version and command line are printed beside its figures, and
# how its connections spread over its workers in each round (wrk opens its
# connections at once: the split is the luck of that burst). Not
# part of `make test`; as root on a quiet machine (installs wrk, gunicorn,
# uwsgi, python3-django, python3-uvicorn, python3-uvloop, python3-fastapi).
#   [ROUNDS=3] [CONNS=64] [APPS="django hello asgi fastapi fastapi-json"] (also asgi-upload: POSTs of 1 MiB) bench/python-vs-peers.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
build=$(realpath "${1:-build}")
secs=${2:-10}
[ -x "$build/cli/ufork" ] && [ -d "$build/python/ufork" ] || { echo "build first: make (the CLI and the Python module)" >&2; exit 2; }
here=$(dirname "$(realpath "$0")")

source "$here/common.sh"
mapfile -t need < <(wsgi_peers_missing)
/usr/bin/python3 -c 'import uvicorn' 2>/dev/null || need+=(python3-uvicorn)
/usr/bin/python3 -c 'import uvloop' 2>/dev/null || need+=(python3-uvloop)
/usr/bin/python3 -c 'import httptools' 2>/dev/null || need+=(python3-httptools)
/usr/bin/python3 -c 'import fastapi' 2>/dev/null || need+=(python3-fastapi)
install_packages "${need[@]}"

export PYTHONPATH="$here/django_site:$here" DJANGO_SETTINGS_MODULE=bench_django.settings PYTHONDONTWRITEBYTECODE=1
command_of() {  # $1: server, $2: port, $3: MODULE:APP: its command line, in cmd
  case $1 in
    ufork) cmd=("$build/cli/ufork" wsgi -w 2 -b "127.0.0.1:$2" "$3") ;;
    ufork-asgi) cmd=("$build/cli/ufork" asgi -w 2 -b "127.0.0.1:$2" "$3") ;;
    gunicorn) cmd=(/usr/bin/python3 -m gunicorn -w 2 -b "127.0.0.1:$2" "$3") ;;
    uwsgi) cmd=(uwsgi --plugin python3 --master --processes 2 --http-socket "127.0.0.1:$2" --module "$3" --die-on-term) ;;
    uvicorn) cmd=(/usr/bin/python3 -m uvicorn --workers 2 --port "$2" --no-access-log "$3") ;;
    gunicorn-uvicorn) cmd=(/usr/bin/python3 -m gunicorn -k uvicorn.workers.UvicornWorker -w 2 -b "127.0.0.1:$2" "$3") ;;
  esac
}
version_of() {
  case $1 in
    ufork*) "$build/cli/ufork" --version ;;
    gunicorn) echo "gunicorn $(/usr/bin/python3 -c 'import gunicorn; print(gunicorn.__version__)')" ;;
    uwsgi) echo "uWSGI $(uwsgi --version)" ;;
    uvicorn) echo "uvicorn $(/usr/bin/python3 -c 'import uvicorn, uvloop; print(uvicorn.__version__, "with uvloop", uvloop.__version__)')" ;;
    gunicorn-uvicorn) echo "gunicorn $(/usr/bin/python3 -c 'import gunicorn, uvicorn; print(gunicorn.__version__, "with uvicorn", uvicorn.__version__)')" ;;
  esac
}
servers_of() {  # $1: app
  case $1 in
    django|hello) echo "ufork gunicorn uwsgi" ;;
    *) echo "ufork-asgi uvicorn gunicorn-uvicorn" ;;
  esac
}

declare -A pid_of port_of
rounds=${ROUNDS:-3}
c=${CONNS:-64}  # CONNS=1: one keep-alive client (wrk -t1 only)
thread_counts=(1 2)
[ "$c" -ge 2 ] || thread_counts=(1)
port=7870
apps=(${APPS:-django hello asgi fastapi fastapi-json})
echo "python3 $(/usr/bin/python3 -c 'import sys; print(sys.version.split()[0])'), Django $(/usr/bin/python3 -c 'import django; print(django.__version__)'), FastAPI $(/usr/bin/python3 -c 'import fastapi; print(fastapi.__version__)'), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $(nproc) CPUs"
for app in "${apps[@]}"; do
  path=/
  case $app in
    django) spec=bench_django.wsgi:application ;;
    hello) spec=wsgi_hello:app ;;
    asgi) spec=asgi_hello:app ;;
    fastapi) spec=fastapi_app:app ;;
    fastapi-json) spec=fastapi_app:app path=/json ;;
    asgi-upload) spec=asgi_upload:app ;;  # a POST of 1 MiB each (bench/upload.lua)
  esac
  wrk_extra=()
  [ "$app" != asgi-upload ] || wrk_extra=(-s "$here/upload.lua")
  read -ra servers <<< "$(servers_of $app)"
  for s in "${servers[@]}"; do
    port=$((port + 1))
    command_of "$s" $port "$spec"
    "${cmd[@]}" </dev/null >"$tmp/$s-$app.log" 2>&1 & pids+=($!)
    pid_of[$s]=$! port_of[$s]=$port
    wait_port $port
    echo "  $(version_of "$s"): ${cmd[*]}"
  done
  sleep 1  # workers that load the app after their fork
  for threads in "${thread_counts[@]}"; do
    export threads
    for r in $(seq "$rounds"); do
      for s in "${servers[@]}"; do
        measure "$s-$app-t$threads" "http://127.0.0.1:${port_of[$s]}$path" $c "${pid_of[$s]}" "${wrk_extra[@]}"
      done
    done
  done
  for s in "${servers[@]}"; do kill -TERM "${pid_of[$s]}"; done
  wait 2>/dev/null || true
  pids=()
done

echo
echo "| app | wrk | server | requests/s (median of $rounds) | p99 | ratio to the 2nd | ratio to the 3rd | worker CPU per request | runs with socket errors | connections per worker, each round |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for app in "${apps[@]}"; do
  read -ra servers <<< "$(servers_of $app)"
  for threads in "${thread_counts[@]}"; do
    g=$(median "$tmp/${servers[1]}-$app-t$threads-$c.txt" 1)
    u=$(median "$tmp/${servers[2]}-$app-t$threads-$c.txt" 1)
    for s in "${servers[@]}"; do
      f="$tmp/$s-$app-t$threads-$c.txt"
      rps=$(median "$f" 1)
      echo "| $app | -t$threads -c$c | $s | $rps | $(median "$f" 2) ms |" \
        "$(awk -v a="$rps" -v b="$g" 'BEGIN {printf "%.2f", a / b}') | $(awk -v a="$rps" -v b="$u" 'BEGIN {printf "%.2f", a / b}') |" \
        "$(median "$f" 4) us | $(awk '{s += $3} END {print s}' "$f") | $(awk '{print $6}' "$f" | paste -sd' ') |"
    done
  done
done
echo "(socket errors: uWSGI's --http-socket closes each connection after its answer; wrk counts those as read errors)"
