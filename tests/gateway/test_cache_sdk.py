"""The response cache through the real OpenAI and Anthropic SDKs: hit, miss and bypass for chat
completions, streams and messages, and what each costs."""

from decimal import Decimal

import httpx
import pytest

from gateway.models import UsageEvent
from wallets.models import Hold, LedgerEntry

from .conftest import KEY, cache_on, live_db

pytestmark = live_db

HELLO = [{"role": "user", "content": "What does a response cache save us?"}]


@pytest.fixture
def cached(gw, cache_store):
    cache_on(gw.org)
    return gw


def _events():
    return list(UsageEvent.objects.order_by("id"))


def _chat_posts(server) -> int:
    return server.calls.get("/v1/chat/completions", 0)


def test_a_repeated_chat_completion_is_answered_from_the_cache_and_costs_nothing(
    cached, oai, fake_provider_server
):
    before = _chat_posts(fake_provider_server)
    first = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=HELLO)
    second = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=HELLO)

    assert (first.headers["x-kt-cache"], second.headers["x-kt-cache"]) == ("miss", "hit")
    assert _chat_posts(fake_provider_server) == before + 1
    reply, again = first.parse(), second.parse()
    assert again.choices[0].message.content == reply.choices[0].message.content
    assert again.usage.total_tokens == reply.usage.total_tokens
    paid, hit = _events()
    assert (paid.status, hit.status) == ("ok", "cache_hit")
    assert paid.cost > 0
    assert paid.saved == 0
    assert hit.cost == 0
    assert hit.saved == paid.cost
    assert (hit.prompt_tokens, hit.completion_tokens) == (
        paid.prompt_tokens,
        paid.completion_tokens,
    )
    assert hit.price_id == paid.price_id
    assert hit.model_served == paid.model_served == "fake-chat"
    assert hit.request_id == second.headers["x-kt-request-id"] != paid.request_id
    assert Decimal(second.headers["x-kt-cost"]) == 0
    wallet = cached.refresh()
    assert wallet.balance == Decimal("10.00") - paid.cost
    assert Decimal(second.headers["x-kt-wallet-available"]) == wallet.available
    assert Hold.objects.count() == 1  # the hit placed none
    assert LedgerEntry.objects.filter(kind="capture").count() == 1


def test_a_different_question_or_parameter_is_a_miss(cached, oai):
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    other = oai.chat.completions.with_raw_response.create(
        model="fake-chat", messages=[{"role": "user", "content": "Something else entirely?"}]
    )
    hotter = oai.chat.completions.with_raw_response.create(
        model="fake-chat", messages=HELLO, temperature=0.9
    )
    assert other.headers["x-kt-cache"] == hotter.headers["x-kt-cache"] == "miss"
    assert [e.status for e in _events()] == ["ok", "ok", "ok"]


def test_the_end_user_and_key_order_do_not_change_the_key(cached, gateway_url):
    def post(body, **headers):
        return httpx.post(
            f"{gateway_url}/chat/completions",
            content=body,
            headers={
                "Authorization": f"Bearer {KEY}",
                "Content-Type": "application/json",
                **headers,
            },
        )

    first = post(
        b'{"model": "fake-chat", "user": "alice", "messages": [{"role": "user", "content": "Hi"}]}'
    )
    second = post(b'{"messages":[{"content":"Hi","role":"user"}],"model":"fake-chat","user":"bob"}')
    assert (first.headers["x-kt-cache"], second.headers["x-kt-cache"]) == ("miss", "hit")
    assert [e.user for e in _events()] == ["alice", "bob"]


def test_a_repeated_stream_is_served_from_the_cache_as_a_stream(cached, oai, fake_provider_server):
    before = _chat_posts(fake_provider_server)
    with oai.chat.completions.with_streaming_response.create(
        model="fake-chat", messages=HELLO, stream=True
    ) as first:
        assert first.headers["x-kt-cache"] == "miss"
        first_chunks = list(first.parse())
    with oai.chat.completions.with_streaming_response.create(
        model="fake-chat", messages=HELLO, stream=True
    ) as second:
        assert second.headers["x-kt-cache"] == "hit"
        assert second.headers["content-type"].startswith("text/event-stream")
        second_chunks = list(second.parse())

    assert _chat_posts(fake_provider_server) == before + 1

    def text(chunks):
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    assert text(second_chunks) == text(first_chunks) != ""
    assert len(second_chunks) == len(first_chunks)
    assert all(c.usage is None for c in first_chunks + second_chunks)  # neither asked for it
    paid, hit = _events()
    assert (paid.stream, hit.stream) == (True, True)
    assert hit.status == "cache_hit"
    assert hit.saved == paid.cost > 0


