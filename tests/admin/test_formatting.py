"""The admin shows money and counts as people read them: totals to the cent with separators,
a capture's sub-cent digits, token counts with separators, e-mail lists as text; never an
exponent (chargeback/display.py)."""

import re
from decimal import Decimal

import pytest

from budgets.models import Budget
from gateway.models import UsageEvent
from wallets.ledger import ledger_append
from wallets.models import Wallet

from .conftest import make_event

pytestmark = pytest.mark.django_db

EXPONENT = re.compile(r"(?<![\w.])\d+(?:\.\d+)?E[-+]\d+(?![\w])")  # Decimal's 0E-8, 1E+3


def _text(response) -> str:
    assert response.status_code == 200
    return response.content.decode()


def test_money_counts_and_lists_read_for_people(acme, login):
    client = login(acme.users["owner"])
    wallet = Wallet.objects.get(department=acme.owned)
    ledger_append(wallet, kind="capture", amount=Decimal("-4E-8"), reference="req-tiny")
    Budget.objects.filter(department=acme.owned).update(
        amount=Decimal("30000"), owner_emails=["lead@acme.example", "cfo@acme.example"]
    )
    make_event(
        acme.org, acme.owned, marker="acme", cost="0.00000004", prompt_tokens=7348430,
        completion_tokens=1415404,
    )  # fmt: skip

    wallet_page = _text(client.get(f"/admin/wallets/wallet/{wallet.pk}/change/"))
    assert "capture -0.00000004 USD" in wallet_page or "-0.00000004" in wallet_page
    ledger = _text(client.get(f"/admin/wallets/ledgerentry/?wallet__id__exact={wallet.pk}"))
    assert "-0.00000004" in ledger
    assert "1,000.00" in ledger  # the allocation, with its separator
    budgets = _text(client.get("/admin/budgets/budget/"))
    assert "30,000.00" in budgets
    assert "30000.00000000" not in budgets
    assert "lead@acme.example, cfo@acme.example" in budgets
    assert "50, 80, 100 %" in budgets
    form = _text(client.get(f"/admin/budgets/budget/{acme.owned.budgets.get().pk}/change/"))
    assert "lead@acme.example, cfo@acme.example" in form
    assert "[&quot;lead@acme.example" not in form
    assert 'value="30000.00"' in form  # the amount's input, not 30000.00000000
    events = _text(client.get("/admin/gateway/usageevent/"))
    assert "7,348,430 + 1,415,404" in events
    assert "0.00000004" in events
    wallets = _text(client.get("/admin/wallets/wallet/"))
    for page in (wallet_page, ledger, budgets, form, events, wallets):
        found = EXPONENT.search(page)
        assert not found, page[found.start() - 300 : found.end() + 50]
    assert UsageEvent.objects.filter(cost=Decimal("0.00000004")).exists()


def test_owner_emails_are_edited_as_a_comma_separated_list(acme, login):
    client = login(acme.users["owner"])
    budget = acme.owned.budgets.get()
    response = client.post(
        f"/admin/budgets/budget/{budget.pk}/change/",
        {
            "amount": "750",
            "thresholds": "[50, 80, 100]",
            "owner_emails": "lead@acme.example, cfo@acme.example\nops@acme.example",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    budget.refresh_from_db()
    assert budget.owner_emails == ["lead@acme.example", "cfo@acme.example", "ops@acme.example"]
    assert budget.amount == Decimal("750")


def test_no_changelist_or_change_page_shows_an_exponent(acme, login):
    """Every admin list (and the first row's page) with a sub-cent capture and a zero held on
    the books: Decimal's exponent form (0E-8, -4E-8) appears nowhere."""
    from django.contrib import admin
    from django.urls import NoReverseMatch, reverse

    wallet = Wallet.objects.get(department=acme.owned)
    ledger_append(wallet, kind="capture", amount=Decimal("-4E-8"), reference="req-tiny-2")
    client = login(acme.users["owner"])
    checked = 0
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        try:
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        except NoReverseMatch:
            continue
        response = client.get(url)
        if response.status_code != 200:
            continue
        pages = [response.content.decode()]
        first = model_admin.get_queryset(response.wsgi_request).first()
        if first is not None:
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk])
            detail = client.get(change)
            if detail.status_code == 200:
                pages.append(detail.content.decode())
        for page in pages:
            found = EXPONENT.search(page)
            assert not found, (url, page[found.start() - 200 : found.end() + 50])
            assert "Traceback" not in page, url
        checked += 1
    assert checked > 15
