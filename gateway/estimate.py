"""Token counts without a tokenizer: an upper bound for holds, a fair guess for cut streams.

Upper bound (what a hold reserves). Every BPE tokenizer the supported providers use maps each
token to at least one byte of UTF-8 text, so the number of tokens in a text is at most its UTF-8
byte count. The bound is therefore: the UTF-8 bytes of every string in the prompt (message
contents, names, tool definitions and calls, the system prompt), plus `MESSAGE_OVERHEAD` tokens
per message and `REPLY_PRIMING` for the reply, plus `IMAGE_TOKENS` per image part (images are
priced by size, not bytes; base64 data is not counted as text). A prompt cannot be longer than
the model's context window (the provider refuses it, unbilled), so the bound is also capped at
`Price.context_window`. It is deliberately pessimistic: about 4x a real count for English.

Estimate (what a stream cut before its usage is charged): about 4 bytes per token, at least one.
"""

import hashlib
import json
import re

MESSAGE_OVERHEAD = 8
REPLY_PRIMING = 8
IMAGE_TOKENS = 2_000
BYTES_PER_TOKEN_ESTIMATE = 4
_IMAGE_TYPES = {"image_url", "image", "input_image", "document"}
# Keys whose string values are markers, not text the model reads as tokens of their own.
_SKIPPED_KEYS = {"type", "cache_control", "detail"}
_SPACES = re.compile(r"\s+")


def _bytes_and_images(value) -> tuple[int, int]:
    """UTF-8 bytes of all strings in `value` and the number of image/document parts."""
    if isinstance(value, str):
        return len(value.encode()), 0
    if isinstance(value, list):
        total = images = 0
        for item in value:
            b, i = _bytes_and_images(item)
            total += b
            images += i
        return total, images
    if isinstance(value, dict):
        if value.get("type") in _IMAGE_TYPES:
            return 0, 1
        total = images = 0
        for key, item in value.items():
            if key in _SKIPPED_KEYS:
                continue
            b, i = _bytes_and_images(item)
            total += b + len(key)
            images += i
        return total, images
    if value is None or isinstance(value, bool):
        return 0, 0
    return len(str(value)), 0


def prompt_upper_bound(body: dict, *, context_window: int | None = None) -> int:
    """The most input tokens a chat (OpenAI) or messages (Anthropic) body can be billed for."""
    messages = body.get("messages") or []
    parts = [messages, body.get("system"), body.get("tools"), body.get("functions")]
    text_bytes, images = _bytes_and_images(parts)
    count = len(messages) if isinstance(messages, list) else 1
    bound = text_bytes + images * IMAGE_TOKENS + count * MESSAGE_OVERHEAD + REPLY_PRIMING
    return min(bound, context_window) if context_window else bound


def embedding_upper_bound(body: dict, *, context_window: int | None = None) -> int:
    """Input tokens of an embeddings body: bytes of each string, length of each token array."""
    items = body.get("input")
    items = items if isinstance(items, list) else [items]
    # A list of ints is one pre-tokenised input; a list of lists is several.
    if items and all(isinstance(i, int) for i in items):
        return len(items)
    total = 0
    for item in items:
        if isinstance(item, list):
            total += len(item)
        else:
            total += _bytes_and_images(item)[0] + 1
    return total


def estimate_tokens(text_bytes: int) -> int:
    """A typical token count for `text_bytes` of text; never zero."""
    return max(1, -(-text_bytes // BYTES_PER_TOKEN_ESTIMATE))


def prompt_estimate(body: dict) -> int:
    """A typical (not worst-case) prompt token count, for usage the provider never reported."""
    messages = body.get("messages")
    if messages is None and "input" in body:
        return estimate_tokens(_bytes_and_images(body.get("input"))[0])
    text_bytes, images = _bytes_and_images([messages, body.get("system"), body.get("tools")])
    count = len(messages) if isinstance(messages, list) else 1
    return estimate_tokens(text_bytes) + images * IMAGE_TOKENS // 4 + 4 * count + 3


def prompt_fingerprint(body: dict) -> str:
    """sha256 of the normalised prompt (roles and texts, whitespace collapsed, case folded).

    Two requests with the same conversation get the same fingerprint whatever their sampling
    parameters, so repeated prompts (cacheable work) can be counted. The text itself is never
    stored."""
    parts = []
    system = body.get("system")
    if system:
        parts.append(("system", _normalised(system)))
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                parts.append((str(message.get("role", "")), _normalised(message.get("content"))))
    elif "input" in body:
        parts.append(("input", _normalised(body.get("input"))))
    # surrogatepass: the prompt's text was checked, but not what an image part holds.
    text = json.dumps(parts, ensure_ascii=False).encode(errors="surrogatepass")
    return hashlib.sha256(text).hexdigest()


def _normalised(value) -> str:
    if isinstance(value, str):
        return _SPACES.sub(" ", value).strip().casefold()
    if isinstance(value, list):
        return " ".join(_normalised(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_normalised(v) for k, v in value.items() if k not in _SKIPPED_KEYS)
    return "" if value is None else str(value)
