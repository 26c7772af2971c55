"""One gateway request: authenticate → route → price the worst case → hold → call the provider
(no database transaction or connection held) → relay → capture the actual cost and write the
usage event (gateway/recording.py).

The hold is resolved exactly once on every path: `Call.finish` runs once, from the code that
knows how the call ended (reply relayed, provider error, timeout, stream cut, client gone), and a
process killed in between leaves a hold that expires and is swept (gateway/tasks.py).
"""

import json
import logging
import secrets
from decimal import Decimal

import httpx
from django.http import HttpResponse, StreamingHttpResponse

from chargeback.errors import InsufficientFunds
from chargeback.money import ZERO, storage_str
from gateway import egress, estimate, translate
from gateway.attribution import end_user, tags_of
from gateway.auth import GroupContext
from gateway.capture import usage_capture
from gateway.errors import GatewayError
from gateway.pricing import Usage, cost_of, worst_case_cost
from gateway.providers import upstream_for, upstream_send
from gateway.ratelimit import ratelimit_admit, ratelimit_spend
from gateway.recording import event_record
from gateway.response_cache.flow import cache_call
from gateway.routing import route, wallet_of
from gateway.streaming import Relay, elapsed_ms, release_connection
from gateway.validation import lone_surrogate, storable
from gateway.wire import StreamScanner, text_bytes_of_json, usage_from_json
from wallets.services import hold_reserve

log = logging.getLogger(__name__)

EVENT_ENDPOINTS = {"chat": "chat.completions", "embeddings": "embeddings", "messages": "messages"}


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


def output_cap(endpoint: str, body: dict) -> int | None:
    """The client's output limit (None: the model's cap from the price applies)."""
    if endpoint == "embeddings":
        return 0
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is not None:
            return value
    return None


