"""Run as `python -m tests.money.sqlite_probe` with DATABASE_URL naming a fresh SQLite file (the
embedded default's database): migrates it, seeds the demo's April and May 2026 (thousands of
micro-dollar captures per wallet, sums that SQLite adds up as floats), then prints as JSON, per
team wallet, the exact sum of its captures, SQLite's own SUM of them and what the selectors and
the API say. tests/money/test_exact_sums.py runs it."""

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    from demo.seed import demo_seed
    from tests.factories import AdminTokenFactory
    from wallets.models import Wallet
    from wallets.selectors import wallets_for_org

    assert connection.vendor == "sqlite", connection.vendor
    call_command("migrate", interactive=False, verbosity=0)
    org = demo_seed()["organization"]
    AdminTokenFactory(organization=org, raw="kt_admin_sqlite_probe")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer kt_admin_sqlite_probe")
    api = client.get("/v1/wallets", {"limit": 100}, HTTP_HOST="localhost").json()["results"]
    out = {}
    for wallet in wallets_for_org(organization=org, scope=Wallet.Scope.TEAM):  # the demo's 8
        amounts = list(wallet.entries.filter(kind="capture").values_list("amount", flat=True))
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT -SUM(amount) FROM wallets_ledgerentry WHERE wallet_id = %s"
                " AND kind = 'capture'",
                [wallet.pk],
            )
            (sqlite_sum,) = cursor.fetchone()
        out[wallet.name] = {
            "exact_spent": str(-sum(amounts)),
            "sqlite_sum": repr(sqlite_sum),
            "selector_spent": str(wallet.total_spent),
            "selector_available": str(wallet.available_amount),
            "api": next(w for w in api if w["name"] == wallet.name),
        }
    out["holds"] = _holds(org)
    json.dump(out, sys.stdout)


def _holds(org) -> dict:
    """0.1 held of 0.3, then 0.2 asked: exactly affordable (SQLite's floats say 0.1 + 0.2 >
    0.3); then a millionth of a cent more than what is left: not affordable."""
    from decimal import Decimal

    from chargeback.errors import InsufficientFunds
    from tests.factories import DepartmentFactory
    from wallets import services

    dept = DepartmentFactory(organization=org, team_id="team_holds")
    services.wallet_allocate(department=dept, amount=Decimal("0.3"), currency="USD")
    wallet = services.wallet_for_team(department=dept)
    services.hold_place(wallet=wallet, amount=Decimal("0.1"), request_id="req_h1")
    answers = {}
    for name, amount in (("one_unit_over", "0.20000001"), ("exactly_affordable", "0.2")):
        try:
            services.hold_place(wallet=wallet, amount=Decimal(amount), request_id=f"req_{name}")
            answers[name] = "placed"
        except InsufficientFunds:
            answers[name] = "refused"
    return answers


if __name__ == "__main__":
    main()
