#!/usr/bin/env python3
"""How often a capture exceeds its hold: a short mixed load against the fake provider.

  python bench/holds.py setup --fake-url http://127.0.0.1:8900     # tenant, target, wallet
  python bench/holds.py run http://127.0.0.1:41002 -n 2000 -c 8    # the load
  python bench/holds.py report                                     # captures vs holds

`setup` creates the organization `bench-holds` (one department, one consumer group with the key
below, a wallet funded with $1,000,000, the fake provider as its only target). `run` sends a
seeded mix of the requests apps send: chat completions and Anthropic messages, JSON and
streamed, with and without `max_tokens`, `n` up to 3, long and short prompts, image parts,
embeddings (text and token arrays), prompt-cache reads and writes (`x-fake-cached`,
`x-fake-cache-write`), streams without a usage chunk and streams the provider resets. `report`
prints, from the database, how many captures exceeded their hold (and by how much, by
endpoint and usage source), how many events carry the `above_hold` flag, and whether every
wallet's balance is the sum of its ledger with no hold left pending.

Not the benchmark (bench/gateway.sh): this measures the hold estimate, not speed. Start the
gateway yourself (gunicorn -c portal/gunicorn_conf.py ...) with the same DATABASE_URL.
"""

import argparse
import asyncio
import base64
import os
import random
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

KEY = "kt_cg_bench_holds_0123456789"
SLUG = "bench-holds"
FUNDS = Decimal("1000000")
WORDS = [
    "the", "budget", "owner", "reviews", "spend", "by", "model", "and", "provider", "while",
    "finance", "closes", "month", "with", "clean", "export", "every", "department", "sees",
    "wallet", "gateway", "records", "request", "tokens", "cost", "latency", "über", "naïve",
    "café", "東京", "☕",
]  # fmt: skip


def _django():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()


def setup(fake_url: str) -> None:
    _django()
    from chargeback.keys import hash_key, key_prefix
    from chargeback.models import ConsumerGroup, Department, Organization, ProviderTarget
    from gateway.catalog import catalog_load
    from wallets import services
    from wallets.models import LedgerEntry

    catalog_load()
    org, _ = Organization.objects.get_or_create(slug=SLUG, defaults={"name": SLUG})
    department, _ = Department.objects.get_or_create(
        organization=org, team_id="team_holds", defaults={"name": "Holds"}
    )
    ConsumerGroup.objects.update_or_create(
        organization=org,
        name="holds",
        defaults={
            "department": department,
            "key_prefix": key_prefix(KEY),
            "key_hash": hash_key(KEY),
            "is_active": True,
        },
    )
    ProviderTarget.objects.update_or_create(
        organization=org,
        target_id="fake",
        defaults={"provider": "fake", "base_url": fake_url, "secret_env": "", "served_models": []},
    )
    if not LedgerEntry.objects.filter(organization=org, idempotency_key="holds-funding").exists():
        services.wallet_allocate(
            department=department,
            amount=FUNDS,
            currency=org.currency,
            description="bench funding",
            idempotency_key="holds-funding",
        )
    print(f"{SLUG}: key {KEY}, fake provider {fake_url}")


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _image(rng: random.Random, anthropic: bool) -> dict:
    data = base64.b64encode(rng.randbytes(rng.randint(2_000, 20_000))).decode()
    if anthropic:
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": data},
        }
    return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}


def request_for(rng: random.Random) -> tuple[str, dict, dict]:
    """One request of the mix: (path, body, extra headers)."""
    headers = {}
    roll = rng.random()
    if roll < 0.12:
        kind = rng.random()
        if kind < 0.5:
            payload = _text(rng, rng.randint(1, 200))
        elif kind < 0.8:
            payload = [_text(rng, rng.randint(1, 60)) for _ in range(rng.randint(1, 5))]
        else:
            payload = [rng.randint(0, 100_000) for _ in range(rng.randint(1, 300))]
        return "/v1/embeddings", {"model": "fake-embed", "input": payload}, headers
    anthropic = roll < 0.45
    model = "fake-premium" if rng.random() < 0.3 else "fake-gpt"
    messages = []
    for i in range(rng.choice((1, 1, 2, 3, 5))):
        role = "user" if i % 2 == 0 else "assistant"
        content = _text(rng, rng.choice((3, 10, 40, 200, 800)))
        if role == "user" and rng.random() < 0.05:
            content = [{"type": "text", "text": content}, _image(rng, anthropic)]
        messages.append({"role": role, "content": content})
    body = {"model": model, "messages": messages}
    caps = (5, 10, 16, 32, 48, 64, 256)
    if anthropic or rng.random() < 0.8:
        body["max_tokens"] = rng.choice(caps)
    if not anthropic and rng.random() < 0.1:
        body["n"] = rng.choice((2, 3))
    if anthropic and rng.random() < 0.3:
        body["system"] = _text(rng, rng.randint(5, 100))
    if rng.random() < 0.5:
        body["stream"] = True
        fault = rng.random()
        if fault < 0.12:
            headers["x-fake-fault"] = "no_usage"
        elif fault < 0.18:
            headers["x-fake-fault"] = "reset"
            headers["x-fake-chunks"] = "8"
    cache = rng.random()
    if cache < 0.2:
        headers["x-fake-cached"] = str(rng.randint(1, 400))
    elif cache < 0.3 and anthropic:
        headers["x-fake-cache-write"] = str(rng.randint(1, 400))
    path = "/v1/messages" if anthropic else "/v1/chat/completions"
    return path, body, headers


