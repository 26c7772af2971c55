"""The body of a streamed reply: upstream SSE events relayed as they arrive, the call finished
exactly once however the stream ends."""

import json
import time

import httpx
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

from chargeback.money import storage_str
from gateway.recording import hold_keepalive
from gateway.wire import StreamScanner


def elapsed_ms(since: float) -> int:
    return max(0, int((time.perf_counter() - since) * 1000))


def release_connection():
    """Give the database connection back to the pool before a slow upstream call, so hundreds
    of open streams do not pin the pool. Only with a pool and outside a transaction."""
    db = connections[DEFAULT_DB_ALIAS]  # once: `connection` is a proxy looked up per use
    if (
        db.connection is not None
        and not db.in_atomic_block
        and db.settings_dict.get("OPTIONS", {}).get("pool")
    ):
        db.close()


class Relay:
    """The body of a streamed reply: relays upstream events as they arrive and finishes the
    call when the stream ends, breaks, or the client goes away (the WSGI server closes us).

    `close()` also covers a generator that was never started (closing one runs no code)."""

    def __init__(
        self, call, upstream: httpx.Response, scanner: StreamScanner, writer=None, lines=None
    ):
        self.call = call
        self.upstream = upstream
        # The reply's lines: a failover has read the first one already (gateway/upstream_call.py).
        self.lines = upstream.iter_lines() if lines is None else lines
        self.scanner = scanner
        self.writer = writer  # translates OpenAI chunks for an Anthropic client
        self._events = self._run()

    def __iter__(self):
        return self._events

    def close(self):
        try:
            self._events.close()
        finally:
            if not self.call.done:
                self.upstream.close()
                self._finish("client_disconnect", "client_disconnect")

    def _finish(self, status: str, error_code: str):
        call, scanner = self.call, self.scanner
        call.model_served = scanner.model
        if scanner.usage_complete and scanner.usage is not None:
            usage, source = scanner.usage, "provider"
        else:
            prompt = scanner.usage.prompt_tokens if scanner.usage is not None else 0
            usage, source = call.estimated_usage(scanner.text_bytes, prompt), "estimated"
        http_status = 200 if status in ("ok", "client_disconnect") else 502
        if status == "timeout":
            http_status = 504
        call.finish(
            status=status,
            http_status=http_status,
            error_code=error_code,
            usage=usage,
            usage_source=source,
        )

    def _outcome(self) -> tuple[str, str]:
        scanner = self.scanner
        if scanner.error is not None:
            return "provider_error", str(scanner.error.get("type") or "stream_error")[:100]
        if scanner.finished or scanner.usage_complete:
            return "ok", ""
        return "provider_error", "stream_incomplete"

    def _run(self):
        call, scanner = self.call, self.scanner
        # Until the loop ends by itself, the only way out is the client closing us.
        status, error_code = "client_disconnect", "client_disconnect"
        # A stream may outlive its hold's expiry: renew the hold every third of its TTL.
        renew_every = settings.KT_HOLD_TTL_SECONDS / 3
        renewed = time.monotonic()
        try:
            for line in self.lines:
                out = scanner.feed(line)
                if out is None:
                    continue
                if call.hold is not None and time.monotonic() - renewed > renew_every:
                    renewed = time.monotonic()
                    hold_keepalive(call.hold)
                    release_connection()
                if call.ttft_ms is None:
                    call.ttft_ms = elapsed_ms(call.started)
                if scanner.finished and not call.done:
                    # Record before relaying the last event: once a client has the whole
                    # reply, its cost is in the wallet and the event is written.
                    status, error_code = self._outcome()
                    self._finish(status, error_code)
                if self.writer is not None:
                    out = self._translated()
                yield out
            tail = scanner.flush()
            if tail:
                yield tail
            status, error_code = self._outcome()
        except httpx.TimeoutException as exc:
            call.log_upstream_failure(exc, "mid-stream")
            status, error_code = "timeout", "upstream_timeout"
        except httpx.HTTPError as exc:
            call.log_upstream_failure(exc, "mid-stream")
            status, error_code = "provider_error", "upstream_reset"
        except Exception:
            status, error_code = "error", "gateway_error"
            raise
        finally:
            self.upstream.close()
            self._finish(status, error_code)
        if status in ("timeout", "provider_error") and scanner.error is None:
            # Tell the SDK the stream broke instead of letting it end quietly.
            yield self._error_event(error_code)
        # SSE comment lines are ignored by clients; this one reports what the call cost.
        yield (
            f": x-kt-request-id={call.request_id} x-kt-cost={storage_str(call.cost)}"
            f" x-kt-wallet-available={storage_str(call.available)}\n\n"
        ).encode()

    def _translated(self) -> bytes:
        last = self.scanner.last
        if last == "[DONE]":
            return self.writer.finish(self.call.usage)
        return self.writer.feed(last) if isinstance(last, dict) else b""

    def _error_event(self, error_code: str) -> bytes:
        message = f"The provider stream broke off ({error_code})."
        if self.call.endpoint == "messages":
            payload = {"type": "error", "error": {"type": "api_error", "message": message}}
            return f"event: error\ndata: {json.dumps(payload)}\n\n".encode()
        payload = {"error": {"message": message, "type": "server_error", "code": error_code}}
        return f"data: {json.dumps(payload)}\n\n".encode()
