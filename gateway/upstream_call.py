"""The provider half of a gateway request (`Call`, gateway/proxy.py): send the request
upstream, and turn what comes back (a reply, a stream, an error status, a transport failure)
into the client's response and the call's one `finish`. A failure before the client got a byte
may move the call to another target (gateway/call_routing.py `_failed_over`): a reply is read
whole before it is relayed, and, with failover on, a stream's first line is read before the
response starts."""

import itertools
import json
import logging
import time

import httpx
from django.http import HttpResponse, StreamingHttpResponse

from gateway import egress, translate
from gateway.errors import GatewayError
from gateway.failover import Candidate, failure_of
from gateway.providers import upstream_send
from gateway.streaming import Relay
from gateway.wire import StreamScanner, text_bytes_of_json, usage_from_json

log = logging.getLogger("gateway.proxy")  # the name operators grep for (docs/gateway.md)


class UpstreamCall:
    """The provider part of `gateway.proxy.Call` (a mixin: it reads the call's state)."""

    def _send(self) -> httpx.Response:
        """POST the payload to the current target (raises httpx.HTTPError)."""
        adapter, options = self.upstream.adapter, self.target.options
        url = adapter.url(self.upstream.base_url, self.upstream_endpoint, options)
        headers = adapter.headers(self.upstream.secret, self.request, options)
        self.sent_at = time.perf_counter()
        return upstream_send(url, headers, self.payload, options.get("timeouts"))

    def _served(self, status: int) -> None:
        """The current target answered (its reply's head is in): unless with a failure's status,
        a half-open circuit closes, and its time counts for the `latency` order."""
        if self.failover is not None and not failure_of(status=status)[0]:
            self.failover.succeeded(
                Candidate(self.target, self.routed_model, self.price),
                time.perf_counter() - self.sent_at,
            )

    def log_upstream_failure(self, exc: Exception, where: str = "before the reply"):
        # The event keeps a code; the log keeps what happened, for whoever runs the gateway.
        log.warning(
            "request %s: target %s: %s: %s: %s",
            self.request_id,
            self.target.target_id,
            where,
            type(exc).__name__,
            exc,
        )

    def _transport_error(self, exc: Exception):
        self.log_upstream_failure(exc)
        refused = egress.refusal_of(exc)
        if refused is not None:  # the operator's address rules (gateway/egress.py)
            self.finish(status="provider_error", http_status=502, error_code="upstream_not_allowed")
            return GatewayError(
                502,
                f"The provider ({self.target.target_id}) is at an address the gateway may not "
                f"connect to: {refused.reason}.",
                type="server_error",
                code="upstream_not_allowed",
            )
        if isinstance(exc, httpx.TimeoutException):
            self.finish(status="timeout", http_status=504, error_code="upstream_timeout")
            return GatewayError(
                504,
                f"The provider ({self.target.target_id}) did not answer in time.",
                type="timeout",
                code="upstream_timeout",
            )
        self.finish(status="provider_error", http_status=502, error_code="upstream_unreachable")
        return GatewayError(
            502,
            f"The provider ({self.target.target_id}) could not be reached: {type(exc).__name__}.",
            type="server_error",
            code="upstream_unreachable",
        )

    def _passthrough_error(self, status: int, content: bytes, content_type: str) -> HttpResponse:
        data = _json_or_none(content)
        usage = usage_from_json(self.fmt, data)
        error = (data or {}).get("error") if isinstance(data, dict) else None
        code = ""
        if isinstance(error, dict):
            code = str(error.get("code") or error.get("type") or "")[:100]
        self.finish(
            status="provider_error",
            http_status=status,
            error_code=code or f"http_{status}",
            usage=usage,
            usage_source="provider" if usage else "none",
        )
        if self.translate:
            content = json.dumps(translate.error_to_anthropic(status, data)).encode()
            content_type = "application/json"
        return self._respond(HttpResponse(content, status=status, content_type=content_type))

    def _call_json(self) -> HttpResponse:
        while True:
            try:
                upstream = self._send()
                try:
                    content = upstream.read()
                finally:
                    upstream.close()
            except httpx.HTTPError as exc:
                if self._failed_over(exc=exc):
                    continue
                raise self._transport_error(exc) from exc
            if upstream.status_code >= 400 and self._failed_over(status=upstream.status_code):
                continue
            break
        content_type = upstream.headers.get("content-type", "application/json")
        self._served(upstream.status_code)
        if upstream.status_code >= 400:
            return self._passthrough_error(upstream.status_code, content, content_type)
        data = _json_or_none(content)
        usage = usage_from_json(self.fmt, data)
        source = "provider"
        if usage is None:
            usage, source = self.estimated_usage(text_bytes_of_json(self.fmt, data)), "estimated"
        self.model_served = str((data or {}).get("model") or "") if isinstance(data, dict) else ""
        self.finish(status="ok", http_status=upstream.status_code, usage=usage, usage_source=source)
        if self.translate and isinstance(data, dict):
            reply = translate.reply_to_anthropic(data, usage, self.request_id)
            content, content_type = json.dumps(reply).encode(), "application/json"
        response = HttpResponse(content, status=upstream.status_code, content_type=content_type)
        return self._respond(response)

    def _call_stream(self):
        while True:
            try:
                upstream = self._send()
            except httpx.HTTPError as exc:
                if self._failed_over(exc=exc):
                    continue
                raise self._transport_error(exc) from exc
            if upstream.status_code >= 400:
                try:
                    content = upstream.read()
                except httpx.HTTPError as exc:
                    if self._failed_over(exc=exc):
                        continue
                    raise self._transport_error(exc) from exc
                finally:
                    upstream.close()
                if self._failed_over(status=upstream.status_code):
                    continue
                self._served(upstream.status_code)
                content_type = upstream.headers.get("content-type", "application/json")
                return self._passthrough_error(upstream.status_code, content, content_type)
            lines = upstream.iter_lines()
            if self.failover is not None and self.failover.settings.enabled:
                # Read the first line before the response starts: until then the client has
                # nothing, so a timeout or a cut connection may still move to the next target.
                try:
                    first = next(lines, None)
                except httpx.HTTPError as exc:
                    upstream.close()
                    if self._failed_over(exc=exc):
                        continue
                    raise self._transport_error(exc) from exc
                lines = itertools.chain(() if first is None else (first,), lines)
            break
        self._served(upstream.status_code)
        writer = None
        if self.translate:
            writer = translate.AnthropicStreamWriter(self.request_id, str(self.model))
        scanner = StreamScanner(self.fmt, strip_usage=self.strip_usage)
        relay = Relay(self, upstream, scanner, writer, lines=lines)
        response = StreamingHttpResponse(
            relay if self.cache is None else self.cache.tee(self, relay),
            content_type=upstream.headers.get("content-type", "text/event-stream"),
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: relay each chunk as it comes
        response["x-kt-request-id"] = self.request_id
        if self.limits is not None:
            for name, value in self.limits.headers().items():
                response[name] = value
        return response


def _json_or_none(content: bytes):
    try:
        return json.loads(content)
    except ValueError:
        return None
