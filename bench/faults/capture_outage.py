#!/usr/bin/env python3
"""The review's capture-time fault (issue 12 part 3), reproduced: PostgreSQL goes away for a few
seconds while calls are in flight and their answers arrive; afterwards, is every answered call
charged exactly once?

  .venv/bin/python bench/faults/capture_outage.py                    # 40 calls, a 3 s cut
  .venv/bin/python bench/faults/capture_outage.py -n 80 --cut 3 --repo ../main-checkout

What it runs (all real, on loopback): the fake provider (in this process), a TCP proxy in front
of the shared PostgreSQL (never the server itself), and the gateway under gunicorn with the
project's settings, whose DATABASE_URL points at the proxy. `--repo` runs another checkout's
gateway code (e.g. `main`, for the figures before a change); this checkout's Django does the
setup and the accounting.

1. `-n` calls start together (OpenAI and Anthropic endpoints, stream and not); the fake provider
   answers each after a latency spread over [0.3 s, cut end + 1 s], so most answers arrive
   while the database is away; each call carries its number (`X-KT-Tags: call=N`, and
   `x-fake-call: N` so that the fake provider can tell which calls it answered).
2. At 0.8 s the proxy resets every connection and refuses new ones for `--cut` seconds; `--late`
   more calls start during the cut (they need the database before the provider: a 503 with
   `retry-after` is the right answer; nothing may be sent upstream).
3. Then the database is back; the script waits for the gateway to settle (no pending hold, no
   capture in its outbox; at most `--settle` seconds), runs the hold sweeper once the holds'
   TTL (`--ttl`) has passed, and counts.

Printed: answered calls (the provider sent the whole answer), charged calls (the call's usage
event has a cost and its hold a capture entry), unbilled answered calls, 5xx replies to answered
calls and cut streams, 503s before the provider, events by status, and whether every wallet's
balance is the sum of its ledger and held the sum of its pending holds. Exit status 1 when an
answered call is unbilled or charged twice.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/cb_h3_faults"
KEY = f"kt_cg_faults_capture_{int(time.time() * 1000)}"  # one group per run
MODEL = "fake-gpt"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=40, help="calls in flight when the cut starts")
    parser.add_argument("--late", type=int, default=8, help="calls started during the cut")
    parser.add_argument("--cut", type=float, default=3.0, help="seconds without the database")
    parser.add_argument("--ttl", type=int, default=20, help="KT_HOLD_TTL_SECONDS of the gateway")
    parser.add_argument("--settle", type=float, default=30.0, help="longest wait afterwards")
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout whose gateway runs")
    parser.add_argument("--database-url", default=os.environ.get("FAULTS_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    return parser.parse_args()


def database_ready(url: str):
    """Create the database if missing and migrate it (with this checkout's migrations)."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def tenant_setup(fake_url: str):
    """A fresh organization (one per run), its group, a fake target and a funded wallet."""
    from chargeback.keys import hash_key, key_prefix
    from chargeback.models import ConsumerGroup, Department, Organization, ProviderTarget
    from wallets import services

    slug = f"faults-{int(time.time())}"
    org = Organization.objects.create(slug=slug, name=slug)
    department = Department.objects.create(organization=org, team_id="team_faults", name="Faults")
    ConsumerGroup.objects.create(
        organization=org,
        department=department,
        name="faults",
        key_prefix=key_prefix(KEY),
        key_hash=hash_key(KEY),
    )
    ProviderTarget.objects.create(
        organization=org, target_id="fake", provider="fake", base_url=fake_url
    )
    services.wallet_allocate(department=department, amount=Decimal("1000"), currency="USD")
    return org


def fake_provider():
    """The fake provider, noting which calls it answered in full."""
    from gateway.fake_provider import FakeProviderHandler, FakeProviderServer

    answered, lock = set(), threading.Lock()

    class Recording(FakeProviderHandler):
        def do_POST(self):
            call = self.headers.get("x-fake-call")
            super().do_POST()
            self.wfile.flush()
            if call is not None:
                with lock:
                    answered.add(int(call))

    server = FakeProviderServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}", answered


