"""An organization's failover and circuit-breaker settings as the request path reads them,
built once per cache period from its stored GatewaySettings (gateway/routing.py loads them with
its targets): plain frozen values, nothing to look up per request."""

from dataclasses import dataclass

RETRY_ON_ALL = frozenset({"5xx", "timeout", "rate_limit"})


@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int
    window_seconds: float
    cooldown_seconds: float
    half_open_requests: int

    def args(self) -> list:
        return [
            self.failure_threshold,
            self.window_seconds,
            self.cooldown_seconds,
            self.half_open_requests,
        ]


@dataclass(frozen=True)
class FailoverSettings:
    """`enabled`: a request moves on to the next target when one fails (`providers.fallback`);
    `breaker`: the circuit breaker (`providers.circuit_breaker`), or None."""

    enabled: bool = False
    strategy: str = "ordered"
    max_retries: int = 0
    retry_on: frozenset = RETRY_ON_ALL
    order: tuple = ()  # target ids in the file's order
    model_mapping: tuple = ()  # ((model, (fallback models...)), ...)
    breaker: BreakerSettings | None = None

    @classmethod
    def of(cls, row) -> "FailoverSettings | None":
        """From a GatewaySettings row (or None); None when neither failover nor the breaker is
        configured, the common case, which the request path then skips entirely."""
        if row is None or not (row.fallback or row.circuit_breaker):
            return None
        fallback, breaker = row.fallback or {}, row.circuit_breaker or {}
        return cls(
            enabled=bool(fallback),
            strategy=fallback.get("strategy", "ordered"),
            max_retries=fallback.get("max_retries", 0),
            retry_on=frozenset(fallback.get("retry_on", RETRY_ON_ALL)),
            order=tuple(fallback.get("order", ())),
            model_mapping=tuple(
                (model, tuple(fallbacks)) for model, fallbacks in (row.model_mapping or {}).items()
            ),
            breaker=BreakerSettings(
                failure_threshold=breaker["failure_threshold"],
                window_seconds=breaker["window_seconds"],
                cooldown_seconds=breaker["cooldown_seconds"],
                half_open_requests=breaker["half_open_requests"],
            )
            if breaker
            else None,
        )

    def fallbacks_of(self, model: str) -> tuple:
        for name, fallbacks in self.model_mapping:
            if name == model:
                return fallbacks
        return ()
