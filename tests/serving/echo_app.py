"""A WSGI app for the serving tests: answers with the id of the thread that served it (after\na second on /slow)."""

import threading
import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(1)
    body = f"{threading.get_ident()} {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
