#!/usr/bin/env python3
"""Bench tenants for bench/gateway.sh, and the accounting check after a run.

  python bench/setup_bench.py setup --fast-url http://127.0.0.1:18080/v1 [--slow-url URL]
  python bench/setup_bench.py report

Two organizations, so that routing cannot mix them up: `bench-fast` (target `openai` at the
harness's fast nginx mock) and `bench-slow` (target `openai` at the slow SSE upstream). Each has
one department, one consumer group with a known key and a wallet funded with $1,000,000,000.
The model is the harness's `gpt-4o-mini`, priced from the shipped catalog (openai). `bench-fast`
also has the group `bench-cache` (same department and wallet) with the response cache on, for
bench/cache.sh. Idempotent.
`report` prints, per organization, what the ledger says after a run: events, their total cost,
captures, pending holds, whether balance = sum of the ledger and held = sum of open holds, and
how many captures exceeded their hold (with the largest capture/hold ratio; events flagged
`above_hold`).
"""

import json
import os
import sys
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

import django

django.setup()

from django.db.models import Count, F, Max, Sum  # noqa: E402

from chargeback.keys import hash_key, key_prefix  # noqa: E402
from chargeback.models import ConsumerGroup, Department, Organization, ProviderTarget  # noqa: E402
from gateway.catalog import catalog_load  # noqa: E402
from gateway.models import UsageEvent  # noqa: E402
from gateway.response_cache.services import cache_policy_set  # noqa: E402
from wallets import services  # noqa: E402
from wallets.models import Hold, LedgerEntry, Wallet  # noqa: E402

KEYS = {"bench-fast": "kt_cg_bench_fast_0123456789", "bench-slow": "kt_cg_bench_slow_0123456789"}
CACHE_KEY = "kt_cg_bench_cache_0123456789"
FUNDS = Decimal("1000000000")


def setup(fast_url: str, slow_url: str | None) -> None:
    catalog_load()
    for slug, url in (("bench-fast", fast_url), ("bench-slow", slow_url)):
        if url is None:
            continue  # bench/cache.sh: the slow tenant is bench/gateway.sh's
        org, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": slug})
        # The operator's allow-list (chargeback/env_refs.py); the gateway also needs its mocks'
        # host allowed: KT_UPSTREAM_ALLOW_HOSTS=127.0.0.1 (the bench scripts set it).
        Organization.objects.filter(pk=org.pk).update(env_refs_allowed=["BENCH_UPSTREAM_KEY"])
        department, _ = Department.objects.get_or_create(
            organization=org, team_id="team_bench", defaults={"name": "Bench"}
        )
        raw = KEYS[slug]
        ConsumerGroup.objects.update_or_create(
            organization=org,
            name="bench",
            defaults={
                "department": department,
                "key_prefix": key_prefix(raw),
                "key_hash": hash_key(raw),
                "is_active": True,
            },
        )
        ProviderTarget.objects.update_or_create(
            organization=org,
            target_id="openai",
            defaults={
                "provider": "openai",
                "base_url": url,
                "secret_env": "BENCH_UPSTREAM_KEY",
                "served_models": ["gpt-4o-mini"],
            },
        )
        if not LedgerEntry.objects.filter(
            organization=org, idempotency_key="bench-funding"
        ).exists():
            services.wallet_allocate(
                department=department,
                amount=FUNDS,
                currency=org.currency,
                description="bench funding",
                idempotency_key="bench-funding",
            )
        print(f"{slug}: key {raw}, target {url}")
        if slug == "bench-fast":
            group, _ = ConsumerGroup.objects.update_or_create(
                organization=org,
                name="bench-cache",
                defaults={
                    "department": department,
                    "key_prefix": key_prefix(CACHE_KEY),
                    "key_hash": hash_key(CACHE_KEY),
                    "is_active": True,
                },
            )
            cache_policy_set(
                organization=org,
                consumer_group=group,
                enabled=True,
                ttl_seconds=86400,
                actor="bench",
                via="config",
            )
            print(f"{slug}: key {CACHE_KEY} with the response cache on")


def report() -> dict:
    out = {}
    for org in Organization.objects.filter(slug__in=KEYS):
        events = UsageEvent.objects.filter(organization=org)
        by_status = dict(events.values_list("status").annotate(n=Count("id")))
        wallets = []
        for wallet in Wallet.objects.filter(organization=org):
            ledger = LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"]
            open_holds = Hold.objects.filter(wallet=wallet, status="pending")
            open_sum = open_holds.aggregate(s=Sum("amount"))["s"] or Decimal(0)
            wallets.append(
                {
                    "wallet": wallet.name,
                    "balance_is_ledger_sum": wallet.balance == ledger,
                    "held_is_open_holds": wallet.held == open_sum,
                    "pending_holds": open_holds.count(),
                    "captures": LedgerEntry.objects.filter(wallet=wallet, kind="capture").count(),
                    "spent": str(FUNDS - wallet.balance),
                }
            )
        over = Hold.objects.filter(
            organization=org, status="captured", captured_amount__gt=F("amount"), amount__gt=0
        )
        ratio = over.aggregate(r=Max(F("captured_amount") / F("amount")))["r"]
        out[org.slug] = {
            "events": events.count(),
            "captures_above_hold": over.count(),
            "largest_capture_over_hold": f"{ratio:.3f}" if ratio else None,
            "events_above_hold": events.filter(above_hold=True).count(),
            "events_by_status": by_status,
            "events_cost": str(events.aggregate(s=Sum("cost"))["s"] or 0),
            "wallets": wallets,
        }
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["setup"]:
        args = dict(zip(sys.argv[2::2], sys.argv[3::2], strict=False))
        setup(args["--fast-url"], args.get("--slow-url"))
    elif sys.argv[1:2] == ["report"]:
        print("ACCOUNTINGJSON " + json.dumps(report()))
    else:
        sys.exit(__doc__)
