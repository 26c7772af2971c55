"""What the gateway accepts in a request body, checked before anything is held or called.

Everything the request path computes from the body (the hold estimate, the prompt fingerprint,
the route, the end user, the Anthropic translation, the usage event's fields) must be computable
for any body that passes here, so a crafted body is a 400 before the hold, never a crash after
the provider answered (an answered call that could not be captured). The rules:

- **Encoding**: strict UTF-8 JSON; no `NaN`/`Infinity` literals and no number too large for a
  float (`1e400`). No lone UTF-16 surrogates (`"\\ud800"` escapes, which no UTF-8 text can
  hold) in what the gateway reads as text: the stored ids here, and the prompt and embedding
  input, whose every string the hold's estimate encodes anyway (gateway/proxy.py turns its
  UnicodeEncodeError into `lone_surrogate()`, the same 400). Elsewhere they are relayed as sent.
- **Depth**: arrays and objects nested at most `MAX_DEPTH` levels. The code that reads the body
  after the parser recurses (the prompt fingerprint failed at 440 levels, a 1 KB body) and so
  does the parser itself (about 1,000 levels, a 2 KB body); 64 is far beyond any real request.
- **Fields the gateway reads** (`body_validate`): their types and ranges (`INTEGER_RULES`,
  `NUMBER_RULES`; the table in docs/gateway.md). Strings stored on the usage event (`model`,
  `user`, `metadata.user_id`) have no control characters (PostgreSQL cannot store NUL).

Cost: one iterative walk that looks at each array item and object value once (strings are not
read: the cost is per item, whatever the text's length) and a few dictionary lookups.
"""

import json
import math
import re

from gateway.errors import GatewayError, bad_request

MAX_DEPTH = 64
MAX_N = 128  # OpenAI's limit on `n`
MAX_TOKENS = 2**31 - 1  # any real output cap is far below; the hold clamps to the model's

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


class _BadNumber(ValueError):
    pass


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _BadNumber(text)
    return value


def _constant(name: str):
    raise _BadNumber(name)


# One decoder for the process (json.loads builds a new one per call when given hooks).
_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_constant)


def _invalid_json(message: str) -> GatewayError:
    return bad_request(message, code="invalid_json")


def body_parse(raw: bytes) -> dict:
    """The request body as a JSON object, or GatewayError 400 (`invalid_json`)."""
    try:
        text = raw.decode()  # strict: encoded surrogates and stray bytes are refused
    except UnicodeDecodeError:
        raise _invalid_json("The request body is not valid UTF-8.") from None
    try:
        body = _DECODER.decode(text)
    except _BadNumber as exc:
        raise _invalid_json(
            f"Numbers must be finite JSON numbers within float range (got {str(exc)[:40]})."
        ) from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        raise _invalid_json("We could not parse the JSON body of your request.") from None
    if not isinstance(body, dict):
        raise _invalid_json("The request body must be a JSON object.")
    _check_depth(body)
    return body


def _too_deep() -> GatewayError:
    return _invalid_json(f"The JSON body is nested too deeply (at most {MAX_DEPTH} levels).")


def _check_depth(body: dict) -> None:
    """Every array and object at most MAX_DEPTH levels deep. Iterative, so a body that is too
    deep cannot overflow the stack here."""
    stack = [(body, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        depth += 1
        for item in value.values() if type(value) is dict else value:
            kind = type(item)
            if kind is dict or kind is list:
                push((item, depth))


def lone_surrogate() -> GatewayError:
    return _invalid_json(
        "The JSON body contains a lone UTF-16 surrogate (e.g. \\ud800), which is not text."
    )


# --- the fields the gateway reads ---------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(name: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(
            f"'{name}' must be an integer from {low} to {high:,}.", code="invalid_value", param=name
        )


def _number(name: str, value, low: float, high: float) -> None:
    if not _is_number(value) or not low <= value <= high:
        raise bad_request(
            f"'{name}' must be a number from {low:g} to {high:g}.", code="invalid_value", param=name
        )


def _identifier(name: str, value, *, required: bool = False) -> None:
    """A string stored on the usage event: no control characters (PostgreSQL cannot store NUL;
    the others only garble the admin and the exports) and no lone surrogates (not UTF-8).
    Longer than the column is cut there."""
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value):
        missing = name == "model" and not value
        raise bad_request(
            "you must provide a model parameter" if missing else f"'{name}' must be a string.",
            code="missing_model" if missing else "invalid_type",
            param=name,
        )
    if _UNSTORABLE.search(value):
        raise bad_request(
            f"'{name}' must be text without control characters.", code="invalid_value", param=name
        )


