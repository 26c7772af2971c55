"""chargeback/display.py: money and counts as people read them, never an exponent; and
kt/tables.py, the command line's twin (kt imports nothing of the server)."""

from decimal import Decimal

import pytest

from chargeback import display
from kt import tables


@pytest.mark.parametrize(
    ("value", "money", "amount"),
    [
        (Decimal("30000.00000000"), "30,000.00", "30,000.00"),
        (Decimal("0E-8"), "0.00", "0.00"),
        (Decimal("-4E-8"), "0.00", "-0.00000004"),  # a total never reads -0.00
        (Decimal("0.000123"), "0.00", "0.000123"),
        (Decimal("1234567.891"), "1,234,567.89", "1,234,567.891"),
        (Decimal("-52800.005"), "-52,800.01", "-52,800.005"),  # half up, the one rule
        (Decimal("1E+3"), "1,000.00", "1,000.00"),
    ],
)
def test_money_is_to_the_cent_and_an_amount_keeps_its_sub_cent_digits(value, money, amount):
    assert display.money(value) == money
    assert display.amount(value) == amount
    assert tables.amount(str(value)) == amount  # what kt prints of the API's string
    for text in (display.money(value), display.amount(value), tables.amount(str(value))):
        assert "E" not in text


def test_counts_emails_thresholds_and_empty_cells():
    assert display.count(7348430889) == tables.count(7348430889) == "7,348,430,889"
    assert display.emails(["lead@eng.example", "cfo@acme.example"]) == (
        "lead@eng.example, cfo@acme.example"
    )
    assert display.thresholds([50, 80, 100]) == "50, 80, 100 %"
    assert display.money(None) == display.amount(None) == display.emails([]) == display.DASH
    assert display.money(Decimal("12.5"), "USD") == "12.50 USD"
    assert display.percent(Decimal("87.14")) == "87.1 %"


def test_the_ledger_entry_reads_without_an_exponent():
    from wallets.models import LedgerEntry

    entry = LedgerEntry(kind="capture", amount=Decimal("-4E-8"), currency="USD")
    assert str(entry) == "capture -0.00000004 USD"