def one_call(url: str, n: int, latency_ms: int, results: dict):
    """One call; records what the client saw: ('ok'|'5xx'|'cut'|'4xx', http status)."""
    import httpx

    api = ("openai", "anthropic")[n % 2]
    stream = n % 4 >= 2
    headers = {
        "Authorization": f"Bearer {KEY}",
        "X-KT-Tags": f"call={n}",
        "x-fake-call": str(n),
        "x-fake-latency": str(latency_ms),
        "x-fake-chunk-delay": "20",
    }
    messages = [{"role": "user", "content": f"Call {n}: summarise the month's spend"}]
    body = {"model": MODEL, "messages": messages, "max_tokens": 24, "stream": stream}
    path = "/v1/chat/completions" if api == "openai" else "/v1/messages"
    if api == "anthropic":
        headers["anthropic-version"] = "2023-06-01"
    outcome, request_id = ("cut", 0), None
    started = time.monotonic()
    try:
        with httpx.stream("POST", url + path, json=body, headers=headers, timeout=120) as r:
            request_id = r.headers.get("x-kt-request-id")
            text = r.read().decode(errors="replace")
            if r.status_code >= 500:
                outcome = ("5xx", r.status_code)
            elif r.status_code >= 400:
                outcome = ("4xx", r.status_code)
            elif not stream:
                outcome = ("ok", 200)
            else:
                done = "[DONE]" in text if api == "openai" else "message_stop" in text
                outcome = ("ok" if done else "cut", 200)
    except Exception:
        outcome = ("cut", 0)
    results[n] = {
        "api": api,
        "stream": stream,
        "client": outcome[0],
        "status": outcome[1],
        "request_id": request_id,
        "added": time.monotonic() - started - latency_ms / 1000,  # the provider's own wait out
    }


def wait_settled(org, seconds: float) -> float:
    """Until no hold of `org` is pending (captures replayed); the time it took."""
    from wallets.models import Hold

    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if not Hold.objects.filter(organization=org, status="pending").exists():
            break
        time.sleep(0.2)
    return time.monotonic() - started


