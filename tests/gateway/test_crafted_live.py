"""Property: whatever bytes a client sends, the live gateway answers 2xx or a 4xx in the SDK's
shape, never a 5xx, and leaves the books straight: no hold left pending, the wallet's balance
the sum of its ledger, and its captures the sum of its events' costs.

Bodies come from two strategies: JSON documents built from the fields the gateway reads (valid
and not: odd types, huge and negative numbers, NUL and other control characters, extra fields,
fields missing) and raw bytes json.dumps cannot produce (nesting thousands deep, `\\ud800`
escapes, NaN, 5,000-digit integers, invalid UTF-8, truncation). Requests go to the gateway under
the live server, to the fake provider (and through the Anthropic translation to an `openai`
target), including streams the provider cuts and streams without a usage chunk.

Examples are derandomized, so a failure in CI is the same failure locally.
"""

import json
from decimal import Decimal

import httpx
import pytest
from django.db.models import Sum
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.models import UsageEvent
from tests.factories import PriceFactory, ProviderTargetFactory
from wallets.models import Hold, LedgerEntry

from .conftest import KEY, live_db

pytestmark = live_db

SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one gateway for all examples; invariants only
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
PATHS = ["chat/completions", "messages", "embeddings"]

# --- JSON documents --------------------------------------------------------------------------

# Any text but lone surrogates (json.dumps escapes them; the raw strategy sends those); NUL and
# the other control characters included.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
numbers = (
    st.integers(min_value=1, max_value=64)
    | st.integers(min_value=-(2**40), max_value=2**140)
    | st.floats(allow_nan=False, allow_infinity=False)
    | anything
)
models = st.sampled_from(["fake-chat", "fake-embed", "translated", "", "nope"]) | texts | anything
parts = st.fixed_dictionaries({"type": st.just("text"), "text": texts | anything}) | anything
messages = st.lists(
    st.fixed_dictionaries(
        {
            "role": st.sampled_from(["user", "assistant", "system"]) | anything,
            "content": texts | st.lists(parts, max_size=3) | anything,
        }
    )
    | anything,
    min_size=0,
    max_size=4,
)
bodies = st.fixed_dictionaries(
    {"model": models},
    optional={
        "messages": messages | anything,
        "input": texts | st.lists(texts | st.integers(-5, 10**6), max_size=4) | anything,
        "max_tokens": numbers,
        "max_completion_tokens": numbers,
        "n": numbers,
        "stream": st.booleans() | anything,
        "stream_options": st.fixed_dictionaries({"include_usage": st.booleans()}) | anything,
        "temperature": numbers,
        "top_p": numbers,
        "user": texts | anything,
        "metadata": st.fixed_dictionaries({}, optional={"user_id": texts | anything}) | anything,
        "system": texts | anything,
        "tools": st.lists(anything, max_size=2) | anything,
        "extra_field": anything,
    },
)
# Mostly well-formed requests, so that the provider call and the capture are exercised too.
sane = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["fake-chat", "translated"]),
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant"]), "content": texts}
            ),
            min_size=1,
            max_size=3,
        ),
        "max_tokens": st.integers(min_value=1, max_value=60),
    },
    optional={
        "stream": st.booleans(),
        "n": st.integers(min_value=1, max_value=3),
        "user": texts,
        "temperature": st.floats(min_value=0, max_value=2),
    },
)
sane_embeddings = st.fixed_dictionaries(
    {
        "model": st.just("fake-embed"),
        "input": texts.filter(bool)
        | st.lists(texts, min_size=1, max_size=3)
        | st.lists(st.integers(0, 10**6), min_size=1, max_size=20),
    }
)
faults = st.sampled_from([{}, {}, {"x-fake-fault": "no_usage"}, {"x-fake-fault": "reset"}])
# A well-formed request with one field replaced by something odd, or removed: reaches past the
# checks that a wholly random body fails first.
FIELDS = [
    "model",
    "messages",
    "input",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "user",
    "metadata",
    "system",
    "tools",
]
nasty = st.sampled_from(["a\x00b", "\x00", "fake-chat\x00", "\x1b[31m", "\x7f", "é\x00"])
odd = nasty | numbers | anything | st.fixed_dictionaries({"user_id": nasty | anything})


def _perturbed(case) -> dict:
    body, field, value, remove = case
    body = dict(body)
    if remove:
        body.pop(field, None)
    else:
        body[field] = value
    return body


def _perturb(base):
    return st.tuples(base, st.sampled_from(FIELDS), odd, st.booleans()).map(_perturbed)


CHATS = st.sampled_from(["chat/completions", "messages"])
# (path, body): mostly well-formed or nearly so, so that the call and the capture run too.
requests = st.one_of(
    st.tuples(CHATS, sane),
    st.tuples(CHATS, _perturb(sane)),
    st.tuples(CHATS, _perturb(sane)),
    st.tuples(st.just("embeddings"), sane_embeddings),
    st.tuples(st.just("embeddings"), _perturb(sane_embeddings)),
    st.tuples(st.sampled_from(PATHS), bodies),
)

