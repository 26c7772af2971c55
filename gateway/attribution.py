"""Who a request is for: end user and tags, from the body and the X-KT-* headers."""

MAX_TAGS = 20


def end_user(request, body: dict) -> str:
    """`X-KT-User` header, else the body's `user` (OpenAI) or `metadata.user_id` (Anthropic)."""
    user = request.META.get("HTTP_X_KT_USER", "")
    if not user:
        user = body.get("user") or ""
        metadata = body.get("metadata")
        if not user and isinstance(metadata, dict):
            user = metadata.get("user_id") or ""
    return str(user).strip()[:200]


def tags_of(request) -> dict:
    """`X-KT-Tags: app=kb,env=prod` as {"app": "kb", "env": "prod"}; malformed pairs skipped."""
    raw = request.META.get("HTTP_X_KT_TAGS", "")
    tags = {}
    for pair in raw.split(","):
        key, sep, value = pair.partition("=")
        key, value = key.strip()[:64], value.strip()[:200]
        if sep and key:
            tags[key] = value
        if len(tags) >= MAX_TAGS:
            break
    return tags
