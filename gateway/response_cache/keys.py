"""The cache key: an exact match on the normalised request.

What makes two requests the same: the endpoint, whether the reply is streamed, the target that
serves the model, and every field of the body that can change the answer (model, messages,
system, tools, tool_choice, sampling parameters, max tokens, stop, seed, response format, ...),
compared as canonical JSON (key order and spacing do not matter; values do). Left out: what only
says who asks or how the reply is delivered (`user`, `metadata`, `stream_options`, ...). A field
not listed here counts: an unknown parameter can only turn a hit into a miss, never serve an
answer to a different question.

Never in the key: the caller's API key. The end user only with `scope: user`. The namespace
(the group, or the organization when it shares entries) keeps scopes apart; the organization id
prefixes every store key, so no organization ever reads another's entries.
"""

import hashlib
import json

from gateway.response_cache.rules import CacheRule, Scope

# Body fields that do not change the answer.
IGNORED_FIELDS = frozenset(
    {
        "user",  # OpenAI: the end user (attribution only)
        "metadata",  # Anthropic: metadata.user_id; OpenAI: stored-completion tags
        "stream",  # part of the key on its own (a stream and a JSON reply are stored apart)
        "stream_options",  # include_usage: the stored stream keeps its usage chunk
        "store",
        "service_tier",
        "safety_identifier",
        "prompt_cache_key",
    }
)


def cache_key(
    rule: CacheRule,
    *,
    endpoint: str,
    stream: bool,
    target_id: str,
    body: dict,
    user: str,
) -> str:
    """The entry's name in the store: `<organization>:<sha256>`."""
    request = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    scope = [rule.namespace, user] if rule.scope == Scope.USER else [rule.namespace]
    text = json.dumps(
        [scope, endpoint, stream, target_id, request],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    # surrogatepass: the body was checked, but not every string an image part may hold.
    digest = hashlib.sha256(text.encode(errors="surrogatepass")).hexdigest()
    return f"{rule.organization_id}:{digest}"
