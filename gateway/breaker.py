"""A circuit breaker per provider target, shared by every gateway process (gateway/store.py:
Redis; per process without it), so that a failing target is kept out of rotation everywhere.

Closed: requests go to the target; each failure (a connect error, timeout, 429 or 5xx before the
first byte: gateway/failover.py) is counted, and `failure_threshold` failures within
`window_seconds` open the circuit. Open: the target is skipped for `cooldown_seconds`. Then
half-open: `half_open_requests` requests are let through as probes; a probe that succeeds closes
the circuit, one that fails opens it again for another cool-down. A probe that never reports (its
process died) frees its place after a cool-down.

One round trip per decision: picking the first usable target of a request (and, after a failure,
recording it and picking the next: one script); a request served by a closed target costs
nothing more, one served by a probe one more (to close). When the store is unavailable, every
target counts as closed (requests are not refused for want of a breaker), counted and logged
like the rate limits' outages.
"""

import threading
import time
from dataclasses import dataclass

from gateway.routing_settings import BreakerSettings
from gateway.store import StoreUnavailable, lua, outage_count, store_run

UNCHECKED = "circuit checks skipped"  # outage_counts(): decisions made without the store

# KEYS: the failed target's key first when ARGV[1] is '1', then the candidates' keys in order.
# ARGV: failed flag, failure threshold, window, cool-down, half-open requests. Returns the index
# (1-based among the candidates) of the first one to use, 0 for none, then for each candidate
# looked at: 'closed', 'probe', or the seconds until it may be tried.
ADVANCE = lua("""
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local threshold, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local cooldown, probes = tonumber(ARGV[4]), tonumber(ARGV[5])
local ttl = math.ceil((window + cooldown * 2) * 1000)
local function num(key, field)
  return tonumber(redis.call('HGET', key, field) or '0')
end
local first = 1
if ARGV[1] == '1' then
  first = 2
  local key = KEYS[1]
  local opened = num(key, 'o')
  if opened > 0 and now >= opened then
    redis.call('HSET', key, 'o', tostring(now + cooldown), 'f', '0', 'p', '0')
  elseif opened == 0 then
    local failures = 0
    if now - num(key, 'w') <= window then
      failures = num(key, 'f')
    else
      redis.call('HSET', key, 'w', tostring(now))
    end
    failures = failures + 1
    if failures >= threshold then
      redis.call('HSET', key, 'o', tostring(now + cooldown), 'f', '0', 'p', '0')
    else
      redis.call('HSET', key, 'f', tostring(failures))
    end
  end
  redis.call('PEXPIRE', key, ttl)
end
local out = {0}
for i = first, #KEYS do
  local key = KEYS[i]
  local opened = num(key, 'o')
  if opened == 0 then
    out[1] = i - first + 1
    out[#out + 1] = 'closed'
    return out
  end
  if now < opened then
    out[#out + 1] = tostring(opened - now)
  else
    local started = num(key, 'pt')
    local probing = num(key, 'p')
    if now - started > cooldown then probing = 0 end
    if probing < probes then
      redis.call('HSET', key, 'p', tostring(probing + 1), 'pt', tostring(now))
      redis.call('PEXPIRE', key, ttl)
      out[1] = i - first + 1
      out[#out + 1] = 'probe'
      return out
    end
    out[#out + 1] = tostring(started + cooldown - now)
  end
end
return out
""")

# KEYS: the target whose probe succeeded. Closes its circuit unless it was opened again since.
CLOSE = lua("""
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local opened = tonumber(redis.call('HGET', KEYS[1], 'o') or '0')
if opened > 0 and now >= opened then redis.call('DEL', KEYS[1]) end
return 1
""")


@dataclass(frozen=True)
class Pick:
    """`index`: the candidate to use (None: every one is open); `probe`: it is a half-open
    probe; `waits`: seconds until each candidate skipped before it may be tried."""

    index: int | None
    probe: bool = False
    waits: tuple = ()


def breaker_key(target) -> str:
    return f"kt:cb:{target.organization_id}:{target.pk}"


class LocalBreakers:
    """The same circuits in this process's memory (a gateway without Redis)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state: dict[str, dict] = {}

    def advance(self, keys: list, args: list):
        failed, threshold, window, cooldown, probes = args
        now = time.time()
        with self._lock:
            first = 0
            if failed == "1":
                first = 1
                state = self._state.setdefault(keys[0], {})
                opened = state.get("o", 0)
                if opened and now >= opened:
                    state.update(o=now + cooldown, f=0, p=0)
                elif not opened:
                    if now - state.get("w", 0) > window:
                        state.update(w=now, f=0)
                    state["f"] = state.get("f", 0) + 1
                    if state["f"] >= threshold:
                        state.update(o=now + cooldown, f=0, p=0)
            out = [0]
            for i, key in enumerate(keys[first:], 1):
                state = self._state.setdefault(key, {})
                opened = state.get("o", 0)
                if not opened:
                    return [i, *out[1:], "closed"]
                if now < opened:
                    out.append(str(opened - now))
                    continue
                probing = state.get("p", 0) if now - state.get("pt", 0) <= cooldown else 0
                if probing < probes:
                    state.update(p=probing + 1, pt=now)
                    return [i, *out[1:], "probe"]
                out.append(str(state.get("pt", 0) + cooldown - now))
            return out

    def close(self, keys: list, args: list):
        now = time.time()
        with self._lock:
            state = self._state.get(keys[0], {})
            if state.get("o") and now >= state["o"]:
                self._state.pop(keys[0], None)
        return 1


_local = LocalBreakers()


def breakers_reset() -> None:
    """Forget this process's circuits (tests; Redis keeps the shared ones)."""
    global _local
    _local = LocalBreakers()


def breaker_pick(settings: BreakerSettings, candidates: list, *, failed=None) -> Pick:
    """Record `failed`'s failure (a target), then pick the first of `candidates` (targets) whose
    circuit lets a request through. Without the store: the first candidate, unchecked."""
    keys = [breaker_key(target) for target in candidates]
    if failed is not None:
        keys.insert(0, breaker_key(failed))
    args = ["1" if failed is not None else "0", *settings.args()]
    try:
        result = store_run(ADVANCE, _local.advance, keys, args)
    except StoreUnavailable:
        outage_count(UNCHECKED)
        return Pick(0 if candidates else None)
    index = int(result[0])
    looked = [value.decode() if isinstance(value, bytes) else value for value in result[1:]]
    if not index:
        return Pick(None, waits=tuple(float(wait) for wait in looked))
    return Pick(
        index - 1,
        probe=looked[-1] == "probe",
        waits=tuple(float(wait) for wait in looked[:-1]),
    )


def breaker_close(target) -> None:
    """A probe of `target` succeeded: close its circuit. Never raises."""
    try:
        store_run(CLOSE, _local.close, [breaker_key(target)], [])
    except StoreUnavailable:
        outage_count(UNCHECKED)
