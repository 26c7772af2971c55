"""A loopback listener that plays an OpenAI-compatible provider and records what reaches it:
every TCP connection accepted and every request's path and headers. Attack tests use it as
the attacker's server (nothing may reach it); secret tests as the provider (the key must)."""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = {
    "id": "chatcmpl-listener",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-test",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}


@dataclass
class Seen:
    connections: int = 0
    requests: list = field(default_factory=list)  # (path, {header: value})
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, seen: Seen):
        self.seen = seen
        super().__init__(address, _Handler)

    def verify_request(self, request, client_address):
        with self.seen.lock:
            self.seen.connections += 1
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        with self.server.seen.lock:
            self.server.seen.requests.append((self.path, dict(self.headers.items())))
        body = json.dumps(REPLY).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Listener:
    def __init__(self):
        self.seen = Seen()
        self.server = _Server(("127.0.0.1", 0), self.seen)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
