from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.pricing import price_cache_clear


@pytest.fixture(autouse=True)
def _fresh_price_cache():
    price_cache_clear()
    yield
    price_cache_clear()


def may(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 5, day, hour, tzinfo=UTC)


@pytest.fixture
def catalog_file(tmp_path):
    """Writes a catalog file from (model, input, output, effective_from) rows; returns its path."""

    def write(*rows, name="prices.yaml", provider="fake", extra=""):
        lines = ["version: 1", "prices:"]
        for model, input_price, output_price, start in rows:
            lines.append(
                f"  - {{provider: {provider}, model: {model}, input: {input_price}, "
                f"output: {output_price}, cached_input: {Decimal(str(input_price)) / 2}, "
                f"max_output_tokens: 1000, effective_from: '{start}'{extra}}}"
            )
        path = Path(tmp_path) / name
        path.write_text("\n".join(lines) + "\n")
        return path

    return write
