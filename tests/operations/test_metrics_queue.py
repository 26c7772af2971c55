"""The gateway's metric updates leave the request thread (observability/recorder.py): the
thread that records a call only queues it, a flush applies it, summed per series, and a forked
child starts with nothing of its parent's queue. Scrapes and exits under gunicorn:
tests/gateway/test_metrics_gunicorn.py."""

import os
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from gateway.hooks import upstream_answered
from observability import process_id, recorder
from observability.metrics import call_recorded, refusal

pytestmark = pytest.mark.django_db

CALL = {
    "status": "ok",
    "model_requested": "m-queue-test",
    "provider": "p-queue",
    "currency": "USD",
    "latency_ms": 120,
    "prompt_tokens": 7,
    "completion_tokens": 5,
}
WHO = {"organization": "", "department": "", "model": "m-queue-test"}


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_calling_thread_only_queues_and_a_flush_applies_it_summed():
    requests = ("kt_gateway_requests_total", {**WHO, "provider": "p-queue", "status": "ok"})
    spend = ("kt_spend_total", {**WHO, "currency": "USD"})
    latency = (
        "kt_gateway_request_duration_seconds_count",
        {"provider": "p-queue", "model": "m-queue-test"},
    )
    refused = ("kt_gateway_refusals_total", {"status": "429", "endpoint": "embeddings"})
    provider = (
        "kt_gateway_provider_duration_seconds_sum",
        {"provider": "p-queue", "model": "m-queue-test"},
    )
    watched = [requests, spend, latency, refused, provider]
    before = {name: value(name, **labels) for name, labels in watched}
    # Held, the flush thread cannot apply anything: what happens now is the caller's alone.
    with recorder._lock:
        upstream_answered(0.5)  # this thread's provider latency, taken with the call
        call_recorded({**CALL, "cost": Decimal("0.00000011")}, "captured")
        call_recorded({**CALL, "cost": Decimal("0.00000022")}, "captured")
        refusal("/v1/embeddings", 429)
        assert {name: value(name, **labels) for name, labels in watched} == before
    recorder.flush()
    delta = {name: value(name, **labels) - before[name] for name, labels in watched}
    assert delta[requests[0]] == 2
    assert delta[latency[0]] == 2
    assert delta[refused[0]] == 1
    assert delta[provider[0]] == pytest.approx(0.5)  # the first call's; the second had none
    assert delta[spend[0]] == pytest.approx(0.00000033, abs=1e-15)


def test_a_bad_item_is_logged_and_the_rest_still_counted(caplog):
    name, labels = "kt_gateway_requests_total", {**WHO, "provider": "p-queue", "status": "ok"}
    before = value(name, **labels)

    def broken(item, batch):
        raise ValueError("a bug in an update")

    with recorder._lock:
        recorder.submit(broken, ())
        call_recorded(CALL, None)
    recorder.flush()
    assert value(name, **labels) - before == 1
    assert "metrics: an update failed" in caplog.text


def test_a_forked_child_starts_with_an_empty_queue_and_its_own_process_id():
    read, write = os.pipe()
    with recorder._lock:
        call_recorded(CALL, None)
        pid = os.fork()
        if pid == 0:  # the child: report and leave at once, nothing of pytest's to run
            ok = len(recorder._queue) == 0 and process_id.current() == os.getpid()
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        assert len(recorder._queue) == 1  # the parent's, still to apply
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    os.close(read)
    assert status == 0
    assert process_id.current() == os.getpid()
    recorder.flush()


def test_cost_tickets_are_counted_by_event_and_pending_ones_in_the_snapshot(
    org, engineering, django_capture_on_commit_callbacks
):
    from observability.gauges import SnapshotCollector, snapshot_refresh
    from wallets import services
    from wallets.tickets.services import ticket_approve, ticket_deny, ticket_open

    def counted(event):
        labels = {"organization": "acme", "department": "team_engineering", "event": event}
        return value("kt_cost_tickets_total", **labels)

    services.wallet_allocate(department=engineering, amount=Decimal("1"), currency="USD")
    wallet = services.wallet_for_team(department=engineering)
    before = {e: counted(e) for e in ("opened", "approved", "denied")}
    # Held, the flush thread waits: its own connection would not see this test's rows.
    with recorder._lock:
        with django_capture_on_commit_callbacks(execute=True):
            tickets = [
                ticket_open(
                    wallet=wallet,
                    department_id=engineering.pk,
                    consumer_group_id=None,
                    user_ref="",
                    model="gpt-4o",
                    estimate=Decimal("2.50"),
                    request_id=f"req_m{n}",
                )
                for n in range(3)
            ]
            ticket_approve(organization=org, ticket_id=tickets[0].ticket_id, actor="f", via="api")
            ticket_deny(organization=org, ticket_id=tickets[1].ticket_id, actor="f", via="api")
        recorder.flush()  # here, as a scrape would (the lock is reentrant)
    assert {e: counted(e) - before[e] for e in before} == {"opened": 3, "approved": 1, "denied": 1}

    snapshot_refresh()
    families = {f.name: f for f in SnapshotCollector().collect()}
    (pending,) = families["kt_cost_tickets_pending"].samples
    assert (pending.labels, pending.value) == ({"organization": "acme", "currency": "USD"}, 1)
    (amount,) = families["kt_cost_tickets_pending_amount"].samples
    assert amount.value == 2.5
