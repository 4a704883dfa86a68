"""The WSGI app of bench/wsgi-vs-gunicorn.sh: hello, as every server's own."""


def app(environ, start_response):
    body = b'Hello, World!\n'
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
