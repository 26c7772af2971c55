"""Who a request is for: end user and tags, from the body and the X-KT-* headers.

Both are stored on the usage event, so both are refused (400) when they hold control
characters (PostgreSQL cannot store NUL); the body's fields were checked by gateway.validation.
"""

import re

from gateway.errors import bad_request

MAX_TAGS = 20
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _header(request, meta_key: str, name: str) -> str:
    value = request.META.get(meta_key, "")
    if value and _CONTROL.search(value):
        raise bad_request(
            f"The {name} header must not contain control characters.",
            code="invalid_value",
            param=name,
        )
    return value


def end_user(request, body: dict) -> str:
    """`X-KT-User` header, else the body's `user` (OpenAI) or `metadata.user_id` (Anthropic)."""
    user = _header(request, "HTTP_X_KT_USER", "X-KT-User")
    if not user:
        user = body.get("user") or ""
        metadata = body.get("metadata")
        if not user and isinstance(metadata, dict):
            user = metadata.get("user_id") or ""
    return str(user).strip()[:200]


def tags_of(request) -> dict:
    """`X-KT-Tags: app=kb,env=prod` as {"app": "kb", "env": "prod"}; malformed pairs skipped."""
    raw = _header(request, "HTTP_X_KT_TAGS", "X-KT-Tags")
    tags = {}
    for pair in raw.split(","):
        key, sep, value = pair.partition("=")
        key, value = key.strip()[:64], value.strip()[:200]
        if sep and key:
            tags[key] = value
        if len(tags) >= MAX_TAGS:
            break
    return tags
