"""Usage the way the gateway records it: hold, capture and the event in one transaction, at a
chosen time (time-machine moves `timezone.now()`, so the ledger entry and the event agree)."""

import itertools
from datetime import datetime
from decimal import Decimal

import time_machine
from django.db import transaction

from chargeback.money import quantize
from gateway.models import UsageEvent
from gateway.pricing import Usage, cost_of, price_for, worst_case_cost
from wallets import selectors as wallet_selectors
from wallets import services as wallets

_ids = itertools.count(1)


def fund(department, amount="1000.00", at=None):
    """Allocate to the department's wallet (at `at`, when given)."""
    if at is None:
        wallets.wallet_allocate(department=department, amount=Decimal(amount), currency="USD")
    else:
        with time_machine.travel(at, tick=False):
            wallets.wallet_allocate(department=department, amount=Decimal(amount), currency="USD")
    return wallets.wallet_for_team(department=department)


def record_usage(
    *,
    department,
    at: datetime,
    model: str,
    prompt_tokens: int = 1000,
    completion_tokens: int = 500,
    cached_tokens: int = 0,
    status: str = UsageEvent.Status.OK,
    provider: str = "fake",
    consumer_group=None,
    user: str = "",
    tags: dict | None = None,
    error_code: str = "",
    request_id: str | None = None,
) -> UsageEvent:
    """One priced request. A failed one (status != ok) costs 0: its hold is released."""
    org = department.organization
    wallet = wallet_selectors.effective_wallet(
        organization=org, department=department, user_ref=user
    )
    request_id = request_id or f"req_test_{next(_ids):06d}"
    with time_machine.travel(at, tick=False):
        price = price_for(organization_id=org.pk, provider=provider, model=model, at=at)
        usage = Usage(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=cached_tokens,
        )
        ok = status == UsageEvent.Status.OK
        cost = cost_of(price, usage) if ok else Decimal("0")
        hold = wallets.hold_place(
            wallet=wallet,
            amount=worst_case_cost(
                price, prompt_upper_tokens=prompt_tokens, max_output_tokens=completion_tokens
            ),
            request_id=request_id,
        )
        with transaction.atomic():
            wallets.hold_capture(hold=hold, amount=cost, reference=request_id)
            return UsageEvent.objects.create(
                organization=org,
                department=department,
                consumer_group=consumer_group,
                wallet=wallet,
                request_id=request_id,
                user=user,
                tags=tags or {},
                endpoint="chat.completions",
                provider=provider,
                target_id=provider,
                model_requested=model,
                model_served=model,
                prompt_tokens=prompt_tokens if ok else 0,
                completion_tokens=completion_tokens if ok else 0,
                cached_tokens=cached_tokens if ok else 0,
                cost=quantize(cost),
                price=price,
                status=status,
                http_status=200 if ok else 500,
                error_code=error_code,
                latency_ms=420,
                ttft_ms=80,
                prompt_fingerprint=f"fp{request_id[-6:]}",
                usage_source=UsageEvent.UsageSource.PROVIDER if ok else UsageEvent.UsageSource.NONE,
            )
