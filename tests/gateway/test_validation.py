"""Crafted request bodies are refused before the hold: the rules of gateway/validation.py, one
by one, then through the gateway (nothing held, nothing recorded, the SDK's error shape)."""

import json
import timeit

import pytest

from gateway import estimate
from gateway.errors import GatewayError
from gateway.models import UsageEvent
from gateway.validation import MAX_DEPTH, body_parse, body_validate, storable
from wallets.models import Hold

from .conftest import OUTSIDER_KEY
from .test_rules import post

HELLO = [{"role": "user", "content": "Hello"}]


def _refused(raw: bytes, endpoint: str = "chat") -> GatewayError:
    with pytest.raises(GatewayError) as exc:
        body_validate(endpoint, body_parse(raw))
    assert exc.value.status == 400
    return exc.value


def _chat(**fields) -> bytes:
    return json.dumps({"model": "m", "messages": HELLO, **fields}).encode()


def _nested(depth: int) -> bytes:
    content = "[" * depth + '"x"' + "]" * depth
    return b'{"model": "m", "messages": [{"role": "user", "content": %s}]}' % content.encode()


def test_a_plain_request_passes():
    body = body_parse(_chat(max_tokens=10, n=2, temperature=0.2, stream=True, user="alice"))
    body_validate("chat", body)
    assert body["n"] == 2


@pytest.mark.parametrize("depth", [MAX_DEPTH - 2, 440, 2_000, 100_000])
def test_nesting_beyond_the_limit_is_refused_before_anything_recurses(depth):
    # The body (1), `messages` (2) and the message (3) come first: MAX_DEPTH - 2 is one too many.
    error = _refused(_nested(depth))
    assert error.code == "invalid_json"
    assert "nested too deeply" in error.message


def test_a_body_just_within_the_limit_is_safe_for_everything_computed_from_it():
    body = body_parse(_nested(MAX_DEPTH - 3))
    body_validate("chat", body)
    assert estimate.prompt_fingerprint(body)
    assert estimate.prompt_upper_bound(body) > 0
    assert json.dumps(body)


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b'{"model": "m", "user": "\\udc00", "messages": [{"role": "user"}]}', "user"),
        (b'{"model": "m\\ud800", "messages": [{"role": "user"}]}', "model"),
        (
            b'{"model": "m", "metadata": {"user_id": "a\\uDFFF"}, "messages": [{}]}',
            "metadata.user_id",
        ),
    ],
)
def test_lone_surrogates_in_the_ids_stored_on_the_event_are_refused(raw, param):
    assert _refused(raw).param == param


def test_a_surrogate_pair_is_text_and_passes():
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "\\ud83d\\ude00 ok"}]}'
    body = body_parse(raw)
    body_validate("chat", body)
    assert body["messages"][0]["content"] == "\U0001f600 ok"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "m", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}',  # CESU
        b'{"model": "m", "messages": [{"role": "user", "content": "\xff"}]}',
        b'\xef\xbb\xbf{"model": "m", "messages": []}',  # a byte-order mark
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_p": -Infinity}',
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e400}',
        b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "x": 1'
        + b"0" * 5000
        + b"}",
        b"[1, 2]",
        b"",
    ],
)
def test_bytes_that_are_not_a_json_object_of_utf8_text_are_refused(raw):
    assert _refused(raw).code == "invalid_json"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"model": "fake\x00chat"}, "model"),
        ({"model": 5}, "model"),
        ({"user": "a\x00b"}, "user"),
        ({"user": {"id": 1}}, "user"),
        ({"metadata": {"user_id": "a\x00"}}, "metadata.user_id"),
        ({"metadata": {"user_id": 7}}, "metadata.user_id"),
        ({"metadata": [1]}, "metadata"),
        ({"n": 10**40}, "n"),
        ({"n": 129}, "n"),
        ({"n": 0}, "n"),
        ({"n": True}, "n"),
        ({"max_tokens": 2**31}, "max_tokens"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"max_tokens": 10.0}, "max_tokens"),
        ({"max_completion_tokens": "10"}, "max_completion_tokens"),
        ({"temperature": 3}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": "usage"}, "stream_options"),
        ({"tools": {"name": "x"}}, "tools"),
        ({"system": 5}, "system"),
        ({"messages": [5]}, "messages"),
        ({"messages": [{"role": 1, "content": "x"}]}, "messages"),
        ({"messages": [{"role": "user", "content": 12}]}, "messages"),
        ({"messages": []}, "messages"),
    ],
)
def test_fields_the_gateway_reads_are_checked_for_type_and_range(fields, param):
    error = _refused(_chat(**fields))
    assert error.param == param


