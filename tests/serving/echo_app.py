"""A WSGI app for the serving tests: answers with the id of the thread that served it (after
a second on /slow); /body answers with the length of the body it read, /stream sends eight
chunks half a second apart (a four-second stream, like a short LLM answer),
/big 8 MB, /pid the worker's process id."""

import os
import threading
import time


def _stream():
    for i in range(8):
        yield f"data: chunk {i}\n\n".encode()
        time.sleep(0.5)
    yield b"data: [DONE]\n\n"


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return _stream()
    if path == "/slow":
        time.sleep(1)
    if path == "/pid":
        path = str(os.getpid())
    if path == "/big":  # 8 MB, more than socket buffers hold: the server waits on a slow reader
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (b"x" * 65536 for _ in range(128))
    if path == "/body":
        path = str(len(environ["wsgi.input"].read()))
    body = f"{threading.get_ident()} {path}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
