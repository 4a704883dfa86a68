-- wrk -s bench/upload.lua: each request a POST of 1 MiB (bench/python-vs-peers.sh, APPS=asgi-upload).
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
