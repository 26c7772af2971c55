"""Failover's pure parts: the order of the candidates by strategy and the reason of each
failure (no server needed)."""

from decimal import Decimal

import httpx
import pytest

from gateway import failover
from gateway.failover import _ordered, failure_of, latency_record
from gateway.models import Price
from gateway.routing import Target
from gateway.routing_settings import FailoverSettings


def _target(pk: int, target_id: str) -> Target:
    return Target(pk, target_id, "openai", "", "", (), {})


def _candidates():
    def price(total):
        return Price(input_per_mtok=Decimal(total), output_per_mtok=Decimal(0))

    return [
        (_target(1, "a"), price("3")),
        (_target(2, "b"), price("1")),
        (_target(3, "c"), price("2")),
    ]


@pytest.fixture(autouse=True)
def _fresh_latencies(monkeypatch):
    monkeypatch.setattr(failover, "_latency", {})


@pytest.mark.parametrize(
    ("strategy", "order"),
    [("ordered", ["c", "a", "b"]), ("cost", ["b", "c", "a"]), ("latency", ["a", "c", "b"])],
)
def test_each_strategy_orders_the_candidates(strategy, order):
    latency_record(_target(2, "b"), 0.9)
    latency_record(_target(3, "c"), 0.1)  # "a" is not measured yet: it comes first
    settings = FailoverSettings(enabled=True, strategy=strategy, order=("c", "a", "b"))

    assert [t.target_id for t, _ in _ordered(settings, _candidates())] == order


def test_the_latency_order_follows_an_average_not_the_last_call():
    target = _target(1, "a")
    for seconds in (0.1, 0.1, 0.1, 2.0):
        latency_record(target, seconds)

    assert failover._latency[1] == pytest.approx(0.1 + 0.2 * 1.9)


def test_round_robin_turns_the_list_by_one_each_time():
    settings = FailoverSettings(enabled=True, strategy="round-robin", order=("a", "b", "c"))
    firsts = [_ordered(settings, _candidates())[0][0].target_id for _ in range(3)]

    assert sorted(firsts) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ConnectError("refused"), ("connect_error", "connect")),
        (httpx.ConnectTimeout("slow"), ("connect_error", "connect")),
        (httpx.ReadTimeout("slow"), ("timeout", "timeout")),
        (httpx.RemoteProtocolError("cut"), ("upstream_reset", "5xx")),
        (429, ("http_429", "rate_limit")),
        (503, ("http_503", "5xx")),
        (400, ("", "")),
        (200, ("", "")),
    ],
)
def test_each_failure_has_its_reason_and_retry_class(failure, expected):
    if isinstance(failure, int):
        assert failure_of(status=failure) == expected
    else:
        assert failure_of(failure) == expected
