"""The rate limiter's arithmetic, once in Lua for Redis (shared by every process) and once in
Python for a gateway without Redis (per process). Both implement the same three kinds of limit:

- `r`, requests per period: a token bucket of `capacity` requests refilled continuously at
  capacity/period per second. A request takes one; it is refused when less than one is left.
  So a limit of N a minute allows a burst of N and then one request every 60/N seconds: never
  the 2N a fixed window allows across its boundary.
- `t`, tokens per period: a bucket of `capacity` tokens refilled the same way. A request is
  admitted while the bucket is above zero; its tokens are taken when it is finished (the usage
  is not known before), so the bucket may go below zero, and the group waits until it refills.
- `p`, requests in flight: a set of request ids, each kept until its request ends (or
  `slot_seconds` after it started, should the process die first).

Admission checks every limit of a request and takes from them only when all admit it: a refused
request uses up nothing. A bucket is stored as what was used of it (decaying at the refill
rate), so a limit raised or lowered in the config applies at once.
"""

import math
import threading
import time

from gateway.store import lua

# KEYS: one per limit. ARGV: request id, slot seconds, then kind, capacity, period per limit.
# Returns the index (1-based) of the first limit that refused (0: admitted), the seconds until
# it would admit, and the level of each limit after the admission (as strings: Redis turns Lua
# numbers into integers).
ADMIT = lua("""
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local slot = tonumber(ARGV[2])
local levels, refused, wait = {}, 0, 0
for i = 1, #KEYS do
  local kind, cap, period = ARGV[i * 3], tonumber(ARGV[i * 3 + 1]), tonumber(ARGV[i * 3 + 2])
  local level, short = 0, 0
  if kind == 'p' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    level = cap - redis.call('ZCARD', KEYS[i])
    if level < 1 then short = 1 end
  else
    local rate = cap / period
    local state = redis.call('HMGET', KEYS[i], 'u', 't')
    level = cap
    if state[1] then
      level = cap - math.max(0, tonumber(state[1]) - (now - tonumber(state[2])) * rate)
    end
    if kind == 'r' and level < 1 then short = (1 - level) / rate end
    if kind == 't' and level <= 0 then short = (0.001 - level) / rate end
  end
  levels[i] = level
  if short > 0 and refused == 0 then refused, wait = i, short end
end
if refused == 0 then
  for i = 1, #KEYS do
    local kind, cap, period = ARGV[i * 3], tonumber(ARGV[i * 3 + 1]), tonumber(ARGV[i * 3 + 2])
    if kind == 'p' then
      redis.call('ZADD', KEYS[i], now + slot, ARGV[1])
      redis.call('PEXPIRE', KEYS[i], math.ceil(slot * 1000))
      levels[i] = levels[i] - 1
    elseif kind == 'r' then
      levels[i] = levels[i] - 1
      redis.call('HSET', KEYS[i], 'u', tostring(cap - levels[i]), 't', tostring(now))
      redis.call('PEXPIRE', KEYS[i], math.ceil((cap - levels[i]) * period / cap * 1000) + 1000)
    end
  end
end
local out = {refused, tostring(wait)}
for i = 1, #KEYS do out[#out + 1] = tostring(levels[i]) end
return out
""")

# KEYS: the request's token and in-flight limits. ARGV: request id, tokens, then kind, capacity,
# period per limit. Takes the tokens from each token bucket and frees the request's slots.
FINISH = lua("""
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local tokens = tonumber(ARGV[2])
for i = 1, #KEYS do
  local kind, cap, period = ARGV[i * 3], tonumber(ARGV[i * 3 + 1]), tonumber(ARGV[i * 3 + 2])
  if kind == 'p' then
    redis.call('ZREM', KEYS[i], ARGV[1])
  elseif tokens > 0 then
    local rate = cap / period
    local state = redis.call('HMGET', KEYS[i], 'u', 't')
    local used = 0
    if state[1] then
      used = math.max(0, tonumber(state[1]) - (now - tonumber(state[2])) * rate)
    end
    used = used + tokens
    redis.call('HSET', KEYS[i], 'u', tostring(used), 't', tostring(now))
    redis.call('PEXPIRE', KEYS[i], math.ceil(used / rate * 1000) + 1000)
  end
end
return 1
""")


class LocalBuckets:
    """The same limits in this process's memory (a gateway without Redis)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (used, at)
        self._slots: dict[str, dict[str, float]] = {}  # key -> {request id: until}

    def _level(self, key, cap, period, now) -> float:
        state = self._buckets.get(key)
        if state is None:
            return float(cap)
        return cap - max(0.0, state[0] - (now - state[1]) * cap / period)

    def admit(self, keys: list, args: list):
        request_id, slot = args[0], float(args[1])
        limits = [(args[2 + i * 3], args[3 + i * 3], args[4 + i * 3]) for i in range(len(keys))]
        now = time.time()
        with self._lock:
            levels, refused, wait = [], 0, 0.0
            for i, (key, (kind, cap, period)) in enumerate(zip(keys, limits, strict=True), 1):
                short = 0.0
                if kind == "p":
                    slots = self._slots.setdefault(key, {})
                    for rid in [r for r, until in slots.items() if until <= now]:
                        del slots[rid]
                    level = cap - len(slots)
                    short = 1.0 if level < 1 else 0.0
                else:
                    level = self._level(key, cap, period, now)
                    if kind == "r" and level < 1:
                        short = (1 - level) * period / cap
                    if kind == "t" and level <= 0:
                        short = (0.001 - level) * period / cap
                levels.append(level)
                if short > 0 and not refused:
                    refused, wait = i, short
            if not refused:
                for i, (key, (kind, _cap, _period)) in enumerate(zip(keys, limits, strict=True)):
                    if kind == "p":
                        self._slots[key][request_id] = now + slot
                        levels[i] -= 1
                    elif kind == "r":
                        levels[i] -= 1
                        self._buckets[key] = (limits[i][1] - levels[i], now)
        return [refused, str(wait), *(str(level) for level in levels)]

    def finish(self, keys: list, args: list):
        request_id, tokens = args[0], int(args[1])
        now = time.time()
        with self._lock:
            for i, key in enumerate(keys):
                kind, cap, period = args[2 + i * 3], args[3 + i * 3], args[4 + i * 3]
                if kind == "p":
                    self._slots.get(key, {}).pop(request_id, None)
                elif tokens > 0:
                    self._buckets[key] = (cap - self._level(key, cap, period, now) + tokens, now)
        return 1


def reset_seconds(kind: str, capacity: int, period: float, level: float) -> float:
    """Seconds until a bucket is full again (what OpenAI's x-ratelimit-reset-* say)."""
    if kind == "p" or level >= capacity:
        return 0.0
    return (capacity - level) * period / capacity


def duration(seconds: float) -> str:
    """OpenAI's way of writing a reset time: `20ms`, `1.5s`, `6m0s`, `1h2m3s`."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 10) / 10:g}s"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes}m{secs}s" if hours else f"{minutes}m{secs}s"