class Call:
    def __init__(
        self,
        *,
        request,
        ctx: GroupContext,
        endpoint: str,
        body: dict,
        raw: bytes,
        request_id,
        started,
    ):
        self.request = request
        self.ctx = ctx
        self.endpoint = endpoint
        self.body = body
        self.raw = raw
        self.request_id = request_id
        self.started = started
        self.hold = None
        self.wallet = None
        self.ttft_ms = None
        self.usage = None
        self.translate = False
        self.done = False
        self.cost = ZERO
        self.cache = None  # gateway.response_cache.flow.Fill when the group's cache is on
        self.available: Decimal | None = None

    # --- before the provider ----------------------------------------------------------------

    def run(self) -> HttpResponse:
        ctx, body = self.ctx, self.body
        # What the event records about the request is computed now, before the hold: nothing
        # that depends on the body may fail once the provider has answered (gateway.validation
        # made sure it can be computed).
        self.model = body.get("model")
        self.user = end_user(self.request, body)
        self.tags = tags_of(self.request)
        self.target, self.price = route(ctx, model=self.model, endpoint=self.endpoint)
        self._bounds()
        self.fingerprint = estimate.prompt_fingerprint(body)
        ratelimit_admit(ctx)
        self.upstream = upstream_for(self.target)
        self.translate = self.upstream.adapter.translates(self.endpoint)
        self.upstream_endpoint = "chat" if self.translate else self.endpoint
        self.fmt = self.upstream.adapter.wire_format(self.upstream_endpoint)
        self.stream = self.endpoint != "embeddings" and body.get("stream") is True
        payload = self.raw
        self.strip_usage = False
        if self.translate:
            payload = json.dumps(translate.request_to_openai(body)).encode()
            self.strip_usage = self.stream  # the Anthropic client gets usage in message_delta
        elif self.stream and self.fmt == "openai":
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            if not options.get("include_usage"):
                # Ask for the usage chunk; the client did not, so it will not see it.
                self.strip_usage = True
                options["include_usage"] = True
                payload = json.dumps({**body, "stream_options": options}).encode()
        if ctx.cache is not None:  # the response cache answers hits, stores misses' replies
            return cache_call(self, payload)
        self._hold()
        return self._call(payload)

    def _call(self, payload: bytes) -> HttpResponse:
        try:
            release_connection()
            if self.stream:
                return self._call_stream(payload)
            return self._call_json(payload)
        except BaseException:
            if not self.done:
                self.finish(status="error", http_status=500, error_code="gateway_error")
            raise

    def _bounds(self):
        """The most tokens this request may be billed for: `prompt_bound` input tokens and
        `completion_cap` output tokens (the output cap, the model's at most, times `n`). The
        hold covers them; an estimate for usage the provider never reported stays within them."""
        price, body = self.price, self.body
        try:
            # Encodes every string of the prompt (or input) to count its bytes: a lone
            # surrogate, which no UTF-8 text holds, shows here at no extra cost.
            if self.endpoint == "embeddings":
                self.prompt_bound = estimate.embedding_upper_bound(body)
            else:
                self.prompt_bound = estimate.prompt_upper_bound(
                    body, context_window=price.context_window
                )
        except UnicodeEncodeError:
            raise lone_surrogate() from None
        if self.endpoint == "embeddings":
            self.output_cap, self.choices = 0, 1
        else:
            cap = output_cap(self.endpoint, body)
            self.output_cap = price.max_output_tokens if cap is None else cap
            # Only chat completions have choices; every choice may use the whole output cap.
            self.choices = (body.get("n") or 1) if self.endpoint == "chat" else 1
        self.completion_cap = min(self.output_cap, price.max_output_tokens) * self.choices

    def _worst_case(self) -> Decimal:
        return worst_case_cost(
            self.price,
            prompt_upper_tokens=self.prompt_bound,
            max_output_tokens=self.output_cap,
            choices=self.choices,
        )

    def _hold(self, amount: Decimal | None = None):
        """Reserve the worst case (or `amount`: a priced cache hit) on the request's wallet."""
        ctx = self.ctx
        if not ctx.cost_tracking:
            return
        self.wallet = wallet_of(ctx, self.user)
        worst = self._worst_case() if amount is None else amount
        if self.wallet is None:
            if ctx.enforcement:
                self._reject(
                    f"No wallet covers consumer group {ctx.group_name}: allocate funds to its "
                    f"team (0.00 {ctx.currency} available).",
                    available=ZERO,
                )
            return
        try:
            # One statement on PostgreSQL, the ORM on SQLite (wallets decide: hold_reserve).
            self.hold = hold_reserve(
                wallet=self.wallet,
                amount=worst,
                request_id=self.request_id,
                enforce=ctx.enforcement,
            )
        except InsufficientFunds as exc:
            self._reject(exc.message, available=exc.available)

    def _reject(self, message: str, *, available):
        event_record(
            self._event_fields(
                status="rejected", http_status=402, error_code="insufficient_quota", usage=None
            )
        )
        raise GatewayError(
            402,
            message,
            type="insufficient_quota",
            code="insufficient_quota",
            headers={"x-kt-wallet-available": storage_str(available or ZERO)},
        )

    # --- the provider -----------------------------------------------------------------------

    def _send(self, payload: bytes) -> httpx.Response:
        adapter, options = self.upstream.adapter, self.target.options
        url = adapter.url(self.upstream.base_url, self.upstream_endpoint, options)
        headers = adapter.headers(self.upstream.secret, self.request, options)
        try:
            return upstream_send(url, headers, payload, options.get("timeouts"))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

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

    def _call_json(self, payload: bytes) -> HttpResponse:
        upstream = self._send(payload)
        try:
            content = upstream.read()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        finally:
            upstream.close()
        content_type = upstream.headers.get("content-type", "application/json")
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

    def _call_stream(self, payload: bytes):
        upstream = self._send(payload)
        if upstream.status_code >= 400:
            try:
                content = upstream.read()
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from exc
            finally:
                upstream.close()
            content_type = upstream.headers.get("content-type", "application/json")
            return self._passthrough_error(upstream.status_code, content, content_type)
        writer = None
        if self.translate:
            writer = translate.AnthropicStreamWriter(self.request_id, str(self.model))
        relay = Relay(self, upstream, StreamScanner(self.fmt, strip_usage=self.strip_usage), writer)
        response = StreamingHttpResponse(
            relay if self.cache is None else self.cache.tee(self, relay),
            content_type=upstream.headers.get("content-type", "text/event-stream"),
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: relay each chunk as it comes
        response["x-kt-request-id"] = self.request_id
        return response

    # --- after the provider -----------------------------------------------------------------

    def estimated_usage(self, completion_bytes: int, prompt_tokens: int = 0) -> Usage:
        """Usage the provider never reported: the prompt (the provider's count when it gave
        one), and the completion from the text that was relayed. Never zero, and never more
        than the request allowed (the hold's bounds: `prompt_bound`, `completion_cap`), so an
        estimate never charges beyond the hold."""
        prompt = prompt_tokens or min(estimate.prompt_estimate(self.body), self.prompt_bound)
        if self.endpoint == "embeddings":
            return Usage(prompt_tokens=prompt)
        completion = min(estimate.estimate_tokens(completion_bytes), self.completion_cap)
        return Usage(prompt_tokens=prompt, completion_tokens=completion)

    def _event_fields(self, *, status, http_status, error_code="", usage, usage_source="none"):
        ctx = self.ctx
        price = getattr(self, "price", None)
        target = getattr(self, "target", None)
        usage = usage or Usage()
        return {
            "organization_id": ctx.organization_id,
            "department_id": ctx.department_id,
            "consumer_group_id": ctx.group_id,
            "wallet_id": self.wallet.pk if self.wallet is not None else None,
            "request_id": self.request_id,
            "user": getattr(self, "user", ""),
            "tags": getattr(self, "tags", {}),
            "endpoint": EVENT_ENDPOINTS[self.endpoint],
            "provider": target.provider if target else "",
            "target_id": target.target_id if target else "",
            "model_requested": str(self.model or "")[:200],
            "model_served": storable(getattr(self, "model_served", ""), 200),
            "stream": getattr(self, "stream", False),
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "cost": self.cost,
            "currency": price.currency if price else ctx.currency,
            "price_id": price.pk if price else None,
            "usage_source": usage_source,
            "status": status,
            "http_status": http_status,
            "error_code": storable(error_code, 100),
            "latency_ms": elapsed_ms(self.started),
            "ttft_ms": self.ttft_ms,
            "prompt_fingerprint": getattr(self, "fingerprint", ""),
            # The provider billed more than the hold reserved (charged anyway; docs/pricing.md).
            "above_hold": self.hold is not None and self.cost > self.hold.amount,
        }

    def finish(self, *, status, http_status, error_code="", usage=None, usage_source="none"):
        """Price the usage, capture it (or release the hold) and write the event. Once."""
        if self.done:
            return
        self.done = True
        self.usage = usage
        self.usage_source = usage_source
        self.cost = cost_of(self.price, usage) if usage is not None else ZERO
        fields = self._event_fields(
            status=status,
            http_status=http_status,
            error_code=error_code,
            usage=usage,
            usage_source=usage_source if usage is not None else "none",
        )
        # Fast path: capture + ledger entry + event in one statement on PostgreSQL; retried,
        # then kept in the outbox, if the database is away (gateway/capture.py).
        if self.ctx.cost_tracking:
            self.available = usage_capture(self.hold, self.cost, fields)
        else:
            usage_capture(None, ZERO, {**fields, "wallet_id": None}, tracked=False)
        if usage is not None:
            # After the capture; it never raises (a store that fails cannot fail a charged call).
            ratelimit_spend(self.ctx, usage.prompt_tokens + usage.completion_tokens)

    def _respond(self, response: HttpResponse) -> HttpResponse:
        response["x-kt-request-id"] = self.request_id
        response["x-kt-cost"] = storage_str(self.cost)
        if self.available is not None:
            response["x-kt-wallet-available"] = storage_str(self.available)
        return response


def _json_or_none(content: bytes):
    try:
        return json.loads(content)
    except ValueError:
        return None
