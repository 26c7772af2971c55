"""The SDKs, unchanged, against the gateway: replies, streams, usage, money and attribution."""

import time
from decimal import Decimal

import httpx
import openai
import pytest
from django.db.models import Sum

from gateway.fake_text import reply_words
from gateway.models import UsageEvent
from gateway.pricing import Usage, cost_of
from wallets.models import Hold, LedgerEntry

from .conftest import OUTSIDER_KEY, allow_test_env_refs, live_db

pytestmark = live_db

HELLO = [{"role": "user", "content": "Hello there, what is chargeback?"}]


def _only_event():
    events = list(UsageEvent.objects.all())
    assert len(events) == 1
    return events[0]


def test_a_chat_completion_is_relayed_priced_and_recorded(gw, oai):
    raw = oai.chat.completions.with_raw_response.create(
        model="fake-chat",
        messages=HELLO,
        user="alice",
        extra_headers={"X-KT-Tags": "app=kb,env=prod"},
    )
    reply = raw.parse()

    assert reply.choices[0].message.content
    assert reply.usage.completion_tokens == len(reply.choices[0].message.content.split())
    event = _only_event()
    assert event.status == "ok"
    assert event.usage_source == "provider"
    assert event.prompt_tokens == reply.usage.prompt_tokens
    assert event.completion_tokens == reply.usage.completion_tokens
    assert event.cost == cost_of(
        gw.chat, Usage(reply.usage.prompt_tokens, reply.usage.completion_tokens)
    )
    assert event.cost > 0
    assert (event.user, event.tags) == ("alice", {"app": "kb", "env": "prod"})
    assert event.organization == gw.org
    assert event.department == gw.department
    assert event.consumer_group == gw.group
    assert event.wallet == gw.wallet
    assert (event.provider, event.target_id, event.model_requested) == ("fake", "fake", "fake-chat")
    assert event.model_served == "fake-chat"
    assert len(event.prompt_fingerprint) == 64
    assert "chargeback" not in event.prompt_fingerprint
    assert raw.headers["x-kt-request-id"] == event.request_id
    assert Decimal(raw.headers["x-kt-cost"]) == event.cost
    wallet = gw.refresh()
    assert wallet.balance == Decimal("10.00") - event.cost
    assert wallet.held == 0
    assert Decimal(raw.headers["x-kt-wallet-available"]) == wallet.available
    assert Hold.objects.get(request_id=event.request_id).status == "captured"


