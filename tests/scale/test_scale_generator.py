"""The scale benchmark's generated rows are what the gateway writes (bench/scale_data.py).

One real call through the gateway (the fake provider on loopback, the live server), then a few
hundred generated calls for the same department, group, wallet and price; every column of the
generated usage events, holds and capture ledger entries has the gateway row's shape (the same
constants, the same columns set or empty, the same links between the three rows), costs are the
product's pricing rule, and the product's invariants hold afterwards: the wallet's balance is
its ledger's sum and each entry's `balance_after` the running sum, nothing held, each hold
captured at its event's cost, the rollups equal to the raw events.
"""

from datetime import timedelta
from decimal import Decimal

import openai
import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from bench import scale_data
from gateway.models import UsageEvent
from gateway.pricing import Usage, cost_of
from gateway.rollup_models import SpendDaily, SpendDelta
from tests.gateway.conftest import KEY, live_db
from wallets.models import Hold, LedgerEntry
from wallets.services import wallet_reclaim

pytestmark = live_db

CALLS = 300


def _row(obj) -> dict:
    return {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}


def _shape(row: dict, constants: set[str]) -> dict:
    """A row's shape: the value of the columns every call writes alike, else whether set."""
    return {
        name: value if name in constants else (value is not None and value != "")
        for name, value in row.items()
        if name != "id"
    }


EVENT_CONSTANTS = {
    "organization_id", "department_id", "consumer_group_id", "wallet_id", "endpoint", "provider",
    "target_id", "model_requested", "model_served", "stream", "cached_tokens",
    "cache_write_tokens", "currency", "price_id", "usage_source", "status", "http_status",
    "error_code", "ttft_ms", "attempts", "policy", "policy_saved", "above_hold", "saved",
}  # fmt: skip
HOLD_CONSTANTS = {"organization_id", "wallet_id", "department_id", "status"}
ENTRY_CONSTANTS = {
    "organization_id", "wallet_id", "kind", "currency", "description", "idempotency_key",
    "request_hash", "transfer_id", "actor",
}  # fmt: skip


def _call_through_the_gateway(gw, live_server) -> UsageEvent:
    oai = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=KEY, max_retries=0, timeout=20)
    oai.chat.completions.create(
        model="fake-chat",
        messages=[{"role": "user", "content": "How do chargebacks work?"}],
        user="user00001@acme.example",
        extra_headers={"X-KT-Tags": "app=assistant,env=prod"},
    )
    (event,) = UsageEvent.objects.all()
    return event


def scene_of(gw) -> scale_data.Scene:
    """The gateway setup's department, group, wallet and price as the generator's scene."""
    chat = gw.chat
    return scale_data.Scene(
        organization_id=gw.org.pk,
        departments=[
            scale_data.Department(gw.department.pk, gw.group.pk, gw.wallet.pk, weight=1.0)
        ],
        models=[
            scale_data.Model(
                chat.pk,
                gw.target.provider,
                gw.target.target_id,
                chat.model,
                chat.input_per_mtok,
                chat.output_per_mtok,
                chat.max_output_tokens,
                weight=1.0,
            )
        ],
        users=50,
        domain="acme.example",
    )


def period():
    """The two whole months before this one."""
    end = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (end - timedelta(days=40)).replace(day=1)
    return start, end


def _generate(gw) -> None:
    # Two months (each funded at its start through the services), in chunks of 70 calls.
    scale_data.generate(scene_of(gw), CALLS, *period(), chunk=70, log=lambda _: None)


