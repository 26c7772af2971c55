"""The two wire formats the gateway relays: usage normalisation and stream scanning.

`openai` is chat completions and embeddings (also spoken by Anthropic's compatibility endpoint,
vLLM, Ollama, OpenRouter, Azure OpenAI); `anthropic` is the Messages API. Usage is normalised to
`gateway.pricing.Usage`, where prompt tokens include cached and cache-write tokens.
"""

import json

from gateway.pricing import Usage

# A usage count is stored as a 32-bit integer; a provider reporting more (or a float beyond
# any integer) is capped here rather than failing the capture.
MAX_TOKENS = 2**31 - 1


def _int(value) -> int:
    try:
        return min(max(0, int(value or 0)), MAX_TOKENS)
    except (TypeError, ValueError, OverflowError):
        return 0


def openai_usage(usage) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    details = usage.get("prompt_tokens_details") or {}
    return Usage(
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        cached_tokens=_int(details.get("cached_tokens") if isinstance(details, dict) else 0),
    )


def anthropic_usage(usage) -> Usage | None:
    """Anthropic's `input_tokens` excludes cache reads and writes; ours includes them."""
    if not isinstance(usage, dict) or "input_tokens" not in usage:
        return None
    read = _int(usage.get("cache_read_input_tokens"))
    write = _int(usage.get("cache_creation_input_tokens"))
    return Usage(
        prompt_tokens=_int(usage.get("input_tokens")) + read + write,
        completion_tokens=_int(usage.get("output_tokens")),
        cached_tokens=read,
        cache_write_tokens=write,
    )


def usage_from_json(fmt: str, data) -> Usage | None:
    if not isinstance(data, dict):
        return None
    if fmt == "anthropic":
        return anthropic_usage(data.get("usage"))
    return openai_usage(data.get("usage"))


def text_bytes_of_json(fmt: str, data) -> int:
    """Bytes of generated text in a non-stream reply (for estimating missing usage)."""
    if not isinstance(data, dict):
        return 0
    total = 0
    if fmt == "anthropic":
        for block in data.get("content") or ():
            if isinstance(block, dict):
                total += len(str(block.get("text") or block.get("input") or "").encode())
        return total
    for choice in data.get("choices") or ():
        message = (choice or {}).get("message") or {}
        total += len(str(message.get("content") or "").encode())
        for call in message.get("tool_calls") or ():
            total += len(str(((call or {}).get("function") or {}).get("arguments") or "").encode())
    return total


class StreamScanner:
    """Reads an SSE stream event by event: what to relay, the usage, how much text went by.

    `feed(line)` takes one line (without its newline) and returns the bytes to relay when the
    line completes an event, else None. With `strip_usage`, the usage-only chunk that the gateway
    asked an OpenAI-format upstream for (and the client did not) is swallowed.
    """

    def __init__(self, fmt: str, *, strip_usage: bool = False):
        self.fmt = fmt
        self.strip_usage = strip_usage
        self.usage: Usage | None = None
        self.usage_complete = False
        self.model = ""
        self.text_bytes = 0
        self.finished = False  # saw [DONE] / message_stop
        self.error: dict | None = None  # an error event inside the stream
        self.last = None  # the last event's parsed data (a dict, or "[DONE]")
        self._lines: list[str] = []
        self._anthropic_usage: dict = {}

    def feed(self, line: str) -> bytes | None:
        if line:
            self._lines.append(line)
            return None
        if not self._lines:
            return None
        lines, self._lines = self._lines, []
        keep = self._scan(lines)
        return ("\n".join(lines) + "\n\n").encode() if keep else None

    def flush(self) -> bytes | None:
        """An event left without its terminating blank line when the stream ended."""
        return self.feed("") if self._lines else None

    def _scan(self, lines: list[str]) -> bool:
        data = "".join(line[5:].lstrip() for line in lines if line.startswith("data:"))
        self.last = None
        if not data:
            return True
        if data == "[DONE]":
            self.finished = True
            self.last = data
            return True
        try:
            payload = json.loads(data)
        except ValueError:
            return True
        if not isinstance(payload, dict):
            return True
        self.last = payload
        if self.fmt == "anthropic":
            return self._scan_anthropic(payload)
        return self._scan_openai(payload)

    def _scan_openai(self, chunk: dict) -> bool:
        if not self.model:
            self.model = str(chunk.get("model") or "")
        if "error" in chunk:
            self.error = chunk.get("error") if isinstance(chunk.get("error"), dict) else {}
        usage = openai_usage(chunk.get("usage"))
        choices = chunk.get("choices") or ()
        for choice in choices:
            delta = (choice or {}).get("delta") or {}
            content = delta.get("content")
            if content:
                self.text_bytes += len(content.encode())
            for call in delta.get("tool_calls") or ():
                args = ((call or {}).get("function") or {}).get("arguments")
                if args:
                    self.text_bytes += len(args.encode())
        if usage is not None:
            self.usage = usage
            self.usage_complete = True
            if self.strip_usage and not choices:
                return False
        return True

    def _scan_anthropic(self, event: dict) -> bool:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            text = delta.get("text") or delta.get("partial_json") or delta.get("thinking")
            if text:
                self.text_bytes += len(text.encode())
        elif kind == "message_start":
            message = event.get("message") or {}
            self.model = str(message.get("model") or "")
            self._merge(message.get("usage"))
        elif kind == "message_delta":
            usage = event.get("usage")
            if isinstance(usage, dict) and usage.get("output_tokens") is not None:
                self._merge(usage)
                self.usage_complete = "input_tokens" in self._anthropic_usage
        elif kind == "message_stop":
            self.finished = True
        elif kind == "error":
            self.error = event.get("error") if isinstance(event.get("error"), dict) else {}
        return True

    def _merge(self, usage):
        if isinstance(usage, dict):
            self._anthropic_usage.update({k: v for k, v in usage.items() if v is not None})
            self.usage = anthropic_usage(self._anthropic_usage)