async def _worker(client, url, queue, statuses):
    while True:
        try:
            path, body, headers = queue.get_nowait()
        except asyncio.QueueEmpty:
            return
        try:
            if body.get("stream"):
                async with client.stream("POST", url + path, json=body, headers=headers) as r:
                    async for _ in r.aiter_raw():
                        pass
                    statuses[r.status_code] += 1
            else:
                r = await client.post(url + path, json=body, headers=headers)
                statuses[r.status_code] += 1
        except Exception as exc:  # a reset stream ends in a protocol error on some clients
            statuses[type(exc).__name__] += 1


async def run(url: str, n: int, concurrency: int, seed: int) -> None:
    import httpx

    rng = random.Random(seed)
    queue: asyncio.Queue = asyncio.Queue()
    for _ in range(n):
        queue.put_nowait(request_for(rng))
    statuses: Counter = Counter()
    headers = {"Authorization": f"Bearer {KEY}", "anthropic-version": "2023-06-01"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:
        await asyncio.gather(*(_worker(client, url, queue, statuses) for _ in range(concurrency)))
    print(f"{n} requests: {dict(sorted(statuses.items(), key=str))}")


def report() -> None:
    _django()
    from django.db.models import F, Sum

    from chargeback.models import Organization
    from gateway.models import UsageEvent
    from wallets.models import Hold, LedgerEntry, Wallet

    org = Organization.objects.get(slug=SLUG)
    captured = Hold.objects.filter(organization=org, status="captured")
    over = captured.filter(captured_amount__gt=F("amount"))
    events = {
        e["request_id"]: e
        for e in UsageEvent.objects.filter(
            organization=org, request_id__in=over.values("request_id")
        ).values("request_id", "endpoint", "stream", "usage_source")
    }
    ratios, kinds = [], Counter()
    for hold in over.only("request_id", "amount", "captured_amount"):
        ratios.append(hold.captured_amount / hold.amount if hold.amount else Decimal("inf"))
        e = events.get(hold.request_id, {})
        kinds[
            (e.get("endpoint"), "stream" if e.get("stream") else "json", e.get("usage_source"))
        ] += 1
    flagged = None
    if any(f.name == "above_hold" for f in UsageEvent._meta.fields):
        flagged = UsageEvent.objects.filter(organization=org, above_hold=True).count()
    total = captured.count()
    print(f"captures: {total}, above their hold: {len(ratios)}", end="")
    print(f" ({100 * len(ratios) / total:.2f} %)" if total else "", end="")
    print(f", largest capture/hold: {max(ratios):.3f}" if ratios else "")
    for (endpoint, mode, source), count in kinds.most_common():
        print(f"  {endpoint} {mode} usage={source}: {count}")
    if flagged is not None:
        print(f"events flagged above_hold: {flagged}")
    pending = Hold.objects.filter(organization=org, status="pending").count()
    consistent = all(
        w.balance == (LedgerEntry.objects.filter(wallet=w).aggregate(s=Sum("amount"))["s"] or 0)
        for w in Wallet.objects.filter(organization=org)
    )
    print(f"holds pending: {pending}, balance = ledger sum: {consistent}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--fake-url", required=True)
    r = sub.add_parser("run")
    r.add_argument("url", help="the gateway's root URL, e.g. http://127.0.0.1:41002")
    r.add_argument("-n", type=int, default=2000)
    r.add_argument("-c", type=int, default=8)
    r.add_argument("--seed", type=int, default=12)
    sub.add_parser("report")
    args = parser.parse_args()
    if args.command == "setup":
        setup(args.fake_url)
    elif args.command == "run":
        asyncio.run(run(args.url.rstrip("/"), args.n, args.c, args.seed))
    else:
        report()


if __name__ == "__main__":
    main()