def test_a_stream_hit_has_its_usage_chunk_only_when_the_client_asks(cached, oai):
    list(oai.chat.completions.create(model="fake-chat", messages=HELLO, stream=True))
    asked = list(
        oai.chat.completions.create(
            model="fake-chat",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    usage = [c.usage for c in asked if c.usage is not None]
    paid, hit = _events()
    assert hit.status == "cache_hit"
    assert len(usage) == 1
    assert (usage[0].prompt_tokens, usage[0].completion_tokens) == (
        paid.prompt_tokens,
        paid.completion_tokens,
    )


def test_a_stream_and_a_json_reply_to_the_same_question_are_stored_apart(cached, oai):
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    with oai.chat.completions.with_streaming_response.create(
        model="fake-chat", messages=HELLO, stream=True
    ) as streamed:
        assert streamed.headers["x-kt-cache"] == "miss"
        list(streamed.parse())


def test_anthropic_messages_hit_the_cache_with_the_anthropic_sdk(cached, claude):
    first = claude.messages.with_raw_response.create(
        model="fake-chat", max_tokens=20, messages=HELLO
    )
    second = claude.messages.with_raw_response.create(
        model="fake-chat", max_tokens=20, messages=HELLO, metadata={"user_id": "bob"}
    )
    assert (first.headers["x-kt-cache"], second.headers["x-kt-cache"]) == ("miss", "hit")
    assert second.parse().content[0].text == first.parse().content[0].text
    assert second.parse().usage.output_tokens == 20
    paid, hit = _events()
    assert (paid.endpoint, hit.endpoint) == ("messages", "messages")
    assert hit.status == "cache_hit"
    assert hit.saved == paid.cost > 0
    assert hit.user == "bob"


def test_anthropic_message_streams_hit_the_cache_as_streams(cached, claude):
    with claude.messages.stream(model="fake-chat", max_tokens=12, messages=HELLO) as stream:
        first_text = "".join(stream.text_stream)
        first = stream.get_final_message()
    with claude.messages.stream(model="fake-chat", max_tokens=12, messages=HELLO) as stream:
        second_text = "".join(stream.text_stream)
        second = stream.get_final_message()
    assert second_text == first_text != ""
    assert second.usage.output_tokens == first.usage.output_tokens == 12
    paid, hit = _events()
    assert (paid.status, hit.status) == ("ok", "cache_hit")
    assert hit.stream
    assert hit.saved == paid.cost


@pytest.mark.parametrize(
    "headers",
    [{"x-kt-cache": "bypass"}, {"Cache-Control": "no-store"}],
    ids=["x-kt-cache", "no-store"],
)
def test_a_request_may_bypass_the_cache(cached, oai, headers, fake_provider_server):
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    before = _chat_posts(fake_provider_server)
    bypassed = oai.chat.completions.with_raw_response.create(
        model="fake-chat", messages=HELLO, extra_headers=headers
    )
    assert bypassed.headers["x-kt-cache"] == "bypass"
    assert _chat_posts(fake_provider_server) == before + 1
    assert [e.status for e in _events()] == ["ok", "ok"]
    assert all(e.cost > 0 for e in _events())


def test_no_cache_asks_the_provider_again_and_refreshes_the_entry(
    cached, oai, fake_provider_server
):
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    refreshed = oai.chat.completions.with_raw_response.create(
        model="fake-chat", messages=HELLO, extra_headers={"Cache-Control": "no-cache"}
    )
    after = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=HELLO)
    assert (refreshed.headers["x-kt-cache"], after.headers["x-kt-cache"]) == ("miss", "hit")
    assert [e.status for e in _events()] == ["ok", "ok", "cache_hit"]


def test_an_excluded_model_bypasses_the_cache(gw, cache_store, oai):
    cache_on(gw.org, excluded_models=["fake-chat"])
    first = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=HELLO)
    second = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=HELLO)
    assert first.headers["x-kt-cache"] == second.headers["x-kt-cache"] == "bypass"
    assert [e.status for e in _events()] == ["ok", "ok"]


