"""Hundreds of simultaneous requests on one wallet: no overspend, every hold resolved, one
event per request."""

import threading
from decimal import Decimal

import openai
from django.db.models import Sum

from gateway.estimate import prompt_upper_bound
from gateway.models import UsageEvent
from gateway.pricing import worst_case_cost
from wallets import services
from wallets.models import Hold, LedgerEntry

from .conftest import KEY, live_db

pytestmark = live_db

REQUESTS = 200
COVERED = 50


def test_two_hundred_concurrent_requests_never_overspend_a_wallet_covering_fifty(gw, live_server):
    body = {"model": "fake-chat", "messages": [{"role": "user", "content": "Summarise the ledger"}]}
    worst = worst_case_cost(
        gw.chat,
        prompt_upper_tokens=prompt_upper_bound(body, context_window=gw.chat.context_window),
        max_output_tokens=100,
    )
    funds = worst * COVERED
    services.wallet_adjust(wallet=gw.wallet, amount=funds - Decimal("10.00"), reason="test")
    assert gw.refresh().available == funds

    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=KEY, max_retries=0, timeout=60)
    barrier = threading.Barrier(REQUESTS)
    outcomes, lock = [], threading.Lock()

    def one(i):
        barrier.wait()
        try:
            reply = client.chat.completions.create(
                **body, max_tokens=100, stream=i % 2 == 0, extra_headers={"x-fake-latency": "50"}
            )
            if i % 2 == 0:
                assert "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
            result = 200
        except openai.APIStatusError as exc:
            result = exc.status_code
        except Exception as exc:  # noqa: BLE001 - recorded, so that the assertion below names it
            result = f"{exc!r} from {exc.__cause__!r}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(REQUESTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)

    assert len(outcomes) == REQUESTS
    assert set(outcomes) <= {200, 402}
    ok = outcomes.count(200)
    assert ok >= COVERED

    wallet = gw.refresh()
    captured = -LedgerEntry.objects.filter(wallet=wallet, kind="capture").aggregate(
        s=Sum("amount")
    )["s"]
    assert wallet.held == 0
    assert wallet.balance == funds - captured >= 0
    assert captured <= funds
    assert not LedgerEntry.objects.filter(wallet=wallet, balance_after__lt=0).exists()
    assert not Hold.objects.filter(status="pending").exists()
    assert Hold.objects.filter(status="captured").count() == ok

    events = UsageEvent.objects.all()
    assert events.count() == REQUESTS
    assert events.values("request_id").distinct().count() == REQUESTS
    assert events.filter(status="ok").count() == ok
    assert events.filter(status="rejected", http_status=402).count() == REQUESTS - ok
    assert events.aggregate(s=Sum("cost"))["s"] == captured
