"""What the fake provider (gateway/fake_provider.py) says and counts: its options (headers or
`model+key=value`), the reply text derived from the prompt, and token counts a provider would
report (prompt ~ UTF-8 bytes / 4, IMAGE_TOKENS per image or document part, one completion token
per word)."""

import hashlib

WORDS = [
    "the",
    "budget",
    "owner",
    "reviews",
    "spend",
    "by",
    "model",
    "and",
    "provider",
    "while",
    "finance",
    "closes",
    "the",
    "month",
    "with",
    "a",
    "clean",
    "export",
    "every",
    "department",
    "sees",
    "its",
    "own",
    "wallet",
    "and",
    "the",
    "gateway",
    "records",
    "each",
    "request",
    "with",
    "tokens",
    "cost",
    "latency",
    "and",
    "attribution",
    "so",
    "chargeback",
    "becomes",
    "routine",
]
MAX_DEFAULT_WORDS = 48
EMBEDDING_DIMENSIONS = 8
# What an image costs: OpenAI's gpt-4o for a 1024 x 1024 image at high detail (85 + 4 x 170).
IMAGE_TOKENS = 765
_IMAGE_TYPES = {"image_url", "image", "input_image", "document"}


def fake_options(headers, model: str) -> tuple[str, dict]:
    """Split `model+key=value+...` and merge `x-fake-*` headers (headers win). Names are read
    with hyphens as underscores: `chunk-delay` and `chunk_delay` are the same option."""
    base, *parts = model.split("+")
    options = {}
    for part in parts:
        key, _, value = part.partition("=")
        options[key.strip().lower().replace("-", "_")] = value.strip()
    for key, value in headers.items():
        if key.lower().startswith("x-fake-"):
            options[key.lower()[len("x-fake-") :].replace("-", "_")] = value.strip()
    return base, options


def option_int(options: dict, name: str, default: int) -> int:
    try:
        return int(options.get(name, default))
    except (TypeError, ValueError):
        return default


def _texts(value) -> list[str]:
    """Every string inside a message content (strings, content-part lists, nested dicts), but
    not inside image or document parts."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    if isinstance(value, dict) and value.get("type") not in _IMAGE_TYPES:
        return [t for key, item in value.items() if key != "type" for t in _texts(item)]
    return []


def _images(value) -> int:
    """The image and document parts inside a message content."""
    if isinstance(value, list):
        return sum(_images(item) for item in value)
    if isinstance(value, dict):
        if value.get("type") in _IMAGE_TYPES:
            return 1
        return sum(_images(item) for item in value.values())
    return 0


def prompt_tokens_of(messages: list, system=None) -> int:
    text = "".join(_texts(messages)) + "".join(_texts(system))
    images = _images(messages) + _images(system)
    return max(1, len(text.encode()) // 4) + 4 * len(messages) + 3 + images * IMAGE_TOKENS


def reply_words(seed_text: str, count: int) -> list[str]:
    digest = hashlib.sha256(seed_text.encode()).digest()
    while len(digest) < count:
        digest += hashlib.sha256(digest).digest()
    return [WORDS[digest[i] % len(WORDS)] for i in range(count)]


def split_text(words: list[str], chunks: int) -> list[str]:
    """Words joined into `chunks` pieces whose concatenation is the whole reply."""
    chunks = max(1, min(chunks, len(words)))
    size, extra = divmod(len(words), chunks)
    pieces, start = [], 0
    for i in range(chunks):
        end = start + size + (1 if i < extra else 0)
        piece = " ".join(words[start:end])
        pieces.append(piece if i == 0 else " " + piece)
        start = end
    return pieces
