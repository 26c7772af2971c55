"""The hold's prompt upper bound and the estimates for missing usage (no database)."""

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import estimate
from gateway.models import Price
from gateway.pricing import Usage, cost_of
from gateway.proxy import Call
from gateway.wire import StreamScanner, anthropic_usage

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Grüße aus Köln, wie geht's?"},
]


def test_the_prompt_bound_counts_utf8_bytes_plus_overheads():
    text_bytes = (
        sum(len(m["content"].encode()) for m in MESSAGES)
        + len("role") * 2
        + len("content") * 2
        + len("system")
        + len("user")
    )
    bound = estimate.prompt_upper_bound({"messages": MESSAGES})
    assert bound == text_bytes + 2 * estimate.MESSAGE_OVERHEAD + estimate.REPLY_PRIMING
    # Every token is at least one byte, so no tokenizer can count more tokens than bytes.
    assert bound >= len("".join(m["content"] for m in MESSAGES).encode())


def test_the_prompt_bound_is_capped_by_the_context_window():
    body = {"messages": [{"role": "user", "content": "x" * 10_000}]}
    assert estimate.prompt_upper_bound(body, context_window=4_000) == 4_000


def test_images_count_a_fixed_amount_not_their_base64_bytes():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 50_000}}
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]}
    bound = estimate.prompt_upper_bound(body)
    assert estimate.IMAGE_TOKENS < bound < estimate.IMAGE_TOKENS + 100


def test_tools_and_system_prompts_are_part_of_the_bound():
    plain = {"messages": [{"role": "user", "content": "hi"}]}
    tools = {**plain, "system": "s" * 100, "tools": [{"name": "lookup", "description": "d" * 200}]}
    assert estimate.prompt_upper_bound(tools) >= estimate.prompt_upper_bound(plain) + 300


def test_embedding_bounds_count_strings_and_token_arrays():
    assert estimate.embedding_upper_bound({"input": "abcd"}) == 5
    assert estimate.embedding_upper_bound({"input": ["ab", "cd"]}) == 6
    assert estimate.embedding_upper_bound({"input": [1, 2, 3]}) == 3
    assert estimate.embedding_upper_bound({"input": [[1, 2], [3]]}) == 3


def test_estimates_are_never_zero():
    assert estimate.estimate_tokens(0) == 1
    assert estimate.estimate_tokens(9) == 3
    assert estimate.prompt_estimate({"messages": [{"role": "user", "content": ""}]}) > 0


def test_the_fingerprint_ignores_spacing_case_and_sampling_but_not_words():
    a = estimate.prompt_fingerprint({"messages": [{"role": "user", "content": "Hello  World"}]})
    b = estimate.prompt_fingerprint(
        {"messages": [{"role": "user", "content": " hello world"}], "temperature": 1}
    )
    c = estimate.prompt_fingerprint({"messages": [{"role": "user", "content": "Hello there"}]})
    assert a == b != c
    assert len(a) == 64


def test_the_openai_scanner_strips_only_the_usage_chunk_it_was_told_to():
    scanner = StreamScanner("openai", strip_usage=True)
    content = 'data: {"model": "m", "choices": [{"delta": {"content": "héllo"}}]}'
    usage = 'data: {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}'
    assert scanner.feed(content) is None
    assert scanner.feed("") == (content + "\n\n").encode()
    scanner.feed(usage)
    assert scanner.feed("") is None
    scanner.feed("data: [DONE]")
    assert scanner.feed("") == b"data: [DONE]\n\n"
    assert (scanner.usage.prompt_tokens, scanner.usage.completion_tokens) == (5, 2)
    assert scanner.text_bytes == len("héllo".encode())
    assert scanner.finished
    assert scanner.model == "m"


def test_anthropic_usage_counts_cache_reads_and_writes_as_prompt_tokens():
    usage = anthropic_usage(
        {
            "input_tokens": 10,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 20,
            "output_tokens": 7,
        }
    )
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens) == (130, 100, 20)
    assert usage.completion_tokens == 7


# --- the hold's bounds and the estimates within them (gateway.proxy.Call, no database) -------


