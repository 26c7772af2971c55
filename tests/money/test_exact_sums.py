"""Money is exact on every backend: a sum read from the database is a Decimal at storage
precision (chargeback.money.exact_sum, applied by AmountField), never a float artefact."""

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from django.conf import settings

from chargeback.money import AmountField, exact_sum


@pytest.mark.parametrize(
    ("read", "exact"),
    [
        (52800.00000000017, Decimal("52800.00000000")),  # SQLite's float SUM
        (Decimal("7300.00000000001"), Decimal("7300.00000000")),  # ... as Django reads it
        (5449.999999999998, Decimal("5450.00000000")),
        (Decimal("0.00000004"), Decimal("0.00000004")),  # a real sub-cent amount is kept
        (Decimal("-0.00000004"), Decimal("-0.00000004")),
        (0, Decimal("0E-8")),
        (None, None),
    ],
)
def test_exact_sum_rounds_the_float_artefact_away_and_nothing_else(read, exact):
    value = exact_sum(read)
    assert value == exact
    if value is not None:
        assert isinstance(value, Decimal)
        assert value.as_tuple().exponent == -8


def test_every_amount_read_from_the_database_goes_through_it():
    field = AmountField()
    assert field.from_db_value(52800.00000000017, None, None) == Decimal("52800")
    assert str(field.from_db_value(Decimal("7300.00000000001"), None, None)) == "7300.00000000"


def test_on_sqlite_the_demo_wallets_totals_are_exact_in_the_selectors_and_the_api(tmp_path):
    """The embedded default's backend: SQLite's own SUM of a wallet's captures is off (that is
    what this test is about), the selectors' and the API's totals are exact; and a hold that
    the wallet can exactly afford is placed."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"REDIS_URL", "DATABASE_URL", "KT_TEST_NOW"}
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'embedded.sqlite3'}"
    done = subprocess.run(
        [sys.executable, "-m", "tests.money.sqlite_probe"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    wallets = json.loads(done.stdout)
    holds = wallets.pop("holds")
    assert len(wallets) == 8
    off = [w for w in wallets.values() if Decimal(w["sqlite_sum"]) != Decimal(w["exact_spent"])]
    assert off, "SQLite summed exactly: this test no longer shows the artefact"
    for name, wallet in wallets.items():
        exact = Decimal(wallet["exact_spent"])
        assert Decimal(wallet["selector_spent"]) == exact, name
        assert wallet["selector_spent"] == f"{exact:.8f}", name
        assert Decimal(wallet["api"]["total_spent"]) == exact, name
        assert wallet["api"]["total_spent"] == f"{exact:.2f}", name  # whole cents in the demo
        assert Decimal(wallet["api"]["available"]) == Decimal(wallet["selector_available"]), name
    assert wallets["team_engineering"]["api"]["total_spent"] == "52800.00"
    # A hold compares balance >= held + amount: exactly, not as SQLite's floats would.
    assert holds == {"one_unit_over": "refused", "exactly_affordable": "placed"}