def test_a_chat_stream_is_relayed_chunk_by_chunk_without_the_usage_chunk_it_did_not_ask_for(
    gw, oai
):
    stream = oai.chat.completions.create(
        model="fake-chat", messages=HELLO, stream=True, extra_headers={"x-fake-chunks": "6"}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 6
    assert all(c.usage is None for c in chunks)
    event = _only_event()
    assert event.stream is True
    assert event.status == "ok"
    assert event.usage_source == "provider"
    assert event.completion_tokens == len(text.split())
    assert event.ttft_ms is not None
    assert event.latency_ms >= event.ttft_ms
    assert gw.refresh().balance == Decimal("10.00") - event.cost


def test_a_stream_that_asks_for_usage_gets_the_usage_chunk(gw, oai):
    chunks = list(
        oai.chat.completions.create(
            model="fake-chat", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1
    assert _only_event().prompt_tokens == usage[0].prompt_tokens


def test_a_stream_arrives_before_the_provider_has_finished(gw, gateway_url):
    """Chunks are relayed as they arrive: the first one comes long before the last is sent."""
    body = {"model": "fake-chat", "messages": HELLO, "stream": True}
    headers = {
        "Authorization": "Bearer kt_cg_engineering_prod",
        "x-fake-chunks": "4",
        "x-fake-chunk-delay": "300",
    }
    started = time.monotonic()
    with httpx.stream(
        "POST", f"{gateway_url}/chat/completions", json=body, headers=headers, timeout=10
    ) as r:
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        first_at = time.monotonic() - started
        rest = list(lines)
    done_at = time.monotonic() - started
    assert '"role": "assistant"' in first
    assert any("[DONE]" in line for line in rest)
    assert done_at >= 1.2
    assert first_at < done_at - 0.8
    assert _only_event().status == "ok"


def test_anthropic_messages_work_with_the_anthropic_sdk(gw, claude):
    raw = claude.messages.with_raw_response.create(
        model="fake-chat", max_tokens=20, messages=HELLO, metadata={"user_id": "bob"}
    )
    message = raw.parse()

    assert message.content[0].text.split() == reply_words_for(HELLO, 20)
    event = _only_event()
    assert event.endpoint == "messages"
    assert event.user == "bob"
    assert event.completion_tokens == message.usage.output_tokens == 20
    assert event.prompt_tokens == message.usage.input_tokens
    assert Decimal(raw.headers["x-kt-cost"]) == event.cost > 0


def reply_words_for(messages, count):
    import json

    return reply_words(json.dumps(messages, sort_keys=True), count)


def test_anthropic_streams_relay_every_event_and_record_usage(gw, claude):
    with claude.messages.stream(model="fake-chat", max_tokens=12, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text.split() == reply_words_for(HELLO, 12)
    event = _only_event()
    assert event.stream
    assert event.status == "ok"
    assert event.usage_source == "provider"
    assert event.completion_tokens == final.usage.output_tokens == 12
    assert event.prompt_tokens == final.usage.input_tokens


def test_anthropic_cache_reads_and_writes_are_priced_at_their_rates(gw, claude):
    gw.chat.cache_write_per_mtok = Decimal("3.750000")
    gw.chat.save()
    message = claude.messages.create(
        model="fake-chat",
        max_tokens=5,
        messages=HELLO,
        extra_headers={"x-fake-cached": "6", "x-fake-cache-write": "4"},
    )
    event = _only_event()
    u = message.usage
    assert (u.cache_read_input_tokens, u.cache_creation_input_tokens) == (6, 4)
    assert event.prompt_tokens == u.input_tokens + 10
    assert (event.cached_tokens, event.cache_write_tokens) == (6, 4)
    expected = (
        Decimal(u.input_tokens) * Decimal("2.5")
        + 6 * Decimal("1.25")
        + 4 * Decimal("3.75")
        + 5 * Decimal("10")
    ) / 1_000_000
    assert event.cost == expected.quantize(Decimal("0.00000001"))


def test_cached_prompt_tokens_are_priced_at_the_cached_rate(gw, oai):
    reply = oai.chat.completions.create(
        model="fake-chat", messages=HELLO, extra_headers={"x-fake-cached": "8"}
    )
    event = _only_event()
    prompt, completion = reply.usage.prompt_tokens, reply.usage.completion_tokens
    assert event.cached_tokens == reply.usage.prompt_tokens_details.cached_tokens == 8
    expected = (
        (prompt - 8) * Decimal("2.5") + 8 * Decimal("1.25") + completion * Decimal("10")
    ) / 1_000_000
    assert event.cost == expected.quantize(Decimal("0.00000001"))


def test_embeddings_are_relayed_and_priced(gw, oai):
    result = oai.embeddings.create(model="fake-embed", input=["one text", "another text"])
    assert len(result.data) == 2
    event = _only_event()
    assert event.endpoint == "embeddings"
    assert event.prompt_tokens == result.usage.prompt_tokens
    assert event.completion_tokens == 0
    assert event.cost == cost_of(gw.embed, Usage(result.usage.prompt_tokens))


def test_models_lists_what_the_group_may_use_and_nothing_of_other_organizations(gw, oai, claude):
    assert sorted(m.id for m in oai.models.list()) == ["fake-chat", "fake-embed"]
    assert sorted(m.id for m in claude.models.list()) == ["fake-chat", "fake-embed"]
    assert oai.models.retrieve("fake-chat").id == "fake-chat"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("outsider-only")  # the outsider's model: 404, not 403

    gw.group.allowed_models = ["fake-chat"]
    gw.group.save()
    from gateway import cache

    cache.clear_all()
    assert [m.id for m in oai.models.list()] == ["fake-chat"]


def test_an_outsider_key_never_reaches_this_organization(gw, live_server):
    import openai

    outsider = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=OUTSIDER_KEY, max_retries=0)
    assert [m.id for m in outsider.models.list()] == ["outsider-only"]
    with pytest.raises(openai.BadRequestError):
        outsider.chat.completions.create(model="fake-chat", messages=HELLO)
    outsider.chat.completions.create(model="outsider-only", messages=HELLO)

    assert gw.refresh().balance == Decimal("10.00")
    event = UsageEvent.objects.get()
    assert event.organization == gw.outsider_org


def test_after_many_calls_the_wallet_has_been_charged_exactly_the_sum_of_the_events(
    gw, oai, claude
):
    for i in range(6):
        messages = [{"role": "user", "content": f"question number {i} " * (i + 1)}]
        oai.chat.completions.create(model="fake-chat", messages=messages, max_tokens=5 + i)
        list(oai.chat.completions.create(model="fake-chat", messages=messages, stream=True))
        claude.messages.create(model="fake-chat", max_tokens=3 + i, messages=messages)
    oai.embeddings.create(model="fake-embed", input="x" * 100)

    events = UsageEvent.objects.all()
    assert events.count() == 19
    total = events.aggregate(total=Sum("cost"))["total"]
    captured = LedgerEntry.objects.filter(wallet=gw.wallet, kind="capture").aggregate(
        s=Sum("amount")
    )["s"]
    assert -captured == total > 0
    wallet = gw.refresh()
    assert wallet.balance == Decimal("10.00") - total
    assert wallet.held == 0
    assert not Hold.objects.filter(status="pending").exists()


def test_the_same_prompt_gets_the_same_fingerprint_whatever_its_spacing(gw, oai):
    oai.chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "What is  AI?"}]
    )
    oai.chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "what is AI? "}], max_tokens=3
    )
    oai.chat.completions.create(
        model="fake-chat", messages=[{"role": "user", "content": "Something else"}]
    )
    prints = list(UsageEvent.objects.order_by("id").values_list("prompt_fingerprint", flat=True))
    assert prints[0] == prints[1] != prints[2]


