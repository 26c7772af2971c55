"""A built-in fake LLM provider: a real HTTP server for the demo and the tests.

It speaks enough of two wire formats for the SDKs and the gateway:
- OpenAI: `POST /v1/chat/completions` (stream and not, `stream_options.include_usage` honoured),
  `POST /v1/embeddings`, `GET /v1/models`;
- Anthropic: `POST /v1/messages` (stream and not, usage in `message_start`/`message_delta`).

The reply text is derived from the prompt (same prompt, same text) and the usage is realistic:
prompt tokens ~ UTF-8 bytes / 4 plus a few per message and IMAGE_TOKENS per image or document
part (providers price an image by its size, not its base64 text), one completion token per word.

Options, as request headers `x-fake-<name>: <value>` or appended to the model name
(`fake-chat+latency=200+fault=500`). Names are hyphenated in headers (`x-fake-chunk-delay`):
servers drop header names with underscores (gunicorn, nginx), so a `x-fake-chunk_delay` header
never reaches the gateway. Hyphens and underscores are the same name here.
- `latency` ms before the first byte; `chunk-delay` ms between stream chunks;
- `chunks` number of content chunks in a stream; `tokens` words in the reply (else max_tokens,
  capped at 48; more than max_tokens plays a provider that bills beyond the request's cap);
- `cached` prompt tokens reported as cached (OpenAI `prompt_tokens_details.cached_tokens`,
  Anthropic `cache_read_input_tokens`); `cache-write` (Anthropic `cache_creation_input_tokens`);
- `fault`: `500`, `429`, `timeout` (no byte for `hang` ms, default 30 s), `stall` (a stream's
  head, then no event for `hang` ms), `reset` (drop the connection after half the chunks),
  `no_usage` (a stream without usage).

`server.posts` counts the POST requests a server received (tests of failover count them);
`server.calls` counts the well-formed ones by path.
"""

import hashlib
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from gateway.fake_text import (
    EMBEDDING_DIMENSIONS,
    MAX_DEFAULT_WORDS,
    fake_options,
    option_int,
    prompt_tokens_of,
    reply_words,
    split_text,
)


class FakeProviderHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kt-fake-provider/1"

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # quiet: tests and the demo start many requests
        return

    # --- plumbing -------------------------------------------------------------------------

    def _read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def _send_json(self, status: int, payload: dict, extra_headers: dict | None = None):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra_headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _event(self, data: str, event: str | None = None):
        prefix = f"event: {event}\n" if event else ""
        self.wfile.write(f"{prefix}data: {data}\n\n".encode())
        self.wfile.flush()

    def _reset(self):
        """Drop the connection with a TCP reset, as a dying upstream would."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _fault_before_body(self, options: dict, anthropic: bool) -> bool:
        """Handle latency and faults that happen before any byte; True when answered."""
        fault = options.get("fault", "")
        if fault == "timeout":
            time.sleep(option_int(options, "hang", 30_000) / 1000)
            self.close_connection = True
            return True
        time.sleep(option_int(options, "latency", 0) / 1000)
        if fault in ("500", "429"):
            status = int(fault)
            if anthropic:
                kind = "rate_limit_error" if status == 429 else "api_error"
                payload = {"type": "error", "error": {"type": kind, "message": f"fake {fault}"}}
            else:
                kind = "rate_limit_exceeded" if status == 429 else "server_error"
                payload = {
                    "error": {"message": f"fake {fault}", "type": kind, "code": kind, "param": None}
                }
            self._send_json(status, payload, {"retry-after": "1"} if status == 429 else None)
            return True
        return False

    def _stalled(self, options: dict) -> bool:
        """`fault=stall`: the stream's head is out; nothing more for `hang` ms, then close."""
        if options.get("fault") != "stall":
            return False
        time.sleep(option_int(options, "hang", 30_000) / 1000)
        self.close_connection = True
        return True

    # --- routes ---------------------------------------------------------------------------

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            data = [
                {"id": "fake-chat", "object": "model", "created": 0, "owned_by": "fake"},
                {"id": "fake-embed", "object": "model", "created": 0, "owned_by": "fake"},
            ]
            self._send_json(200, {"object": "list", "data": data})
            return
        self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self):
        with self.server.lock:
            self.server.posts += 1
        body = self._read_json()
        if body is None or not isinstance(body, dict):
            self._send_json(
                400, {"error": {"message": "bad json", "type": "invalid_request_error"}}
            )
            return
        path = self.path.split("?")[0].rstrip("/")
        self.server.count(path)
        model, options = fake_options(self.headers, str(body.get("model", "fake")))
        routes = {
            "/v1/chat/completions": self._chat,
            "/v1/embeddings": self._embeddings,
            "/v1/messages": self._messages,
        }
        handler = routes.get(path)
        if handler is None:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request"}})
            return
        if self._fault_before_body(options, anthropic=path == "/v1/messages"):
            return
        handler(body, model, options)

    def _words(self, body: dict, options: dict, seed: str) -> list[str]:
        cap = body.get("max_completion_tokens") or body.get("max_tokens") or MAX_DEFAULT_WORDS
        count = option_int(options, "tokens", min(int(cap), MAX_DEFAULT_WORDS))
        return reply_words(seed, max(1, count))

    def _chat(self, body: dict, model: str, options: dict):
        messages = body.get("messages") or []
        prompt = prompt_tokens_of(messages)
        words = self._words(body, options, json.dumps(messages, sort_keys=True))
        cached = min(option_int(options, "cached", 0), prompt)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(words),
            "total_tokens": prompt + len(words),
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        created = int(time.time())
        rid = "chatcmpl-" + hashlib.sha256(json.dumps(body).encode()).hexdigest()[:24]
        if not body.get("stream"):
            self._send_json(
                200,
                {
                    "id": rid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": " ".join(words)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        fault = options.get("fault", "")
        pieces = split_text(words, option_int(options, "chunks", 4))
        delay = option_int(options, "chunk_delay", 0) / 1000

        def chunk(delta, finish=None, **extra):
            payload = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            payload.update(extra)
            return json.dumps(payload)

        self._start_stream()
        if self._stalled(options):
            return
        self._event(chunk({"role": "assistant", "content": ""}))
        for i, piece in enumerate(pieces):
            if fault == "reset" and i >= max(1, len(pieces) // 2):
                self._reset()
                return
            if delay:
                time.sleep(delay)
            self._event(chunk({"content": piece}))
        self._event(chunk({}, "stop"))
        if include_usage and fault != "no_usage":
            self._event(
                json.dumps(
                    {
                        "id": rid,
                        "object": "chat.completion.chunk",
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        self._event("[DONE]")

    def _embeddings(self, body: dict, model: str, options: dict):
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        if inputs and all(isinstance(i, int) for i in inputs):
            inputs = [inputs]  # one pre-tokenised input
        data, tokens = [], 0
        for index, item in enumerate(inputs):
            text = item if isinstance(item, str) else json.dumps(item)
            tokens += max(1, len(text.encode()) // 4) if isinstance(item, str) else len(item)
            digest = hashlib.sha256(text.encode()).digest()
            vector = [round(b / 255 - 0.5, 6) for b in digest[:EMBEDDING_DIMENSIONS]]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        self._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _messages(self, body: dict, model: str, options: dict):
        messages = body.get("messages") or []
        prompt = prompt_tokens_of(messages, body.get("system"))
        words = self._words(body, options, json.dumps(messages, sort_keys=True))
        cached = min(option_int(options, "cached", 0), prompt)
        writes = min(option_int(options, "cache_write", 0), prompt - cached)
        usage = {
            "input_tokens": prompt - cached - writes,
            "cache_read_input_tokens": cached,
            "cache_creation_input_tokens": writes,
            "output_tokens": len(words),
        }
        mid = "msg_" + hashlib.sha256(json.dumps(body).encode()).hexdigest()[:24]
        if not body.get("stream"):
            self._send_json(
                200,
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": " ".join(words)}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": usage,
                },
            )
            return
        fault = options.get("fault", "")
        no_usage = fault == "no_usage"
        pieces = split_text(words, option_int(options, "chunks", 4))
        delay = option_int(options, "chunk_delay", 0) / 1000
        start_usage = {} if no_usage else {**usage, "output_tokens": 1}
        self._start_stream()
        if self._stalled(options):
            return
        self._event(
            json.dumps(
                {
                    "type": "message_start",
                    "message": {
                        "id": mid,
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                }
            ),
            "message_start",
        )
        self._event(
            json.dumps(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                }
            ),
            "content_block_start",
        )
        for i, piece in enumerate(pieces):
            if fault == "reset" and i >= max(1, len(pieces) // 2):
                self._reset()
                return
            if delay:
                time.sleep(delay)
            delta = {"type": "content_block_delta", "index": 0}
            delta["delta"] = {"type": "text_delta", "text": piece}
            self._event(json.dumps(delta), "content_block_delta")
        self._event(json.dumps({"type": "content_block_stop", "index": 0}), "content_block_stop")
        self._event(
            json.dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {} if no_usage else {"output_tokens": len(words)},
                }
            ),
            "message_delta",
        )
        self._event(json.dumps({"type": "message_stop"}), "message_stop")


class FakeProviderServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the concurrency tests open hundreds of connections at once

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lock = threading.Lock()
        self.posts = 0  # every POST, even a malformed one (failover tests count them)
        self.calls: dict[str, int] = {}  # well-formed POSTs by path (the cache tests count them)

    def count(self, path: str) -> None:
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1


def start_in_thread(host: str = "127.0.0.1", port: int = 0):
    """Start the fake provider on a daemon thread. Returns (server, base_url); stop it with
    `server.shutdown()` then `server.server_close()`."""
    server = FakeProviderServer((host, port), FakeProviderHandler)
    thread = threading.Thread(target=server.serve_forever, name="fake-provider", daemon=True)
    thread.start()
    bound_host, bound_port = server.server_address[:2]
    return server, f"http://{bound_host}:{bound_port}"
