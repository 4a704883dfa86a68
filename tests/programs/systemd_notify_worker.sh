#!/bin/sh
# A shell worker for `ufork run --notify`: systemd's own client of the
# protocol says it is ready (and waits on BARRIER=1 until the arbiter
# closes the fd it passed).
systemd-notify --ready --status="shell worker $$ ready"
echo "systemd-notify exit $?"
exec sleep 1000
