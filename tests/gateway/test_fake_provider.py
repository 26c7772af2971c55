"""The fake provider's own rules that the gateway's tests and the demo rely on."""

import httpx

from gateway.fake_text import IMAGE_TOKENS, fake_options, prompt_tokens_of


def test_option_names_take_hyphens_or_underscores():
    headers = {"x-fake-chunk-delay": "200", "X-Fake-Cache-Write": "4", "x-fake-cached": "2"}
    model, options = fake_options(headers, "fake-chat+chunk-delay=5+tokens=3")
    assert model == "fake-chat"
    assert options == {"chunk_delay": "200", "cache_write": "4", "cached": "2", "tokens": "3"}


def test_an_image_costs_a_fixed_number_of_tokens_not_its_base64_text():
    text = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 40_000}}
    with_image = [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]
    assert prompt_tokens_of(with_image) == prompt_tokens_of(text) + IMAGE_TOKENS


def test_a_token_array_is_one_embedding_input(fake_provider):
    r = httpx.post(
        f"{fake_provider}/v1/embeddings", json={"model": "fake-embed", "input": [5, 6, 7]}
    )
    assert r.status_code == 200
    assert len(r.json()["data"]) == 1
    assert r.json()["usage"]["prompt_tokens"] == 3
