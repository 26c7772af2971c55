from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.catalog import DEFAULT_CATALOG, catalog_load, catalog_parse
from gateway.models import Price
from gateway.pricing import Usage, cost_of, worst_case_cost


def _price(**overrides) -> Price:
    values = {
        "provider": "fake",
        "model": "m",
        "input_per_mtok": Decimal("3.00"),
        "output_per_mtok": Decimal("15.00"),
        "cached_input_per_mtok": Decimal("0.30"),
        "cache_write_per_mtok": Decimal("3.75"),
        "max_output_tokens": 8192,
        "effective_from": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return Price(**(values | overrides))


def test_cached_tokens_are_billed_at_the_cached_rate():
    usage = Usage(prompt_tokens=10_000, cached_tokens=8_000, completion_tokens=1_000)

    # 2,000 plain x 3.00 + 8,000 cached x 0.30 + 1,000 out x 15.00, per million
    assert cost_of(_price(), usage) == Decimal("0.00600000") + Decimal("0.00240000") + Decimal(
        "0.01500000"
    )


def test_cache_writes_are_billed_at_the_cache_write_rate():
    usage = Usage(prompt_tokens=10_000, cached_tokens=2_000, cache_write_tokens=8_000)

    assert cost_of(_price(), usage) == Decimal("0.00060000") + Decimal("0.03000000")


def test_a_catalog_without_a_cached_rate_bills_cached_tokens_at_the_input_rate():
    usage = Usage(prompt_tokens=1_000_000, cached_tokens=1_000_000)

    assert cost_of(_price(cached_input_per_mtok=None), usage) == Decimal("3")


def test_more_cached_than_prompt_tokens_never_makes_a_negative_cost():
    usage = Usage(
        prompt_tokens=100, cached_tokens=500, cache_write_tokens=500, completion_tokens=-5
    )

    cost = cost_of(_price(), usage)

    assert cost == Decimal("0.00003000")  # the 100 prompt tokens, all at the cached rate
    assert cost >= 0


def test_costs_are_summed_exactly_then_rounded_once_half_up_to_eight_places():
    # One token at 0.005 per million is 0.000000005: exactly half of the last place.
    price = _price(input_per_mtok=Decimal("0.005"), output_per_mtok=Decimal("0.005"))

    assert cost_of(price, Usage(prompt_tokens=1)) == Decimal("0.00000001")  # half up
    # Rounding each part would give 0.00000002; the exact sum 0.00000001 is rounded once.
    assert cost_of(price, Usage(prompt_tokens=1, completion_tokens=1)) == Decimal("0.00000001")
    assert cost_of(price, Usage(prompt_tokens=3, completion_tokens=1)) == Decimal("0.00000002")


def test_the_worst_case_takes_the_request_cap_but_never_more_than_the_model_cap():
    price = _price()

    assert worst_case_cost(price, prompt_upper_tokens=1_000, max_output_tokens=100) == Decimal(
        "0.00525000"
    )  # 1,000 x 3.75 (the cache-write rate is the highest input rate) + 100 x 15
    assert worst_case_cost(price, prompt_upper_tokens=0, max_output_tokens=None) == worst_case_cost(
        price, prompt_upper_tokens=0, max_output_tokens=10**9
    )


_CATALOG = [
    Price(**dict(entry.items())) for entry in catalog_parse(text=DEFAULT_CATALOG.read_text())
]


@settings(max_examples=400, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=len(_CATALOG) - 1),
    prompt_upper=st.integers(min_value=0, max_value=2_000_000),
    prompt_share=st.floats(min_value=0, max_value=1),
    cached=st.integers(min_value=-10, max_value=3_000_000),
    writes=st.integers(min_value=-10, max_value=3_000_000),
    max_tokens=st.one_of(st.none(), st.integers(min_value=0, max_value=300_000)),
    output_share=st.floats(min_value=0, max_value=1),
)
def test_the_worst_case_is_never_below_the_actual_cost_of_the_same_request(
    index, prompt_upper, prompt_share, cached, writes, max_tokens, output_share
):
    price = _CATALOG[index]
    cap = (
        price.max_output_tokens if max_tokens is None else min(max_tokens, price.max_output_tokens)
    )
    usage = Usage(
        prompt_tokens=int(prompt_upper * prompt_share),
        completion_tokens=int(cap * output_share),
        cached_tokens=cached,
        cache_write_tokens=writes,
    )

    worst = worst_case_cost(price, prompt_upper_tokens=prompt_upper, max_output_tokens=max_tokens)

    assert worst >= cost_of(price, usage) >= 0


def test_a_reader_of_the_shipped_catalog_finds_every_listed_model():
    models = {(e["provider"], e["model"]) for e in catalog_parse(text=DEFAULT_CATALOG.read_text())}
    expected_openai = [
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "gpt-4o",
        "gpt-4o-mini",
        "o3",
        "o4-mini",
        "text-embedding-3-small",
        "text-embedding-3-large",
    ]
    expected_anthropic = [
        "claude-opus-4-1",
        "claude-sonnet-4-5",
        "claude-sonnet-4",
        "claude-haiku-4-5",
        "claude-3-5-haiku",
    ]
    for model in expected_openai:
        assert ("openai", model) in models
    for model in expected_anthropic:
        assert ("anthropic", model) in models
    assert {("fake", "fake-gpt"), ("fake", "fake-premium"), ("fake", "fake-embed")} <= models


@pytest.mark.django_db
def test_the_shipped_catalog_loads_twice_without_a_change():
    catalog_load()
    count = Price.objects.count()

    report = catalog_load()

    assert not report.changed
    assert Price.objects.count() == count