def _typed(body: dict, name: str, types, label: str) -> None:
    value = body.get(name)
    if value is not None and not isinstance(value, types):
        raise bad_request(f"'{name}' must be {label}.", code="invalid_type", param=name)


# (field, low, high): numbers the gateway relays or reads; the loosest range of the two APIs.
NUMBER_RULES = (
    ("temperature", 0, 2),
    ("top_p", 0, 1),
    ("presence_penalty", -2, 2),
    ("frequency_penalty", -2, 2),
)
INTEGER_RULES = (
    ("max_tokens", 1, MAX_TOKENS),
    ("max_completion_tokens", 1, MAX_TOKENS),
    ("n", 1, MAX_N),
    ("top_k", 0, MAX_TOKENS),
)


def body_validate(endpoint: str, body: dict) -> None:
    """GatewayError 400 unless `body` (parsed by body_parse) has what `endpoint` needs, in
    types and ranges the request path can compute with. Reads only the top-level fields."""
    _identifier("model", body.get("model"), required=True)
    if endpoint == "embeddings":
        _check_input(body.get("input"))
    else:
        _check_messages(body.get("messages"))
    for name, low, high in INTEGER_RULES:
        value = body.get(name)
        if value is not None:
            _integer(name, value, low, high)
    for name, low, high in NUMBER_RULES:
        value = body.get(name)
        if value is not None:
            _number(name, value, low, high)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise bad_request("'stream' must be a boolean.", code="invalid_type", param="stream")
    _typed(body, "stream_options", dict, "an object")
    _typed(body, "tools", list, "an array")
    _typed(body, "functions", list, "an array")
    _typed(body, "system", str | list, "a string or an array of content blocks")
    _identifier("user", body.get("user"))
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise bad_request(
                "'metadata' must be an object.", code="invalid_type", param="metadata"
            )
        _identifier("metadata.user_id", metadata.get("user_id"))


def _check_messages(messages) -> None:
    if not isinstance(messages, list) or not messages:
        raise bad_request(
            "'messages' is a required property.",
            code="missing_required_parameter",
            param="messages",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(
                f"'messages[{index}]' must be an object.", code="invalid_type", param="messages"
            )
        role, content = message.get("role"), message.get("content")
        if role is not None and not isinstance(role, str):
            raise bad_request(
                f"'messages[{index}].role' must be a string.", code="invalid_type", param="messages"
            )
        if content is not None and not isinstance(content, str | list):
            raise bad_request(
                f"'messages[{index}].content' must be a string or an array of content parts.",
                code="invalid_type",
                param="messages",
            )


def _check_input(value) -> None:
    """A string, or a non-empty array of strings, of token ids, or of arrays of token ids."""
    ok = (isinstance(value, str) and bool(value)) or (
        isinstance(value, list)
        and bool(value)
        and (
            all(isinstance(item, str) for item in value)
            or all(_token(item) for item in value)
            or all(isinstance(item, list) and item and all(map(_token, item)) for item in value)
        )
    )
    if not ok:
        if value is None or value == [] or value == "":
            raise bad_request(
                "'input' is a required property.", code="missing_required_parameter", param="input"
            )
        raise bad_request(
            "'input' must be a string, or an array of strings, of token ids or of arrays of "
            "token ids.",
            code="invalid_type",
            param="input",
        )


def _token(item) -> bool:
    return isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= MAX_TOKENS


def storable(text: str, limit: int) -> str:
    """A provider-supplied string (the model it served, its error code) as the usage event can
    store it: control characters and lone surrogates removed, cut to the column's `limit`.
    The provider's reply is not validated like a request; this keeps it from failing a capture."""
    text = str(text or "")
    if not text.isascii() or _CONTROL.search(text):
        text = _UNSTORABLE.sub("", text)
    return text[:limit]
