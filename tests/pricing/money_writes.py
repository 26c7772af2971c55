"""What the fast-path and group-commit tests write with: a funded team wallet, an event's fields."""

from decimal import Decimal

from wallets import services


def funded_wallet(department, amount="10.00"):
    services.wallet_allocate(department=department, amount=Decimal(amount), currency="USD")
    return services.wallet_for_team(department=department)


def event_fields(wallet, request_id, cost, price=None):
    return {
        "organization_id": wallet.organization_id,
        "department_id": wallet.department_id,
        "wallet_id": wallet.pk,
        "request_id": request_id,
        "endpoint": "chat.completions",
        "provider": "fake",
        "model_requested": "fake-gpt",
        "model_served": "fake-gpt",
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "cached_tokens": 20,
        "cost": cost,
        "price_id": price.pk if price else None,
        "tags": {"app": "kb", "env": "prod"},
        "user": "alice",
        "latency_ms": 12,
    }
