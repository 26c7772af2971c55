"""Failover: a request goes to the next target that serves its model when one fails before the
client got a byte (`providers.fallback`), and skips targets whose circuit is open
(gateway/breaker.py, `providers.circuit_breaker`).

The candidates are every target that serves the requested model, in the configured order
(`strategy`), then those of its fallback models (`failover.model_mapping`), in the order given.
What moves a request on: a connect error (always: nothing was sent), and by `retry_on` a 429
(`rate_limit`), a 5xx or a connection lost before the reply (`5xx`), a timeout before the first
byte (`timeout`). At most `max_retries` further targets are tried. Once a byte has reached the
client nothing is retried: a non-stream reply is read whole before it is relayed, and a stream's
first event is read before the response starts (gateway/upstream_call.py).

Orders (`strategy`): `ordered`, the file's order of the targets; `cost`, the cheapest first (input
plus output price per million tokens); `latency`, the fastest first by this process's recent
times to the reply's headers (an exponential average; a target not yet measured first);
`round-robin`, rotated by one for each request of this process.
"""

import itertools
import threading
from dataclasses import dataclass

import httpx

from gateway import egress
from gateway.breaker import breaker_close, breaker_pick
from gateway.errors import retry_later
from gateway.models import Price
from gateway.routing import Target, serving
from gateway.routing_settings import FailoverSettings


@dataclass(frozen=True)
class Candidate:
    target: Target
    model: str
    price: Price


# --- order -------------------------------------------------------------------------------------

_latency: dict[int, float] = {}  # target pk -> seconds to the reply's headers (EWMA)
_turns = itertools.count()
_turns_lock = threading.Lock()
LATENCY_WEIGHT = 0.2


def latency_record(target: Target, seconds: float) -> None:
    previous = _latency.get(target.pk)
    _latency[target.pk] = (
        seconds if previous is None else previous + LATENCY_WEIGHT * (seconds - previous)
    )


def _ordered(settings: FailoverSettings, found: list[tuple[Target, Price]]) -> list:
    position = {target_id: n for n, target_id in enumerate(settings.order)}

    def place(item):
        return position.get(item[0].target_id, len(position))

    found = sorted(found, key=place)
    if settings.strategy == "cost":
        found.sort(key=lambda item: item[1].input_per_mtok + item[1].output_per_mtok)
    elif settings.strategy == "latency":
        found.sort(key=lambda item: _latency.get(item[0].pk, 0.0))
    elif settings.strategy == "round-robin" and len(found) > 1:
        with _turns_lock:
            turn = next(_turns) % len(found)
        found = found[turn:] + found[:turn]
    return found


def candidates_of(ctx, settings: FailoverSettings, *, model: str, endpoint: str) -> list:
    """Every target serving `model`, then each fallback model's, ordered; may be empty."""
    found, seen = [], set()
    for name in (model, *settings.fallbacks_of(model)):
        for target, price in _ordered(settings, serving(ctx, model=name, endpoint=endpoint)):
            if (target.pk, name) not in seen:
                seen.add((target.pk, name))
                found.append(Candidate(target, name, price))
    return found


# --- why an attempt failed ---------------------------------------------------------------------


def failure_of(exc: Exception | None = None, status: int | None = None) -> tuple[str, str]:
    """(reason recorded on the event, class matched against `retry_on`; `connect` always
    retries) for a transport error or an error status; ("", "") when it is not a failure that
    moves a request on (a 4xx other than 429 is the request's fault, not the target's)."""
    if exc is not None:
        if egress.refusal_of(exc) is not None:
            return "upstream_not_allowed", "connect"
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return "connect_error", "connect"
        if isinstance(exc, httpx.TimeoutException):
            return "timeout", "timeout"
        if isinstance(exc, httpx.HTTPError):
            return "upstream_reset", "5xx"
        return "", ""
    if status == 429:
        return "http_429", "rate_limit"
    if status is not None and status >= 500:
        return f"http_{status}", "5xx"
    return "", ""


# --- one request's run -------------------------------------------------------------------------


class FailoverRun:
    """The candidates of one request and what became of each. `attempts` is what the usage
    event records: every target tried before the one that served, or skipped, with why."""

    def __init__(self, settings: FailoverSettings, candidates: list):
        self.settings = settings
        self.candidates = candidates
        self.position = 0
        self.tries = 0
        self.probe = False
        self.attempts: list[dict] = []
        self.waits: tuple = ()  # seconds until each open circuit may be tried again

    def first(self) -> Candidate:
        """The candidate to try first (the breaker's pick), or GatewayError 503 when every
        candidate's circuit is open."""
        return self._pick(None) or self._all_open()

    def next(self, failed: Candidate, reason: str, retry_class: str) -> Candidate | None:
        """Record `failed`'s failure; the next candidate to try, or None (no more, or the
        failure is not one `retry_on` moves on)."""
        self.attempts.append(
            {"target": failed.target.target_id, "model": failed.model, "reason": reason}
        )
        settings = self.settings
        moves = settings.enabled and (retry_class == "connect" or retry_class in settings.retry_on)
        if not moves or self.tries > settings.max_retries:
            if settings.breaker is not None:
                breaker_pick(settings.breaker, [], failed=failed.target)
            return None
        return self._pick(failed.target)

    def skip(self, candidate: Candidate, reason: str) -> Candidate | None:
        """`candidate` cannot be called at all (its key is not configured): the next one."""
        self.attempts.append(
            {"target": candidate.target.target_id, "model": candidate.model, "reason": reason}
        )
        self.tries -= 1  # nothing was sent
        return self._pick(None) if self.settings.enabled else None

    def succeeded(self, candidate: Candidate, seconds: float) -> None:
        if self.probe:
            breaker_close(candidate.target)
        if self.settings.strategy == "latency":
            latency_record(candidate.target, seconds)

    def _pick(self, failed: Target | None) -> Candidate | None:
        rest = self.candidates[self.position :]
        breaker = self.settings.breaker
        if breaker is None:
            if not rest:
                return None
            chosen, self.probe = rest[0], False
            self.position += 1
        else:
            pick = breaker_pick(breaker, [c.target for c in rest], failed=failed)
            for skipped in rest[: len(pick.waits)]:
                self.attempts.append(
                    {
                        "target": skipped.target.target_id,
                        "model": skipped.model,
                        "reason": "circuit_open",
                    }
                )
            if pick.index is None:
                self.position = len(self.candidates)
                self.waits = pick.waits
                return None
            chosen, self.probe = rest[pick.index], pick.probe
            self.position += pick.index + 1
        self.tries += 1
        return chosen

    def _all_open(self):
        wait = min(self.waits or (1.0,))
        retry_after = max(1, round(wait + 0.5))
        names = ", ".join(sorted({c.target.target_id for c in self.candidates}))
        raise retry_later(
            f"Every target that serves this model ({names}) is out of rotation after repeated "
            f"failures (circuit open). Try again in {retry_after}s.",
            code="circuit_open",
            retry_after=retry_after,
        )
