"""Helpers of the failover, circuit-breaker and policy tests: two fake targets, one made to fail
on cue, and the organization's gateway settings written through their service."""

from decimal import Decimal

from django.db.models import Sum

from chargeback.models import ProviderTarget
from gateway.cache import clear_all
from gateway.models import UsageEvent
from gateway.services import gateway_settings_update
from tests.factories import PriceFactory, ProviderTargetFactory
from wallets.models import Hold, LedgerEntry

HELLO = [{"role": "user", "content": "Hello there, what is a failover?"}]
FALLBACK = {"strategy": "ordered", "max_retries": 2, "retry_on": ["5xx", "timeout", "rate_limit"]}
BREAKER = {
    "failure_threshold": 2,
    "window_seconds": 60.0,
    "cooldown_seconds": 30.0,
    "half_open_requests": 1,
}


def two_targets(
    gw, pair, *, primary_models=("fake-chat",), backup_models=("fake-chat",), backup="fake"
):
    """Replace the setup's target with `primary` (first in the file's order) and `backup`, of
    provider `backup` (`openai`: an OpenAI-compatible target at the fake's /v1, priced apart)."""
    ProviderTarget.objects.filter(organization=gw.org).delete()
    backup_url = pair.backup_url + ("/v1" if backup == "openai" else "")
    for target_id, provider, url, models in (
        ("primary", "fake", pair.primary_url, primary_models),
        ("backup", backup, backup_url, backup_models),
    ):
        ProviderTargetFactory(
            organization=gw.org,
            target_id=target_id,
            provider=provider,
            base_url=url,
            served_models=list(models),
        )
    pair.reset_counts()
    clear_all()


def configure(gw, **settings):
    """Set the organization's gateway settings (`fallback` gets the file's target order)."""
    if settings.get("fallback"):
        settings["fallback"] = {**settings["fallback"], "order": ["primary", "backup"]}
    gateway_settings_update(organization=gw.org, actor="test", via="config", **settings)
    clear_all()


def fail(gw, target_id: str, fault: str | None, **options):
    """Make a target answer every request with `fault` (x-fake-fault), or heal it (None)."""
    target = ProviderTarget.objects.get(organization=gw.org, target_id=target_id)
    headers = {"x-fake-fault": fault, **options} if fault else {}
    target.options = {**target.options, "headers": headers}
    target.save()
    clear_all()


def dearer_price():
    """A model that costs 40 times fake-chat, for re-estimated holds."""
    return PriceFactory(
        model="fake-premium",
        input_per_mtok=Decimal("100.000000"),
        output_per_mtok=Decimal("400.000000"),
        cached_input_per_mtok=None,
        max_output_tokens=1000,
        premium=True,
    )


def charged_once(wallet, funded: str) -> list[UsageEvent]:
    """Each event of the wallet captured once at its cost; ledger = balance; no hold left."""
    events = list(UsageEvent.objects.filter(wallet=wallet).order_by("id"))
    captures = LedgerEntry.objects.filter(wallet=wallet, kind="capture")
    charged = [e for e in events if e.cost > 0]
    assert sorted(c.reference for c in captures) == sorted(e.request_id for e in charged)
    assert -sum(c.amount for c in captures) == sum(e.cost for e in events)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(funded) - sum(e.cost for e in events)
    ledger = LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("amount"))["s"]
    assert wallet.balance == ledger
    assert wallet.held == 0
    assert not Hold.objects.filter(wallet=wallet, status="pending").exists()
    return events
