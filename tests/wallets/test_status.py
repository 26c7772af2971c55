"""wallet_status: the one rule for healthy, low and depleted."""

from decimal import Decimal

import pytest

from wallets.models import Wallet
from wallets.selectors import wallet_status


def status(balance, held="0", last=None, percent=10):
    wallet = Wallet(balance=Decimal(balance), held=Decimal(held), low_threshold_percent=percent)
    return wallet_status(wallet=wallet, last_allocation=None if last is None else Decimal(last))


@pytest.mark.parametrize(
    ("balance", "held", "last", "expected"),
    [
        ("1000", "0", "1000", "healthy"),
        ("100", "0", "1000", "healthy"),  # exactly 10 %: not yet low
        ("99.99999999", "0", "1000", "low"),
        ("200", "150", "1000", "low"),  # holds count: 50 available
        ("1", "0", None, "healthy"),  # never allocated (a refund, an adjustment)
        ("0", "0", None, "depleted"),
        ("0", "0", "1000", "depleted"),
        ("10", "10", "1000", "depleted"),  # everything held
        ("-0.5", "0", "1000", "depleted"),  # a capture above its hold
    ],
)
def test_it_is_depleted_at_zero_and_low_under_the_threshold_of_the_last_allocation(
    balance, held, last, expected
):
    assert status(balance, held, last) == expected


def test_the_threshold_is_the_wallets_own():
    assert status("250", last="1000", percent=25) == "healthy"
    assert status("249", last="1000", percent=25) == "low"
    assert status("1", last="1000", percent=0) == "healthy"


@pytest.mark.django_db
def test_the_sql_expression_agrees_with_the_python_rule(engineering):
    from django.db.models import F, Value

    from chargeback.money import AmountField
    from wallets.selectors import wallet_status_expression

    cases = [
        ("1000", "0", "1000"), ("100", "0", "1000"), ("99.99999999", "0", "1000"),
        ("200", "150", "1000"), ("1", "0", None), ("0", "0", None), ("10", "10", "1000"),
        ("-0.5", "0", "1000"), ("249", "0", "1000"),
    ]  # fmt: skip
    wallet = Wallet.objects.create(
        organization=engineering.organization, scope="team", department=engineering, name="w"
    )
    for balance, held, last in cases:
        Wallet.objects.filter(pk=wallet.pk).update(balance=Decimal(balance), held=Decimal(held))
        last_value = Value(None if last is None else Decimal(last), output_field=AmountField())
        sql = (
            Wallet.objects.filter(pk=wallet.pk)
            .annotate(
                status=wallet_status_expression(
                    available=F("balance") - F("held"),
                    last_funding=last_value,
                    threshold_percent=F("low_threshold_percent"),
                )
            )
            .values_list("status", flat=True)
            .get()
        )
        assert sql == status(balance, held, last), (balance, held, last)