def account(org, answered: set, results: dict) -> dict:
    from django.db.models import Sum

    from gateway.models import UsageEvent
    from wallets.models import Hold, LedgerEntry, Wallet

    events = {e.request_id: e for e in UsageEvent.objects.filter(organization=org)}
    by_tag = {e.tags.get("call"): e for e in events.values() if e.tags.get("call")}
    captures = Counter(
        LedgerEntry.objects.filter(organization=org, kind="capture").values_list(
            "reference", flat=True
        )
    )
    charged, unbilled, twice, zero_expired = [], [], [], []
    for n in sorted(answered):
        # The client saw the request id (every reply and stream has it); else the event's tag.
        event = events.get((results.get(n) or {}).get("request_id")) or by_tag.get(str(n))
        ok = event is not None and event.cost > 0 and captures.get(event.request_id) == 1
        (charged if ok else unbilled).append(n)
        if event is not None and captures.get(event.request_id, 0) > 1:
            twice.append(n)
        if event is not None and event.status == "expired":
            zero_expired.append(n)
    consistent = True
    for wallet in Wallet.objects.filter(organization=org):
        ledger = LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"]
        holds = Hold.objects.filter(wallet=wallet, status="pending").aggregate(s=Sum("amount"))
        consistent &= wallet.balance == ledger and wallet.held == (holds["s"] or 0)
    answered_calls = [results[n] for n in answered if n in results]
    added = sorted(r["added"] for r in answered_calls) or [0.0]
    return {
        "added_seconds_median": round(added[len(added) // 2], 2),
        "added_seconds_max": round(added[-1], 2),
        "answered": len(answered),
        "charged": len(charged),
        "unbilled_answered": len(unbilled),
        "charged_twice": len(twice),
        "expired_0_usd_for_answered": len(zero_expired),
        "answered_5xx": sum(r["client"] == "5xx" for r in answered_calls),
        "answered_cut_streams": sum(r["client"] == "cut" for r in answered_calls),
        "not_answered": dict(
            Counter(
                f"{r['client']} {r['status']}" for n, r in results.items() if n not in answered
            ).items()
        ),
        "events_by_status": dict(
            Counter(UsageEvent.objects.filter(organization=org).values_list("status", flat=True))
        ),
        "pending_holds": Hold.objects.filter(organization=org, status="pending").count(),
        "ledger_consistent": consistent,
        "unbilled_calls": unbilled,
    }


def main():
    args = parse_args()
    rng = random.Random(args.seed)
    database_ready(args.database_url)
    from tests.faults.gateway_process import GatewayProcess
    from tests.faults.tcp_proxy import TcpProxy

    provider, fake_url, answered = fake_provider()
    org = tenant_setup(fake_url)
    base, name = args.database_url.rsplit("/", 1)
    host_port = base.rsplit("@", 1)[1]
    pg_host, pg_port = host_port.split(":")
    proxy = TcpProxy((pg_host, int(pg_port))).start()
    proxied = f"{base.rsplit('@', 1)[0]}@127.0.0.1:{proxy.port}/{name}"
    workdir = Path(tempfile.mkdtemp(prefix="kt-capture-outage-"))
    gateway = GatewayProcess(
        {
            "DATABASE_URL": proxied,
            "KT_HOLD_TTL_SECONDS": str(args.ttl),
            "KT_KEY_CACHE_SECONDS": "60",
            "KT_CAPTURE_OUTBOX_DIR": str(workdir / "outbox"),
            # The fake provider on loopback, allowed (where upstream address rules exist).
            "KT_UPSTREAM_ALLOW_HOSTS": fake_url.split("://", 1)[1],
        },
        repo=args.repo,
        workers=2,
        threads=128,
    ).start(workdir / "gunicorn.log")
    try:
        results: dict = {}
        # Warm the key, target, price and wallet caches (one call), as a running gateway has.
        one_call(gateway.url, -1, 0, {})
        answered.discard(-1)
        cut_at, cut_end = 0.8, 0.8 + args.cut
        threads = []
        for n in range(args.n):
            latency = int(1000 * rng.uniform(0.3, cut_end + 1.0))
            t = threading.Thread(target=one_call, args=(gateway.url, n, latency, results))
            threads.append(t)
            t.start()
        started = time.monotonic()
        time.sleep(cut_at)
        proxy.cut()
        for i in range(args.late):
            time.sleep(args.cut / (args.late + 1))
            n = args.n + i
            t = threading.Thread(target=one_call, args=(gateway.url, n, 100, results))
            threads.append(t)
            t.start()
        time.sleep(max(0.0, cut_end - (time.monotonic() - started)))
        proxy.restore()
        for t in threads:
            t.join(150)
        settled = wait_settled(org, args.settle)
        # The sweeper, once every hold still pending has expired: it must not unbill anything.
        from gateway.sweep import holds_sweep

        time.sleep(max(0.0, args.ttl + 1 - (time.monotonic() - started)))
        swept = holds_sweep()
        wait_settled(org, 10)
        figures = account(org, answered, results)
        log = (workdir / "gunicorn.log").read_text(errors="replace")
        figures.update(
            deferred_to_outbox=log.count("deferred to the capture outbox"),
            replayed_from_outbox=log.count("capture replayed from the outbox"),
            calls=args.n + args.late,
            cut_seconds=args.cut,
            settled_after_s=round(settled, 1),
            sweeper_events=swept,
        )
    finally:
        gateway.stop()
        proxy.stop()
        provider.shutdown()
    print(f"gateway code: {args.repo.resolve()}  log: {workdir / 'gunicorn.log'}")
    print(
        f"calls {figures['calls']} ({args.n} in flight, {args.late} started during the "
        f"{args.cut:g} s cut)"
    )
    print(f"answered calls            {figures['answered']}")
    print(f"charged calls             {figures['charged']}")
    print(f"unbilled answered calls   {figures['unbilled_answered']}")
    print(f"charged twice             {figures['charged_twice']}")
    print(f"$0 expired (answered)     {figures['expired_0_usd_for_answered']}")
    print(f"5xx to answered calls     {figures['answered_5xx']}")
    print(f"cut streams (answered)    {figures['answered_cut_streams']}")
    print(f"not answered (client saw) {figures['not_answered']}")
    print(f"events by status          {figures['events_by_status']}")
    print(
        f"wait added to answered    median {figures['added_seconds_median']} s, "
        f"max {figures['added_seconds_max']} s (reply time minus the provider's latency)"
    )
    print(
        f"captures via the outbox   {figures['deferred_to_outbox']} deferred, "
        f"{figures['replayed_from_outbox']} replayed"
    )
    print(f"pending holds             {figures['pending_holds']}")
    print(f"balance = ledger, held = pending holds: {figures['ledger_consistent']}")
    print(f"settled {figures['settled_after_s']} s after the calls ended")
    if args.json:
        print(json.dumps(figures))
    bad = figures["unbilled_answered"] or figures["charged_twice"]
    sys.exit(1 if bad or not figures["ledger_consistent"] else 0)


if __name__ == "__main__":
    main()
