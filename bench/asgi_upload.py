"""The ASGI upload of bench/python-vs-peers.sh (APPS=asgi-upload): reads the
request body to its end, piece by piece as the server gives it, and answers
its size."""


async def app(scope, receive, send):
    if scope['type'] != 'http':
        return
    size, more = 0, True
    while more:
        m = await receive()
        if m['type'] == 'http.disconnect':
            return
        size += len(m.get('body', b''))
        more = m.get('more_body', False)
    await send({'type': 'http.response.start', 'status': 200, 'headers': [(b'content-type', b'text/plain')]})
    await send({'type': 'http.response.body', 'body': b'%d\n' % size})
