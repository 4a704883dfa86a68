#!/usr/bin/env bash
# `ufork wsgi MODULE:APP` (the command line, every default) against the
# servers a Python user would otherwise type: gunicorn (sync workers) and
# uWSGI --master, 2 workers each, every server with its own defaults but
# the address and the worker count, on the Django 3.2 page of
# bench/memory-vs-peers.sh (bench/django_site) and on the hello app
# (bench/wsgi_hello.py). wrk -c64 with one thread and with two (the client
# shapes give different ratios), the servers taking turns for ROUNDS rounds
# (default 3): medians. Each peer's version and command line are printed
# beside its figures. Not part of `make test`; as root on a quiet machine
# (installs wrk, gunicorn, uwsgi and python3-django).
#   [ROUNDS=3] bench/python-vs-peers.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
build=$(realpath "${1:-build}")
secs=${2:-10}
[ -x "$build/cli/ufork" ] && [ -d "$build/python/ufork" ] || { echo "build first: make (the CLI and the Python module)" >&2; exit 2; }
here=$(dirname "$(realpath "$0")")

need=()
command -v wrk >/dev/null || need+=(wrk)
/usr/bin/python3 -c 'import gunicorn' 2>/dev/null || need+=(gunicorn)
/usr/bin/python3 -c 'import django' 2>/dev/null || need+=(python3-django)
command -v uwsgi >/dev/null || need+=(uwsgi)
[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || need+=(uwsgi-plugin-python3)
source "$here/common.sh"
install_packages "${need[@]}"

export PYTHONPATH="$here/django_site:$here" DJANGO_SETTINGS_MODULE=bench_django.settings PYTHONDONTWRITEBYTECODE=1
command_of() {  # $1: server, $2: port, $3: MODULE:APP: its command line, in cmd
  case $1 in
    ufork) cmd=("$build/cli/ufork" wsgi -w 2 -b "127.0.0.1:$2" "$3") ;;
    gunicorn) cmd=(/usr/bin/python3 -m gunicorn -w 2 -b "127.0.0.1:$2" "$3") ;;
    uwsgi) cmd=(uwsgi --plugin python3 --master --processes 2 --http-socket "127.0.0.1:$2" --module "$3" --die-on-term) ;;
  esac
}
version_of() {
  case $1 in
    ufork) "$build/cli/ufork" --version ;;
    gunicorn) echo "gunicorn $(/usr/bin/python3 -c 'import gunicorn; print(gunicorn.__version__)')" ;;
    uwsgi) echo "uWSGI $(uwsgi --version)" ;;
  esac
}

servers=(ufork gunicorn uwsgi)
rounds=${ROUNDS:-3}
c=64
port=7870
echo "python3 $(/usr/bin/python3 -c 'import sys; print(sys.version.split()[0])'), Django $(/usr/bin/python3 -c 'import django; print(django.__version__)'), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $(nproc) CPUs"
for app in django hello; do
  [ $app = django ] && spec=bench_django.wsgi:application || spec=wsgi_hello:app
  for s in "${servers[@]}"; do
    port=$((port + 1))
    command_of "$s" $port "$spec"
    "${cmd[@]}" </dev/null >"$tmp/$s-$app.log" 2>&1 & pids+=($!)
    eval "${s}_pid=$!" "${s}_port=$port"
    wait_port $port
    echo "  $(version_of "$s"): ${cmd[*]}"
  done
  sleep 1  # workers that load the app after their fork
  for threads in 1 2; do
    export threads
    for r in $(seq "$rounds"); do
      for s in "${servers[@]}"; do
        eval "p=\$${s}_port pid=\$${s}_pid"
        measure "$s-$app-t$threads" "http://127.0.0.1:$p/" $c "$pid"
      done
    done
  done
  for s in "${servers[@]}"; do eval "kill -TERM \$${s}_pid"; done
  wait 2>/dev/null || true
  pids=()
done

echo
echo "| app | wrk | server | requests/s (median of $rounds) | p99 | ratio to gunicorn | ratio to uWSGI | worker CPU per request | runs with socket errors |"
echo "|---|---|---|---|---|---|---|---|---|"
for app in django hello; do
  for threads in 1 2; do
    g=$(median "$tmp/gunicorn-$app-t$threads-$c.txt" 1)
    u=$(median "$tmp/uwsgi-$app-t$threads-$c.txt" 1)
    for s in "${servers[@]}"; do
      f="$tmp/$s-$app-t$threads-$c.txt"
      rps=$(median "$f" 1)
      echo "| $app | -t$threads -c$c | $s | $rps | $(median "$f" 2) ms |" \
        "$(awk -v a="$rps" -v b="$g" 'BEGIN {printf "%.2f", a / b}') | $(awk -v a="$rps" -v b="$u" 'BEGIN {printf "%.2f", a / b}') |" \
        "$(median "$f" 4) us | $(awk '{s += $3} END {print s}' "$f") |"
    done
  done
done
echo "(socket errors: uWSGI's --http-socket closes each connection after its answer; wrk counts those as read errors)"