def test_a_group_without_the_cache_gets_no_cache_header(gw, oai):
    raw = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=HELLO)
    again = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=HELLO)
    assert "x-kt-cache" not in raw.headers
    assert "x-kt-cache" not in again.headers
    assert [e.status for e in _events()] == ["ok", "ok"]


def test_provider_errors_are_not_stored(cached, oai, fake_provider_server):
    import openai

    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(
                model="fake-chat", messages=HELLO, extra_headers={"x-fake-fault": "500"}
            )
    reply = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=HELLO)
    assert reply.headers["x-kt-cache"] == "miss"
    assert [e.status for e in _events()] == ["provider_error", "provider_error", "ok"]


def test_embeddings_are_cached_too(cached, oai):
    oai.embeddings.create(model="fake-embed", input=["one text"])
    again = oai.embeddings.with_raw_response.create(model="fake-embed", input=["one text"])
    assert again.headers["x-kt-cache"] == "hit"
    assert len(again.parse().data) == 1
    paid, hit = _events()
    assert hit.endpoint == "embeddings"
    assert hit.saved == paid.cost > 0


def test_anthropic_replies_translated_from_an_openai_compatible_target_are_cached(
    cached, claude, monkeypatch, fake_provider, fake_provider_server
):
    from tests.factories import PriceFactory

    from .conftest import allow_test_env_refs

    monkeypatch.setenv("KT_TEST_OPENAI_KEY", "sk-test")
    cached.target.provider = "openai"
    cached.target.base_url = f"{fake_provider}/v1"
    allow_test_env_refs(cached.org)
    cached.target.secret_env = "KT_TEST_OPENAI_KEY"
    cached.target.save()
    PriceFactory(provider="openai", model="gpt-test")
    before = _chat_posts(fake_provider_server)

    replies = [
        claude.messages.with_raw_response.create(model="gpt-test", max_tokens=9, messages=HELLO)
        for _ in range(2)
    ]
    streamed = []
    for _ in range(2):
        with claude.messages.stream(model="gpt-test", max_tokens=7, messages=HELLO) as stream:
            streamed.append(("".join(stream.text_stream), stream.get_final_message()))

    assert [r.headers["x-kt-cache"] for r in replies] == ["miss", "hit"]
    assert replies[1].parse().content[0].text == replies[0].parse().content[0].text
    assert streamed[1][0] == streamed[0][0] != ""
    assert streamed[1][1].usage.output_tokens == 7
    assert _chat_posts(fake_provider_server) == before + 2  # one JSON, one stream
    assert [e.status for e in _events()] == ["ok", "cache_hit", "ok", "cache_hit"]


def test_a_stream_the_client_left_is_not_stored_and_keeps_nobody_waiting(cached, gateway_url):
    body = {"model": "fake-chat", "messages": HELLO, "stream": True}
    headers = {"Authorization": f"Bearer {KEY}", "x-fake-chunks": "6", "x-fake-chunk-delay": "150"}
    with httpx.stream(
        "POST", f"{gateway_url}/chat/completions", json=body, headers=headers, timeout=10
    ) as left:
        assert left.headers["x-kt-cache"] == "miss"
        next(line for line in left.iter_lines() if line.startswith("data:"))
    again = httpx.post(
        f"{gateway_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert again.headers["x-kt-cache"] == "miss"
    assert "[DONE]" in again.text
    statuses = sorted(e.status for e in _events())
    assert statuses == ["client_disconnect", "ok"]


def test_without_cost_tracking_a_hit_is_recorded_and_charges_nothing(cached, oai):
    cached.org.cost_tracking_enabled = False
    cached.org.save()
    from gateway.cache import clear_all

    clear_all()
    oai.chat.completions.create(model="fake-chat", messages=HELLO)
    hit = oai.chat.completions.with_raw_response.create(model="fake-chat", messages=HELLO)
    assert hit.headers["x-kt-cache"] == "hit"
    paid, event = _events()
    assert (event.status, event.cost, event.wallet_id) == ("cache_hit", 0, None)
    assert event.saved == paid.cost > 0
    assert cached.refresh().balance == Decimal("10.00")
