"""Anthropic Messages in front of an OpenAI-compatible target (`/v1/messages` → chat
completions): the request, the reply, the stream and errors, translated.

Covered: system prompts, text and image content, tools and tool results, stop sequences,
sampling parameters, `metadata.user_id`, and text streams (tool calls in streams are sent as
whole `tool_use` blocks when they complete).
"""

import json

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _str(value) -> str:
    # Fields the gateway validated only as far as it reads them: a text that is not a string is
    # no text (the provider would refuse the request, unbilled, rather than the gateway crash).
    return value if isinstance(value, str) else ""


def _text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_str(b.get("text")) for b in content if isinstance(b, dict))
    return ""


def _image(block: dict) -> dict:
    source = block.get("source")
    source = source if isinstance(source, dict) else {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    else:
        url = source.get("url", "")
    return {"type": "image_url", "image_url": {"url": url}}


def _message(message: dict) -> list[dict]:
    role, content = message.get("role", "user"), message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    parts, calls, results = [], [], []
    for block in content or ():
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": _str(block.get("text"))})
        elif kind == "image":
            parts.append(_image(block))
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id", ""),
                    "type": "function",
                    "function": {
                        "name": block.get("name", ""),
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
        elif kind == "tool_result":
            results.append(
                {
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id", ""),
                    "content": _text(block.get("content")),
                }
            )
    out = list(results)
    if role == "assistant":
        text = "".join(p.get("text", "") for p in parts if p["type"] == "text")
        reply = {"role": "assistant", "content": text or None}
        if calls:
            reply["tool_calls"] = calls
        out.append(reply)
    elif parts:
        out.append({"role": role, "content": parts})
    return out


def request_to_openai(body: dict) -> dict:
    """An Anthropic Messages request as an OpenAI chat completions request."""
    messages = []
    system = _text(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            messages.extend(_message(message))
    out = {"model": body.get("model"), "messages": messages}
    if body.get("max_tokens") is not None:
        out["max_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p", "stream"):
        if body.get(name) is not None:
            out[name] = body[name]
    if body.get("stop_sequences"):
        out["stop"] = body["stop_sequences"]
    user = (body.get("metadata") or {}).get("user_id")
    if user:
        out["user"] = user
    if body.get("tools"):
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    "description": t.get("description", ""),
                    "parameters": t.get("input_schema") or {"type": "object"},
                },
            }
            for t in body["tools"]
            if isinstance(t, dict)
        ]
    if body.get("stream"):
        out["stream_options"] = {"include_usage": True}
    return out


def usage_to_anthropic(usage) -> dict:
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    return {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens,
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
    }


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def reply_to_anthropic(data: dict, usage, request_id: str) -> dict:
    """An OpenAI chat completion as an Anthropic message. The call is already charged when this
    runs, so an odd reply (a provider's, not validated) must not raise."""
    choices = data.get("choices")
    choice = _dict(choices[0] if isinstance(choices, list) and choices else None)
    message = _dict(choice.get("message"))
    content = []
    if message.get("content"):
        content.append({"type": "text", "text": _str(message["content"])})
    tool_calls = message.get("tool_calls")
    for call in tool_calls if isinstance(tool_calls, list) else ():
        call = _dict(call)
        function = _dict(call.get("function"))
        try:
            arguments = json.loads(_str(function.get("arguments")) or "{}")
        except (ValueError, RecursionError):
            arguments = {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id", ""),
                "name": function.get("name", ""),
                "input": arguments,
            }
        )
    return {
        "id": f"msg_{request_id}",
        "type": "message",
        "role": "assistant",
        "model": data.get("model", ""),
        "content": content,
        "stop_reason": STOP_REASONS.get(_str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": usage_to_anthropic(usage),
    }


def error_to_anthropic(status: int, data) -> dict:
    from gateway.errors import ANTHROPIC_TYPES

    message = ""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        message = str(data["error"].get("message") or "")
    kind = ANTHROPIC_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message or f"provider error {status}"},
    }


def _sse(event: str, payload: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


class AnthropicStreamWriter:
    """Turns OpenAI chat completion chunks into the Anthropic Messages event sequence."""

    def __init__(self, request_id: str, model: str):
        self.request_id = request_id
        self.model = model
        self.started = False
        self.text_open = False
        self.index = 0
        self.finish_reason = None
        self.calls: dict[int, dict] = {}

    def _start(self, model: str) -> bytes:
        self.started = True
        message = {
            "id": f"msg_{self.request_id}",
            "type": "message",
            "role": "assistant",
            "model": model or self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _sse("message_start", {"type": "message_start", "message": message})

    def feed(self, chunk: dict) -> bytes:
        out = b""
        if not self.started:
            out += self._start(str(chunk.get("model") or ""))
        for choice in chunk.get("choices") or ():
            delta = (choice or {}).get("delta") or {}
            text = delta.get("content")
            if text:
                if not self.text_open:
                    self.text_open = True
                    out += _sse(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": self.index,
                            "content_block": {"type": "text", "text": ""},
                        },
                    )
                out += _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": self.index,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
            for call in delta.get("tool_calls") or ():
                slot = self.calls.setdefault(
                    call.get("index", 0), {"id": "", "name": "", "arguments": ""}
                )
                function = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] = function.get("name") or slot["name"]
                slot["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return out

    def finish(self, usage) -> bytes:
        out = b"" if self.started else self._start("")
        if self.text_open:
            out += _sse("content_block_stop", {"type": "content_block_stop", "index": self.index})
            self.index += 1
        for slot in self.calls.values():
            try:
                arguments = json.loads(slot["arguments"] or "{}")
            except ValueError:
                arguments = {}
            block = {"type": "tool_use", "id": slot["id"], "name": slot["name"], "input": {}}
            out += _sse(
                "content_block_start",
                {"type": "content_block_start", "index": self.index, "content_block": block},
            )
            out += _sse(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": self.index,
                    "delta": {"type": "input_json_delta", "partial_json": json.dumps(arguments)},
                },
            )
            out += _sse("content_block_stop", {"type": "content_block_stop", "index": self.index})
            self.index += 1
        out += _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {
                    "stop_reason": STOP_REASONS.get(self.finish_reason, "end_turn"),
                    "stop_sequence": None,
                },
                "usage": usage_to_anthropic(usage),
            },
        )
        out += _sse("message_stop", {"type": "message_stop"})
        return out
