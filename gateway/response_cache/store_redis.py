"""The production store: Redis (KT_RESPONSE_CACHE_URL, by default the REDIS_URL every gateway
process shares), bounded per organization and evicting.

Each operation is one round trip (a Lua script runs atomically in Redis):
- `lookup`: the entry (and its remaining TTL), else (on request) the fill lock `SET NX PX` for
  this caller; an entry this process read or wrote lately is answered from its memory without
  the round trip (gateway/response_cache/recent.py);
- `poll`: the entry (and its remaining TTL), else whether somebody still holds the fill lock;
- `put`: the entry with its TTL, its size booked in the organization's index, entries that
  expired forgotten, and while the organization is above KT_RESPONSE_CACHE_MAX_BYTES the entries
  closest to expiry evicted (their digests returned); the caller's fill lock released;
- `release`: the fill lock, only if it is still the caller's (token compare).

Keys: `kt:rc:{o<organization>}:e:<digest>` (entry), `:l:<digest>` (fill lock), `:idx` (sorted
set of digests by expiry, ms), `:sz` (hash digest -> bytes), `:bytes` (the sum). The braces keep
an organization's keys in one cluster slot. The bound is the gateway's own, so a shared Redis
(the broker, the rate limits) never has to evict anything else; a dedicated Redis may also run
with `maxmemory-policy allkeys-lru`, and the bookkeeping corrects itself as entries expire.
"""

import redis
from django.conf import settings

from gateway.response_cache.recent import RecentEntries

_LOOKUP = """
local v = redis.call('GET', KEYS[1])
if v then return {v, redis.call('PTTL', KEYS[1])} end
if ARGV[3] == '1' and redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""

_POLL = """
local v = redis.call('GET', KEYS[1])
if v then return {v, redis.call('PTTL', KEYS[1])} end
return redis.call('EXISTS', KEYS[2])
"""

_PUT = """
local entry, lock, idx, sizes, bytes = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local value, ttl, token, limit, digest, prefix = ARGV[1], tonumber(ARGV[2]), ARGV[3],
    tonumber(ARGV[4]), ARGV[5], ARGV[6]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function forget(d)
    local size = redis.call('HGET', sizes, d)
    redis.call('HDEL', sizes, d)
    redis.call('ZREM', idx, d)
    if size then return redis.call('DECRBY', bytes, size) end
    return tonumber(redis.call('GET', bytes) or '0')
end
forget(digest)
redis.call('SET', entry, value, 'PX', ttl)
redis.call('HSET', sizes, digest, string.len(value))
redis.call('ZADD', idx, now + ttl, digest)
local total = redis.call('INCRBY', bytes, string.len(value))
for _, d in ipairs(redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'LIMIT', 0, 100)) do
    total = forget(d)
end
local evicted = {}
while total > limit do
    local first = redis.call('ZRANGE', idx, 0, 0)
    if #first == 0 then break end
    total = forget(first[1])
    redis.call('DEL', prefix .. first[1])
    table.insert(evicted, first[1])
end
if token ~= '' and redis.call('GET', lock) == token then redis.call('DEL', lock) end
return evicted
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

ERRORS = (redis.RedisError, OSError)


def _keys(key: str) -> tuple[str, str]:
    organization, digest = key.split(":", 1)
    return f"kt:rc:{{o{organization}}}:", digest


class RedisStore:
    def __init__(self, url: str, *, timeout: float, max_bytes: int):
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        self.max_bytes = max_bytes
        self.recent = RecentEntries(
            seconds=settings.KT_RESPONSE_CACHE_LOCAL_SECONDS,
            max_bytes=settings.KT_RESPONSE_CACHE_LOCAL_MAX_BYTES,
        )
        self._lookup = self.client.register_script(_LOOKUP)
        self._poll = self.client.register_script(_POLL)
        self._put = self.client.register_script(_PUT)
        self._release = self.client.register_script(_RELEASE)

    def lookup(self, key: str, *, token: str, lock_ms: int, lock: bool) -> bytes | bool:
        """The entry's bytes; else True when this caller now holds the fill lock."""
        kept = self.recent.get(key)
        if kept is not None:
            return kept
        prefix, digest = _keys(key)
        found = self._lookup(
            keys=[f"{prefix}e:{digest}", f"{prefix}l:{digest}"],
            args=[token, lock_ms, "1" if lock else "0"],
        )
        return self._entry(key, found)

    def poll(self, key: str) -> bytes | bool:
        """The entry's bytes; else True while somebody holds the fill lock."""
        prefix, digest = _keys(key)
        found = self._poll(keys=[f"{prefix}e:{digest}", f"{prefix}l:{digest}"])
        return self._entry(key, found)

    def _entry(self, key: str, found) -> bytes | bool:
        """A script's answer: [entry, remaining TTL in ms] (the entry kept locally too), else
        the lock's 0 or 1."""
        if isinstance(found, list):
            value, ttl_ms = found
            self.recent.put(key, value, ttl_ms=ttl_ms)
            return value
        return found == 1

    def put(self, key: str, value: bytes, *, ttl_seconds: int, token: str = "") -> int:
        """Store the entry (and release the caller's fill lock); the number of entries evicted."""
        prefix, digest = _keys(key)
        evicted = self._put(
            keys=[
                f"{prefix}e:{digest}",
                f"{prefix}l:{digest}",
                f"{prefix}idx",
                f"{prefix}sz",
                f"{prefix}bytes",
            ],
            args=[value, ttl_seconds * 1000, token, self.max_bytes, digest, f"{prefix}e:"],
        )
        for gone in evicted:  # this process's copies of them go too (others' expire soon)
            self.recent.forget(f"{key.split(':', 1)[0]}:{gone.decode()}")
        self.recent.put(key, value, ttl_ms=ttl_seconds * 1000)
        return len(evicted)

    def release(self, key: str, token: str) -> None:
        prefix, digest = _keys(key)
        self._release(keys=[f"{prefix}l:{digest}"], args=[token])

    def stored_bytes(self, organization_id: int) -> int:
        """What the organization's entries take, as booked (tests, operators)."""
        return int(self.client.get(f"kt:rc:{{o{organization_id}}}:bytes") or 0)
