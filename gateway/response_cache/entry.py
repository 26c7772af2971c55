"""A stored reply: the bytes the client received, and what its usage event needs.

A JSON reply is kept whole. A stream is kept as its SSE events, exactly as relayed, with the
usage-only chunk of an OpenAI-format stream always included (the gateway asks the provider for
it): a hit serves it only to a client that asked for it (`stream_options.include_usage`), as
the provider would have. The gateway's own closing comment (request id, cost) is not stored: a
hit gets its own.

Encoding: `KTC1`, a 4-byte header length, the header as JSON, then the body. Anything else
decodes to None (treated as a miss), so an entry written by another version is never served.
"""

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.pricing import Usage

MAGIC = b"KTC1"
_LENGTH = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Entry:
    content_type: str
    usage: Usage
    usage_source: str
    model_served: str
    body: bytes  # the JSON reply, or the stream's events one after the other
    stream: bool = False
    events: tuple = ()  # the length of each stream event, in order
    usage_event: int = -1  # the index of the usage-only event (-1: none)

    def stream_events(self, *, include_usage: bool) -> Iterator[bytes]:
        start = 0
        for index, length in enumerate(self.events):
            if include_usage or index != self.usage_event:
                yield self.body[start : start + length]
            start += length


def entry_encode(entry: Entry) -> bytes:
    usage = entry.usage
    header = json.dumps(
        {
            "ct": entry.content_type,
            "u": [
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
                usage.cache_write_tokens,
            ],
            "src": entry.usage_source,
            "m": entry.model_served,
            "s": entry.stream,
            "ev": list(entry.events),
            "ue": entry.usage_event,
        },
        separators=(",", ":"),
    ).encode()
    return MAGIC + _LENGTH.pack(len(header)) + header + entry.body


def entry_decode(blob: bytes | None) -> Entry | None:
    if not blob or not blob.startswith(MAGIC):
        return None
    try:
        (length,) = _LENGTH.unpack_from(blob, len(MAGIC))
        start = len(MAGIC) + _LENGTH.size
        header = json.loads(blob[start : start + length])
        body = blob[start + length :]
        events = tuple(int(n) for n in header["ev"])
        if header["s"] and sum(events) != len(body):
            return None
        return Entry(
            content_type=str(header["ct"]),
            usage=Usage(*(int(n) for n in header["u"])),
            usage_source=str(header["src"]),
            model_served=str(header["m"]),
            body=bytes(body),
            stream=bool(header["s"]),
            events=events,
            usage_event=int(header["ue"]),
        )
    except (ValueError, KeyError, TypeError, struct.error):
        return None


def usage_only_chunk(event: bytes) -> bool:
    """An OpenAI-format stream's usage chunk: `data: {..., "choices": [], "usage": {...}}`."""
    if b'"usage"' not in event or not event.startswith(b"data:"):
        return False
    try:
        chunk = json.loads(event[5:])
    except ValueError:
        return False
    return isinstance(chunk, dict) and not chunk.get("choices") and bool(chunk.get("usage"))
