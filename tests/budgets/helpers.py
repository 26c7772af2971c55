"""Spend recorded the way the gateway records it: hold, then capture + usage event in one
transaction, then the alert hook on commit."""

import itertools
from decimal import Decimal

from django.db import transaction

from budgets.alerts import spend_recorded
from gateway.models import UsageEvent
from wallets import selectors as wallet_selectors
from wallets import services as wallet_services

_ids = itertools.count(1)


def record_spend(
    *, department, amount, model="gpt-4o-mini", user="", enforce=None, hold=None, started_at=None
):
    """One served request of `amount` for `department`, charged to its effective wallet.

    `hold` is the worst-case reservation (default: the amount itself). `enforce` defaults to the
    organization's wallet_enforcement, as the gateway does. `started_at` stamps the event with
    an earlier time, like a long (streamed) request that commits minutes after it began.
    """
    organization = department.organization
    amount = Decimal(str(amount))
    wallet = wallet_selectors.effective_wallet(
        organization=organization, department=department, user_ref=user
    )
    enforce = organization.wallet_enforcement if enforce is None else enforce
    request_id = f"req_test_{next(_ids)}_{id(department)}"
    placed = wallet_services.hold_place(
        wallet=wallet,
        amount=Decimal(str(hold)) if hold is not None else amount,
        request_id=request_id,
        enforce=enforce,
    )
    with transaction.atomic():
        wallet_services.hold_capture(hold=placed, amount=amount)
        event = UsageEvent.objects.create(
            organization=organization,
            department=department,
            wallet=wallet,
            request_id=request_id,
            user=user,
            endpoint="chat.completions",
            provider="openai",
            target_id="openai",
            model_requested=model,
            model_served=model,
            prompt_tokens=1000,
            completion_tokens=500,
            cost=amount,
            currency=wallet.currency,
            **({"created_at": started_at} if started_at is not None else {}),
        )
        transaction.on_commit(
            lambda: spend_recorded(
                organization_id=organization.pk,
                department_id=department.pk,
                wallet_id=wallet.pk,
            )
        )
    return event