def _call(endpoint: str, body: dict, **price) -> Call:
    call = Call(
        request=None, ctx=None, endpoint=endpoint, body=body, raw=b"", request_id="r", started=0
    )
    call.price = Price(
        provider="fake",
        model="m",
        input_per_mtok=price.get("input", Decimal("2.5")),
        output_per_mtok=price.get("output", Decimal("10")),
        cached_input_per_mtok=price.get("cached"),
        cache_write_per_mtok=price.get("cache_write"),
        max_output_tokens=price.get("max_output", 1000),
        context_window=price.get("context", 128_000),
    )
    call._bounds()
    return call


def test_an_estimated_completion_never_exceeds_max_tokens_times_n():
    call = _call("chat", {"messages": MESSAGES, "max_tokens": 10, "n": 2})
    assert call.completion_cap == 20
    # A stream cut before its usage, after 10 KB of text: 2,500 tokens at 4 bytes each.
    assert call.estimated_usage(10_000).completion_tokens == 20
    assert call.estimated_usage(20).completion_tokens == 5  # below the cap: the estimate


def test_without_max_tokens_the_estimate_is_capped_by_the_models_output_cap():
    call = _call("chat", {"messages": MESSAGES}, max_output=300)
    assert call.estimated_usage(10_000).completion_tokens == 300
    capped = _call("chat", {"messages": MESSAGES, "max_tokens": 5_000}, max_output=300)
    assert capped.estimated_usage(10_000).completion_tokens == 300


def test_n_counts_only_on_chat_completions():
    call = _call("messages", {"messages": MESSAGES, "max_tokens": 10, "n": 3})
    assert call.completion_cap == 10


def test_an_estimated_prompt_never_exceeds_the_prompt_bound():
    body = {"messages": [{"role": "user", "content": "x" * 40_000}]}
    call = _call("chat", body, context=1_000)
    assert call.prompt_bound == 1_000
    assert estimate.prompt_estimate(body) > 1_000
    assert call.estimated_usage(0).prompt_tokens == 1_000
    # The provider's own prompt count, when it sent one, is charged as it is.
    assert call.estimated_usage(0, prompt_tokens=5_000).prompt_tokens == 5_000


def test_an_embedding_estimate_stays_within_the_token_array_it_was_given():
    body = {"input": [123456, 234567, 345678]}  # 3 tokens, 18 bytes of digits
    call = _call("embeddings", body, output=Decimal("0"))
    assert call.prompt_bound == 3
    usage = call.estimated_usage(0)
    assert (usage.prompt_tokens, usage.completion_tokens) == (3, 0)


def test_the_worst_case_of_n_choices_is_rounded_once_and_covers_their_capture():
    call = _call("chat", {"messages": MESSAGES, "max_tokens": 1, "n": 3}, output=Decimal("0.0035"))
    call.price.input_per_mtok = Decimal("0")
    # Each choice alone costs 0.0000000035: rounded per choice that is 0; three are 0.00000001.
    assert call._worst_case() == Decimal("0.00000001")
    assert cost_of(call.price, Usage(completion_tokens=3)) == call._worst_case()


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(max_size=300),
    messages=st.integers(min_value=1, max_value=5),
    max_tokens=st.none() | st.integers(min_value=1, max_value=5_000),
    n=st.integers(min_value=1, max_value=8),
    relayed=st.integers(min_value=0, max_value=200_000),
    rates=st.tuples(*[st.decimals(min_value=0, max_value=100, places=6)] * 4),
    context=st.integers(min_value=1, max_value=200_000),
)
def test_an_estimate_is_never_charged_beyond_the_hold(
    text, messages, max_tokens, n, relayed, rates, context
):
    body = {"messages": [{"role": "user", "content": text}] * messages, "n": n}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    inp, out, cached, write = rates
    call = _call(
        "chat", body, input=inp, output=out, cached=cached, cache_write=write, context=context
    )
    usage = call.estimated_usage(relayed)
    assert usage.completion_tokens <= (max_tokens or 1000) * n
    assert cost_of(call.price, usage) <= call._worst_case()