def test_generated_rows_are_the_rows_a_gateway_call_writes(gw, live_server):
    real = _call_through_the_gateway(gw, live_server)
    real_hold = Hold.objects.get(request_id=real.request_id)
    real_entry = LedgerEntry.objects.get(hold=real_hold)
    wallet_reclaim(department=gw.department)  # empty: each generated month funds it
    _generate(gw)

    events = list(UsageEvent.objects.exclude(pk=real.pk).order_by("id"))
    assert len(events) == CALLS
    holds = {h.request_id: h for h in Hold.objects.exclude(pk=real_hold.pk)}
    entries = {e.hold_id: e for e in LedgerEntry.objects.filter(kind="capture")}
    expected = [
        _shape(_row(real), EVENT_CONSTANTS),
        _shape(_row(real_hold), HOLD_CONSTANTS),
        _shape(_row(real_entry), ENTRY_CONSTANTS),
    ]
    for event in events:
        hold = holds[event.request_id]
        entry = entries[hold.pk]
        rows = [_row(event), _row(hold), _row(entry)]
        assert [
            _shape(rows[0], EVENT_CONSTANTS),
            _shape(rows[1], HOLD_CONSTANTS),
            _shape(rows[2], ENTRY_CONSTANTS),
        ] == expected
        for row, model_row in zip(rows, (real, real_hold, real_entry), strict=True):
            assert set(row) == set(_row(model_row))  # no column forgotten
        # Links and values, as the gateway's call has them.
        assert len(event.request_id) == len(real.request_id)
        assert event.request_id.startswith("req_")
        assert len(event.prompt_fingerprint) == len(real.prompt_fingerprint) == 64
        assert set(event.tags) in (set(), set(real.tags))
        assert event.cost == cost_of(gw.chat, Usage(event.prompt_tokens, event.completion_tokens))
        assert hold.captured_amount == event.cost == -entry.amount > 0
        assert hold.amount >= hold.captured_amount
        assert entry.reference == hold.request_id == event.request_id
        assert hold.expires_at - hold.created_at == real_hold.expires_at - real_hold.created_at
        assert hold.created_at < hold.resolved_at == entry.created_at <= event.created_at
        assert real_hold.created_at < real_hold.resolved_at == real_entry.created_at
        assert real_entry.created_at <= real.created_at
    assert len({e.request_id for e in events}) == CALLS

    # The ledger's rules: the balance is the sum, balance_after the running sum, nothing held.
    wallet = gw.refresh()
    assert wallet.held == 0
    assert not Hold.objects.filter(status="pending").exists()
    # In the order written (the gateway's call and the setup's funding are today, the
    # generated months before; on the benchmark's fresh database both orders agree).
    ledger = list(LedgerEntry.objects.filter(wallet=wallet).order_by("id"))
    assert wallet.balance == sum(e.amount for e in ledger)
    running = Decimal(0)
    for entry in ledger:
        running += entry.amount
        assert entry.balance_after == running
    assert min(e.balance_after for e in ledger) >= 0  # never overspent
    funding = [e for e in ledger if e.kind == "allocation"]
    assert len(funding) == 3  # the setup's, then each generated month's start

    # The rollups (kept by the triggers, folded by each chunk) are the raw events.
    with connection.cursor() as cursor:
        cursor.execute("SELECT gateway_spend_fold()")
    assert not SpendDelta.objects.exists()
    rolled = SpendDaily.objects.filter(organization=gw.org).aggregate(
        cost=Sum("cost"), requests=Sum("requests"), prompt=Sum("prompt_tokens")
    )
    raw = UsageEvent.objects.filter(organization=gw.org).aggregate(
        cost=Sum("cost"), requests=Count("id"), prompt=Sum("prompt_tokens")
    )
    assert rolled == raw
    days = SpendDaily.objects.filter(organization=gw.org).values_list("day", "cost")
    assert len(days) > 55  # spread over the two months


def test_a_rerun_continues_after_the_chunks_already_written(gw):
    _generate(gw)
    before = UsageEvent.objects.count(), LedgerEntry.objects.count(), Hold.objects.count()
    _generate(gw)
    assert (UsageEvent.objects.count(), LedgerEntry.objects.count(), Hold.objects.count()) == (
        before
    )
    assert before[0] == CALLS
    with pytest.raises(SystemExit, match="built with 300 calls"):
        scale_data.generate(scene_of(gw), CALLS * 2, *period(), chunk=70, log=print)


@pytest.fixture(autouse=True)
def _progress_table_dropped():
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_scale_progress, bench_scale_plan")
