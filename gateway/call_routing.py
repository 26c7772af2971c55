"""Where a gateway request goes (`gateway.proxy.Call`, a mixin: it reads and sets the call's
state): the routing policy (gateway/policies.py), the target and price, the upstream and the
payload for it, and, with failover configured (gateway/failover.py), the move to the next
target after a failure, with the request's one hold raised when the next model costs more.

Without a policy and without failover this is `route()` and the upstream of its target, as
before: no other lookup, no store round trip.
"""

import json

from chargeback.errors import InsufficientFunds
from chargeback.money import exact_str, storage_str
from gateway import hooks, translate
from gateway.errors import GatewayError
from gateway.failover import Candidate, FailoverRun, candidates_of, failure_of
from gateway.policies import policy_route
from gateway.providers import upstream_for
from gateway.routing import failover_of, route
from wallets.services import hold_raise


class CallRouting:
    failover: FailoverRun | None = None
    policy = ""
    replaced = None  # the price of the model a policy replaced (what its saving compares with)

    def _route(self) -> None:
        ctx, endpoint = self.ctx, self.endpoint

        def first(model):
            return route(ctx, model=model, endpoint=endpoint)

        if ctx.policy is None:
            self.routed_model = self.model
            self.target, self.price = first(self.model)
        else:
            routed = policy_route(ctx, model=self.model, first=first)
            self.routed_model, self.target, self.price = routed.model, routed.target, routed.price
            self.policy, self.replaced = routed.policy, routed.replaced
        settings = failover_of(ctx.organization_id)
        if settings is None:
            return
        if settings.enabled:
            found = candidates_of(ctx, settings, model=self.routed_model, endpoint=endpoint)
        else:  # the circuit breaker alone: the one target
            found = [Candidate(self.target, self.routed_model, self.price)]
        self.failover = FailoverRun(settings, found)
        self._use(self.failover.first())

    def _use(self, candidate: Candidate) -> None:
        self.target, self.price, self.routed_model = (
            candidate.target,
            candidate.price,
            candidate.model,
        )

    def _connect(self) -> None:
        """The upstream of the current target and the bytes to send it."""
        body = self.body
        self.upstream = upstream_for(self.target)
        self.translate = self.upstream.adapter.translates(self.endpoint)
        self.upstream_endpoint = "chat" if self.translate else self.endpoint
        self.fmt = self.upstream.adapter.wire_format(self.upstream_endpoint)
        payload = self.raw
        if self.routed_model != self.model:  # a policy or a fallback chose another model
            body = {**body, "model": self.routed_model}
            payload = json.dumps(body).encode()
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
        self.payload = payload

    def _failed_over(self, *, exc: Exception | None = None, status: int | None = None) -> bool:
        """After a failure before the client got a byte: True when the call moved on to the
        next candidate (the caller sends again), False when it ends with this failure."""
        if self.failover is None:
            return False
        reason, kind = failure_of(exc, status)
        if not reason:
            return False
        current = Candidate(self.target, self.routed_model, self.price)
        candidate = self.failover.next(current, reason, kind)
        if candidate is not None and exc is not None:  # else logged as the call's end
            self.log_upstream_failure(exc, "before the reply; failing over")
        while candidate is not None:
            previous = (self.target, self.price, self.routed_model)
            self._use(candidate)
            try:
                self._connect()
            except GatewayError as error:  # its key is missing or not allowed: skip it
                self.target, self.price, self.routed_model = previous
                candidate = self.failover.skip(candidate, error.code or "provider_not_configured")
                continue
            self._bounds()
            self._hold_raise()
            return True
        return False

    def _hold_raise(self) -> None:
        """The request's one hold, raised to the new model's worst case when it is dearer; a
        wallet that cannot cover that ends the call with 402 (its hold released, its event
        written with the attempts)."""
        if self.hold is None:
            return
        worst = self._worst_case()
        if worst <= self.hold.amount:
            return
        try:
            self.hold = hold_raise(hold=self.hold, amount=worst, enforce=self.ctx.enforcement)
        except InsufficientFunds as exc:
            self.finish(status="rejected", http_status=402, error_code="insufficient_quota")
            hooks.funds_refused(
                organization_id=self.ctx.organization_id, wallet_id=self.hold.wallet_id
            )
            raise GatewayError(
                402,
                f"The request failed over to {self.routed_model} on {self.target.target_id}, "
                f"which may cost up to {exact_str(worst)} {exc.currency}; the wallet cannot "
                f"cover that ({exact_str(exc.available)} {exc.currency} available besides "
                f"this request's hold of {exact_str(self.hold.amount)}).",
                type="insufficient_quota",
                code="insufficient_quota",
                headers={"x-kt-wallet-available": storage_str(exc.available)},
            ) from None
