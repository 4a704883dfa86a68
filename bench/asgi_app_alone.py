"""An ASGI app's own cost: the app called in a loop on uvloop with no
server and no socket (receive gives an empty body, send drops what it is
given), for the share of a served request that is the app's; then the
same with an asyncio task made for each call, as a server makes one for
each request.
    /usr/bin/python3 bench/asgi_app_alone.py MODULE:APP PATH [CALLS]
e.g. (from bench/) asgi_app_alone.py fastapi_app:app /json"""
import asyncio
import importlib
import os
import sys
import time


def main():
    spec, path = sys.argv[1], sys.argv[2]
    calls = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
    sys.path.insert(0, os.getcwd())
    module, _, name = spec.partition(':')
    app = getattr(importlib.import_module(module), name or 'app')
    scope = {'type': 'http', 'asgi': {'version': '3.0', 'spec_version': '2.3'}, 'http_version': '1.1',
             'method': 'GET', 'scheme': 'http', 'path': path, 'raw_path': path.encode(), 'query_string': b'',
             'root_path': '', 'headers': [(b'host', b'127.0.0.1:8000')], 'client': ('127.0.0.1', 50000),
             'server': ('127.0.0.1', 8000)}

    async def receive():
        return {'type': 'http.request', 'body': b'', 'more_body': False}

    async def send(message):
        pass

    async def run(tasks):
        loop = asyncio.get_running_loop()
        for n in (calls // 10, calls):  # a warm-up, then the count
            start = time.perf_counter()
            for _ in range(n):
                call = app(dict(scope, state={}), receive, send)
                await (loop.create_task(call) if tasks else call)
        return (time.perf_counter() - start) / calls

    import uvloop
    uvloop.install()
    print('%s %s on uvloop %s, %d calls: %.1f us a call, %.1f us with a task for each' % (
        spec, path, uvloop.__version__, calls, asyncio.run(run(False)) * 1e6, asyncio.run(run(True)) * 1e6))


main()
