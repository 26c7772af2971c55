"""One gateway request: authenticate → route → price the worst case → hold → call the provider
(no database transaction or connection held) → relay → capture the actual cost and write the
usage event (gateway/recording.py).

The hold is resolved exactly once on every path: `Call.finish` runs once, from the code that
knows how the call ended (reply relayed, provider error, timeout, stream cut, client gone), and a
process killed in between leaves a hold that expires and is swept (gateway/tasks.py).
"""

import secrets
from decimal import Decimal

from django.http import HttpResponse

from chargeback.errors import InsufficientFunds
from chargeback.money import ZERO, storage_str
from gateway import estimate, hooks
from gateway.attribution import end_user, tags_of
from gateway.auth import GroupContext
from gateway.call_routing import CallRouting
from gateway.capture import usage_capture
from gateway.conversion import Converting
from gateway.errors import GatewayError
from gateway.pricing import Usage, cost_of, worst_case_cost
from gateway.ratelimit import ratelimit_admit, ratelimit_finish
from gateway.recording import event_record
from gateway.response_cache.flow import cache_begin
from gateway.routing import wallets_of
from gateway.streaming import elapsed_ms, release_connection
from gateway.tickets import ticket_hold, ticket_or_wait, ticket_requested
from gateway.upstream_call import UpstreamCall
from gateway.validation import lone_surrogate, storable
from wallets.services import hold_reserve

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


class Call(CallRouting, UpstreamCall, Converting):
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
        self.limits = None

    # --- before the provider ----------------------------------------------------------------

    def run(self) -> HttpResponse:
        ctx, body = self.ctx, self.body
        # What the event records about the request is computed now, before the hold: nothing
        # that depends on the body may fail once the provider has answered (gateway.validation
        # made sure it can be computed).
        self.model = body.get("model")
        self.user = end_user(self.request, body)
        self.tags = tags_of(self.request)
        self._route()  # gateway/call_routing.py: policy, target, price, failover candidates
        self._bounds()
        self.fingerprint = estimate.prompt_fingerprint(body)
        self.limits = ratelimit_admit(ctx, user=self.user, request_id=self.request_id)
        self.stream = self.endpoint != "embeddings" and body.get("stream") is True
        try:
            self._connect()
            if ctx.cache is not None:  # the response cache: a hit is answered from the store
                hit = cache_begin(self)
                if hit is not None:
                    ratelimit_finish(self.limits, 0)
                    return hit
            self._hold()
        except BaseException:
            if self.cache is not None:
                self.cache.abandon()  # nothing stored; requests waiting for this reply go on
            ratelimit_finish(self.limits, 0)  # refused before the call: its slot freed
            raise
        if self.cache is not None:
            return self.cache.fill(self)  # the call, its reply stored
        return self._call()

    def _call(self) -> HttpResponse:
        try:
            release_connection()
            if self.stream:
                return self._call_stream()
            return self._call_json()
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
        """In the wallet's currency: a 400 when the price's cannot be converted (nothing held)."""
        worst = worst_case_cost(
            self.price,
            prompt_upper_tokens=self.prompt_bound,
            max_output_tokens=self.output_cap,
            choices=self.choices,
        )
        return self.to_wallet(worst, self.price, strict=True)

    def _hold(self, amount: Decimal | None = None):
        """Reserve the worst case (or `amount`: a priced cache hit) on the first wallet of the
        request's chain that can cover it (user, team, organization: wallets/cascade.py)."""
        ctx = self.ctx
        if not ctx.cost_tracking:
            return
        chain = wallets_of(ctx, self.user)
        self.wallet = chain[0] if chain else None
        worst = self._worst_case() if amount is None else amount
        if self.wallet is None:
            if ctx.enforcement:
                self._reject(
                    f"No wallet covers consumer group {ctx.group_name}: allocate funds to its "
                    f"team (0.00 {ctx.currency} available).",
                    available=ZERO,
                )
            return
        if ticket_id := ticket_requested(self.request):  # a retry redeeming its cost ticket
            self.hold = ticket_hold(self, ticket_id, worst)
            self.wallet = next((w for w in chain if w.pk == self.hold.wallet_id), self.wallet)
            return
        try:
            # One statement on PostgreSQL, the ORM on SQLite (wallets decide: hold_reserve).
            self.hold = hold_reserve(
                wallets=chain,
                amount=worst,
                request_id=self.request_id,
                enforce=ctx.enforcement,
                department_id=ctx.department_id,
            )
        except InsufficientFunds as exc:
            self.hold, ticket = ticket_or_wait(self, chain, worst)  # gateway/tickets.py
            if self.hold is None:
                self._reject(exc.message, available=exc.available, ticket=ticket)
        if self.hold.wallet_id != self.wallet.pk:  # fell through: the event names who paid
            self.wallet = next(w for w in chain if w.pk == self.hold.wallet_id)

    def _reject(self, message: str, *, available, ticket=None):
        headers = {"x-kt-wallet-available": storage_str(available or ZERO)}
        if ticket is not None:  # finance may approve it; a retry with X-KT-Ticket redeems it
            message = f"{message} Cost ticket {ticket.ticket_id} is pending approval."
            headers["x-kt-ticket"] = ticket.ticket_id
        event_record(
            self._event_fields(
                status="rejected", http_status=402, error_code="insufficient_quota", usage=None
            )
        )
        if self.wallet is not None:
            hooks.funds_refused(organization_id=self.ctx.organization_id, wallet_id=self.wallet.pk)
        raise GatewayError(
            402,
            message,
            type="insufficient_quota",
            code="insufficient_quota",
            headers=headers,
            extra={"ticket_id": ticket.ticket_id} if ticket is not None else None,
        )

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
        fields = {
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
            "model_served": storable(self._model_served(), 200),
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
            "attempts": self.failover.attempts if self.failover is not None else [],
            "policy": self.policy,
            "policy_saved": self._policy_saved(usage),
        }
        if self.conversion is not None:  # priced in another currency (gateway/conversion.py)
            self.conversion_fields(fields)
        return fields

    def _model_served(self) -> str:
        """What the provider said it served; else, when the gateway sent another model than the
        one requested (a policy, a fallback), that one."""
        served = getattr(self, "model_served", "")
        routed = getattr(self, "routed_model", self.model)
        return served or (routed if routed != self.model else "")

    def _policy_saved(self, usage: Usage) -> Decimal:
        """What a policy's downgrade saved: the usage at the replaced model's price minus the
        cost (0 without a downgrade, or without usage)."""
        if self.replaced is None or self.usage is None:
            return ZERO
        return self.to_wallet(cost_of(self.replaced, usage), self.replaced) - self.cost

    def finish(self, *, status, http_status, error_code="", usage=None, usage_source="none"):
        """Price the usage, capture it (or release the hold) and write the event. Once."""
        if self.done:
            return
        self.done = True
        self.usage = usage
        self.usage_source = usage_source
        self.cost = cost_of(self.price, usage) if usage is not None else ZERO
        if self.cost:
            self.convert_cost()  # into the wallet's currency (gateway/conversion.py)
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
        # After the capture; it never raises (a store that fails cannot fail a charged call).
        tokens = usage.prompt_tokens + usage.completion_tokens if usage is not None else 0
        ratelimit_finish(self.limits, tokens)

    def _respond(self, response: HttpResponse) -> HttpResponse:
        response["x-kt-request-id"] = self.request_id
        response["x-kt-cost"] = storage_str(self.cost)
        if self.available is not None:
            response["x-kt-wallet-available"] = storage_str(self.available)
        if self.limits is not None:
            for name, value in self.limits.headers().items():
                response[name] = value
        return response