# --- raw bytes ---------------------------------------------------------------------------------


def _mutations(base: str) -> st.SearchStrategy[tuple[bytes, bool]]:
    """(bytes, whether the gateway must refuse them) from `base`, a valid chat body whose first
    message content is the string "CONTENT"."""

    def content(value: str) -> bytes:
        return base.replace('"CONTENT"', value).encode()

    def field(text: str) -> bytes:
        return base.replace('"stream": ', f"{text}, " + '"stream": ').encode()

    def refused(raws):
        return raws.map(lambda raw: (raw, True))

    return st.one_of(
        # Deeper than MAX_DEPTH (64) counting the body, `messages` and the message: 62 and up.
        refused(st.integers(62, 5_000).map(lambda d: content("[" * d + '"x"' + "]" * d))),
        refused(st.integers(62, 3_000).map(lambda d: content('{"k":' * d + '"x"' + "}" * d))),
        refused(
            st.sampled_from(["\\ud800", "\\udfff", "a\\udbff", "\\uDC00z"]).map(
                lambda esc: content(f'"{esc}"')
            )
        ),
        refused(
            st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "1" + "0" * 5_000]).map(
                lambda number: field(f'"n": {number}')
            )
        ),
        refused(
            st.binary(min_size=1, max_size=4).map(
                lambda junk: base.encode().replace(b"CONTENT", b"\xff" + junk)  # not UTF-8
            )
        ),
        refused(st.integers(0, len(base) - 1).map(lambda cut: base.encode()[:cut])),
        refused(st.sampled_from(['"user": "a\\u0000b"', '"model": "fake-chat\\u0000"']).map(field)),
        # NUL in a message is text the provider may take: answered, not refused.
        st.just((content('"a\\u0000b"'), False)),
    )


CHAT = json.dumps(
    {"model": "fake-chat", "messages": [{"role": "user", "content": "CONTENT"}], "stream": False}
)
raw_bodies = _mutations(CHAT) | _mutations(CHAT.replace('"stream": false', '"stream": true'))

# --- the gateway -------------------------------------------------------------------------------


@pytest.fixture
def books(gw, fake_provider):
    """The gateway with an `openai` target too (Anthropic requests are translated for it)."""
    ProviderTargetFactory(
        organization=gw.org,
        target_id="oai",
        provider="openai",
        base_url=f"{fake_provider}/v1",
        served_models=["translated"],
    )
    PriceFactory(provider="openai", model="translated", max_output_tokens=1000)
    return gw


def _send(url: str, path: str, raw: bytes, headers: dict) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {KEY}",
        "Content-Type": "application/json",
        "anthropic-version": "2023-06-01",
        **headers,
    }
    with (
        httpx.Client(timeout=30) as client,
        client.stream("POST", f"{url}/v1/{path}", content=raw, headers=headers) as response,
    ):
        response.read()
    return response


def _assert_answered_and_books_straight(gw, path: str, response: httpx.Response):
    status = response.status_code
    event(f"{path} {status}")  # --hypothesis-show-statistics: how many got through
    assert status < 500, (status, response.content[:300])
    if status >= 400:
        body = json.loads(response.content)
        if path == "messages":
            assert body["type"] == "error"
            assert set(body["error"]) == {"type", "message"}
        else:
            assert set(body["error"]) == {"message", "type", "code", "param"}
    assert not Hold.objects.filter(status="pending").exists()
    wallet = gw.refresh()
    ledger = LedgerEntry.objects.filter(wallet=wallet)
    assert wallet.balance == ledger.aggregate(s=Sum("amount"))["s"]
    assert wallet.held == 0
    captured = -(ledger.filter(kind="capture").aggregate(s=Sum("amount"))["s"] or Decimal(0))
    charged = UsageEvent.objects.filter(wallet=wallet).aggregate(s=Sum("cost"))["s"] or Decimal(0)
    assert captured == charged


@settings(SETTINGS, max_examples=150)
@given(request=requests, headers=faults)
def test_any_json_body_is_answered_without_a_5xx_and_leaves_the_books_straight(
    books, live_server, request, headers
):
    path, body = request
    raw = json.dumps(body, ensure_ascii=False).encode()
    response = _send(live_server.url, path, raw, headers)
    _assert_answered_and_books_straight(books, path, response)


@settings(SETTINGS, max_examples=80)
@given(case=raw_bodies, path=st.sampled_from(["chat/completions", "messages"]))
def test_any_bytes_are_answered_without_a_5xx_and_leave_the_books_straight(
    books, live_server, case, path
):
    raw, must_refuse = case
    response = _send(live_server.url, path, raw, {})
    _assert_answered_and_books_straight(books, path, response)
    if must_refuse:
        assert response.status_code == 400
        request_id = response.headers["x-kt-request-id"]
        assert not UsageEvent.objects.filter(request_id=request_id).exists()
        assert not Hold.objects.filter(request_id=request_id).exists()