@pytest.mark.parametrize(
    "value",
    ["text", ["a", "b"], [1, 2, 3], [[1, 2], [3]]],
)
def test_embedding_inputs_of_every_documented_shape_pass(value):
    body_validate("embeddings", {"model": "e", "input": value})


@pytest.mark.parametrize(
    "value", [None, "", [], [1, "a"], [[1], "a"], [[]], [-1], [True], {"a": 1}]
)
def test_other_embedding_inputs_are_refused(value):
    with pytest.raises(GatewayError) as exc:
        body_validate("embeddings", {"model": "e", "input": value})
    assert exc.value.param == "input"


def test_provider_strings_are_made_storable():
    assert storable("gpt-4o\x00-mini", 200) == "gpt-4o-mini"
    assert storable("mod\ud800èl", 200) == "modèl"
    assert storable("x" * 300, 200) == "x" * 200
    assert storable(None, 10) == ""


def test_validating_a_typical_body_costs_microseconds():
    raw = json.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a helpful assistant. " * 5},
                {"role": "user", "content": "Summarise the quarter's spend by team. " * 20},
            ],
            "max_tokens": 256,
            "temperature": 0.2,
            "user": "alice@example.com",
        }
    ).encode()
    assert 900 < len(raw) < 1200

    def both():
        body_validate("chat", body_parse(raw))

    def parse_only():
        json.loads(raw)

    runs = 2_000
    ours = min(timeit.repeat(both, number=runs, repeat=3)) / runs
    plain = min(timeit.repeat(parse_only, number=runs, repeat=3)) / runs
    # The checks add little to the json.loads the gateway always did (typically 2-4 us here).
    assert ours - plain < 50e-6


# --- through the gateway --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("chat/completions", _nested(440)),
        ("chat/completions", _nested(3_000)),
        ("chat/completions", _chat(model="fake-chat", user="a\x00b")),
        ("chat/completions", _chat(model="fake-chat", n=10**40)),
        ("chat/completions", _chat(model="fake-chat\u0000")),
        ("messages", b'{"model": "fake-chat", "max_tokens": 5, "messages": "\\ud800"}'),
        # Lone surrogates in the prompt: found by the hold's estimate, which encodes its text.
        ("chat/completions", b'{"model": "fake-chat", "messages": [{"content": "\\ud800"}]}'),
        (
            "messages",
            (
                b'{"model": "fake-chat", "max_tokens": 5, "system": [{"text": "a\\uDFFF"}], '
                b'"messages": [{"role": "user", "content": "hi"}]}'
            ),
        ),
        ("embeddings", b'{"model": "fake-embed", "input": ["ok", "\\udbff"]}'),
        ("messages", _chat(model="fake-chat", max_tokens=5, metadata={"user_id": "\x00"})),
        ("embeddings", b'{"model": "fake-embed", "input": [[[1]]]}'),
    ],
)
def test_a_crafted_body_is_a_400_before_any_hold_or_event(gw_local, client, path, raw):
    r = post(client, path, raw)
    assert r.status_code == 400
    body = r.json()
    if path == "messages":
        assert body["type"] == "error"
        assert body["error"]["type"] == "invalid_request_error"
    else:
        assert set(body["error"]) == {"message", "type", "code", "param"}
    assert not Hold.objects.exists()
    assert not UsageEvent.objects.exists()
    assert gw_local.refresh().held == 0


@pytest.mark.parametrize("header", ["X-KT-User", "X-KT-Tags"])
def test_control_characters_in_the_attribution_headers_are_a_400(gw_local, client, header):
    value = "alice\x00" if header == "X-KT-User" else "app=kb\x01"
    r = post(
        client, "chat/completions", {"model": "fake-chat", "messages": HELLO}, **{header: value}
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == header
    assert not UsageEvent.objects.exists()


def test_another_organizations_crafted_body_is_refused_and_touches_no_wallet(gw_local, client):
    r = post(client, "chat/completions", _nested(500), key=OUTSIDER_KEY)
    assert r.status_code == 400
    fine = post(
        client, "chat/completions", {"model": "outsider-only", "messages": HELLO}, key=OUTSIDER_KEY
    )
    assert fine.status_code == 200
    event = UsageEvent.objects.get()
    assert event.organization == gw_local.outsider_org
    gw_local.outsider_wallet.refresh_from_db()
    assert gw_local.outsider_wallet.balance == 5 - event.cost
    assert gw_local.refresh().balance == 10
