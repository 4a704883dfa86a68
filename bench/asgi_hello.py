"""The ASGI hello of bench/python-vs-peers.sh: a coroutine that sends the
start and the body, nothing else (no lifespan)."""


async def app(scope, receive, send):
    if scope['type'] != 'http':
        return
    await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', b'text/plain')]})
    await send({'type': 'http.response.body', 'body': b'Hello, World!\n'})
