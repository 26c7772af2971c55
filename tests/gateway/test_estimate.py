"""The hold's prompt upper bound and the estimates for missing usage (no database)."""

from gateway import estimate
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
