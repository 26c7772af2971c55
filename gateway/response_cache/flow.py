"""The response cache on the request path: `cache_begin` and `Fill.fill` are its hooks in
gateway/proxy.py.

For a group with the cache on (`GroupContext.cache`), after routing and before the hold:
- `x-kt-cache: bypass` or `Cache-Control: no-store`, a model in `excluded_models`, or a store
  that cannot be reached: the cache is not used (`x-kt-cache: bypass`);
- `Cache-Control: no-cache`: not looked up, but the fresh reply replaces the stored one;
- else the stored reply, or the single flight (gateway/response_cache/flight.py) decides who
  calls the provider. A hit is answered here (gateway/response_cache/hits.py); a miss goes on
  as any call and its reply is stored once it is complete: a JSON reply before it is returned,
  a stream as its last event goes out (`x-kt-cache: miss`).

Only complete, successful replies are stored (HTTP 200; a stream that reached its end without
an error event), no bigger than `max_entry_bytes`, for `ttl_seconds`.
"""

from gateway.response_cache.entry import Entry, entry_decode, entry_encode, usage_only_chunk
from gateway.response_cache.flight import Lead, flight_join
from gateway.response_cache.hits import hit_serve
from gateway.response_cache.keys import cache_key
from gateway.response_cache.store import StoreUnavailable
from gateway.streaming import release_connection

USE, REFRESH, BYPASS = "use", "refresh", "bypass"
CLOSING_COMMENT = b": x-kt-request-id="


def request_mode(request) -> str:
    meta = request.META
    if meta.get("HTTP_X_KT_CACHE", "").strip().lower() == "bypass":
        return BYPASS
    control = meta.get("HTTP_CACHE_CONTROL")
    if control:
        directives = {part.split("=", 1)[0].strip().lower() for part in control.split(",")}
        if "no-store" in directives:
            return BYPASS
        if "no-cache" in directives:
            return REFRESH
    return USE


def cache_begin(call):
    """The hit's response, or None: the call goes on (`call.cache` says what to store)."""
    rule = call.ctx.cache
    mode = request_mode(call.request)
    if mode == BYPASS or call.model in rule.excluded_models:
        call.cache = Fill("bypass")
        return None
    key = cache_key(
        rule,
        endpoint=call.endpoint,
        stream=call.stream,
        target_id=call.target.target_id,
        body=call.body,
        user=call.user,
    )
    if mode == REFRESH:
        lead = Lead(key)
    else:
        # Waiting for another request's reply may take as long as that call: no pooled
        # database connection is kept meanwhile (as before a provider call).
        release_connection()
        try:
            blob, lead = flight_join(key)
        except StoreUnavailable:
            call.cache = Fill("bypass")
            return None
        entry = entry_decode(blob)
        if entry is not None:
            return hit_serve(call, entry)
        if lead is None:  # an entry this version cannot read: the fresh reply replaces it
            lead = Lead(key)
    fill = call.cache = Fill("miss", rule=rule, lead=lead)
    if call.stream and call.fmt == "openai" and not call.translate:
        # Keep the usage chunk for the entry; the tee hides it from a client that did not ask.
        fill.find_usage, fill.hide_usage = True, call.strip_usage
        call.strip_usage = False
    return None


class Fill:
    """What the cache does with a call that was not a hit: its `x-kt-cache` status and, when
    it fills an entry, the Lead that stores it (and wakes the requests waiting for it)."""

    __slots__ = ("find_usage", "hide_usage", "lead", "rule", "status")

    def __init__(self, status: str, *, rule=None, lead: Lead | None = None):
        self.status, self.rule, self.lead = status, rule, lead
        self.find_usage = self.hide_usage = False

    def fill(self, call):
        """Make the call (the hold is placed) and store its reply; whatever ends the call
        without a reply to store releases the requests waiting for it."""
        try:
            response = call._call()
        except BaseException:
            self.abandon()
            raise
        return self.settle(call, response)

    def settle(self, call, response):
        """The call's response is ready: store a JSON reply (a stream stores itself, CacheTee)."""
        response["x-kt-cache"] = self.status
        if self.lead is not None and not response.streaming:
            blob = None
            if response.status_code == 200 and call.usage is not None:
                blob = self.encoded(
                    Entry(
                        content_type=response.get("Content-Type", "application/json"),
                        usage=call.usage,
                        usage_source=getattr(call, "usage_source", "none"),
                        model_served=call.model_served,
                        body=response.content,
                    )
                )
            self.complete(blob)
        return response

    def encoded(self, entry: Entry) -> bytes | None:
        blob = entry_encode(entry)
        return blob if len(blob) <= self.rule.max_entry_bytes else None

    def complete(self, blob: bytes | None) -> None:
        """Store `blob` (None: nothing) and release the waiters; once."""
        lead, self.lead = self.lead, None
        if lead is not None:
            lead.complete(blob, self.rule.ttl_seconds)

    def abandon(self) -> None:
        self.complete(None)

    def tee(self, call, relay):
        """The stream's body: `relay`, kept for the entry as it goes by."""
        return relay if self.lead is None else CacheTee(self, call, relay)


class CacheTee:
    """Relays a stream (gateway.streaming.Relay) and keeps its events; the entry is stored as
    the stream's last event goes out, only if the stream ended complete and without an error.
    `close()` (the server closes the body: done, or the client went away) closes the relay and
    releases the waiters if nothing was stored."""

    def __init__(self, fill: Fill, call, relay):
        self.fill, self.call, self.relay = fill, call, relay
        self.kept: list[bytes] = []
        self.size = 0
        self.usage_event = -1
        self.overflow = False
        self._events = self._run()

    def __iter__(self):
        return self._events

    def close(self):
        try:
            self._events.close()
        finally:
            try:
                self.relay.close()
            finally:
                self.fill.abandon()  # nothing once the entry was stored

    def _run(self):
        fill, scanner = self.fill, self.relay.scanner
        for chunk in self.relay:
            if chunk.startswith(CLOSING_COMMENT):  # this request's own: never stored
                fill.abandon()
                yield chunk
                continue
            show = True
            if fill.find_usage and usage_only_chunk(chunk):
                self.usage_event, show = len(self.kept), not fill.hide_usage
            self._keep(chunk)
            if scanner.finished and scanner.error is None and fill.lead is not None:
                fill.complete(self._entry())
            if show:
                yield chunk
        fill.abandon()

    def _keep(self, chunk: bytes) -> None:
        if self.overflow:
            return
        self.size += len(chunk)
        if self.size > self.fill.rule.max_entry_bytes:
            self.overflow, self.kept = True, []
            return
        self.kept.append(chunk)

    def _entry(self) -> bytes | None:
        call = self.call
        if self.overflow or call.usage is None:
            return None
        return self.fill.encoded(
            Entry(
                content_type="text/event-stream",
                usage=call.usage,
                usage_source=getattr(call, "usage_source", "none"),
                model_served=call.model_served,
                body=b"".join(self.kept),
                stream=True,
                events=tuple(len(chunk) for chunk in self.kept),
                usage_event=self.usage_event,
            )
        )