def test_the_user_wallet_pays_when_the_end_user_has_one(gw, oai):
    from wallets import services

    user_wallet = services.wallet_for_user(
        organization=gw.org, user_ref="carol", department=gw.department
    )
    services.wallet_adjust(wallet=user_wallet, amount=Decimal("1.00"), reason="test funds")
    oai.chat.completions.create(
        model="fake-chat", messages=HELLO, extra_headers={"X-KT-User": "carol"}
    )

    event = _only_event()
    assert event.wallet == user_wallet
    assert event.user == "carol"
    user_wallet.refresh_from_db()
    assert user_wallet.balance == Decimal("1.00") - event.cost
    assert gw.refresh().balance == Decimal("10.00")


def test_the_anthropic_sdk_works_in_front_of_an_openai_compatible_target(
    gw, claude, monkeypatch, fake_provider
):
    """`/v1/messages` on an OpenAI-compatible target is translated both ways."""
    from tests.factories import PriceFactory

    monkeypatch.setenv("KT_TEST_OPENAI_KEY", "sk-test")
    gw.target.provider = "openai"
    gw.target.base_url = f"{fake_provider}/v1"
    allow_test_env_refs(gw.org)
    gw.target.secret_env = "KT_TEST_OPENAI_KEY"
    gw.target.save()
    price = PriceFactory(provider="openai", model="gpt-test")

    message = claude.messages.create(
        model="gpt-test", max_tokens=9, system="Be brief.", messages=HELLO
    )
    assert message.role == "assistant"
    assert len(message.content[0].text.split()) == 9
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == 9

    with claude.messages.stream(model="gpt-test", max_tokens=7, messages=HELLO) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 7
    assert final.usage.output_tokens == 7

    events = list(UsageEvent.objects.order_by("id"))
    assert [(e.endpoint, e.provider, e.status, e.usage_source) for e in events] == [
        ("messages", "openai", "ok", "provider"),
        ("messages", "openai", "ok", "provider"),
    ]
    assert events[0].completion_tokens == 9
    assert events[1].completion_tokens == 7
    assert events[1].prompt_tokens == final.usage.input_tokens
    assert events[1].cost == cost_of(price, Usage(events[1].prompt_tokens, 7))
