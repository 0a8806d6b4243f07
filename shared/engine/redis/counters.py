"""Redis :class:`~shared.engine.counters.Counters`.

Fixed windows are keyed by the wall clock of the caller, like the memory engine, so every
replica counts into the same window key. A group is a hash of values and a zset of deadlines
(the server's clock); ``report``, ``reserve`` and ``unreserve`` go through the ordered pipeline,
so their order is their call order.
"""

from __future__ import annotations

from collections.abc import Awaitable

from shared.clock import now_ms
from shared.engine.counters import Counters
from shared.engine.redis.keys import KeySpace
from shared.engine.redis.lua import SERVER_NOW
from shared.engine.redis.pipeline import RedisPipeline, completion, first_as_bool

_REPORT = (
    SERVER_NOW
    + """
local ttl = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
"""
)

# KEYS: rep, repx. Forget the members past their deadline; ``live`` is the rest.
_LIVE_REPORTS = (
    SERVER_NOW
    + """
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #dead > 0 then
  redis.call('HDEL', KEYS[1], unpack(dead))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf')
"""
)

_REPORTS = (
    _LIVE_REPORTS
    + """
if #live == 0 then return {} end
local values = redis.call('HMGET', KEYS[1], unpack(live))
local out = {}
for i, member in ipairs(live) do
  if values[i] then
    out[#out + 1] = member
    out[#out + 1] = values[i]
  end
end
return out
"""
)

# A reservation against a quota shared by processes: the sum over the live members and the
# increment are one atomic step, or concurrent reservations (on one or several gateways) could
# each see ``limit - 1`` and all succeed. KEYS: rep, repx; ARGV: member, limit, ttl.
_RESERVE = (
    _LIVE_REPORTS
    + """
local total = 0
if #live > 0 then
  for _, value in ipairs(redis.call('HMGET', KEYS[1], unpack(live))) do
    if value then total = total + tonumber(value) end
  end
end
if total >= tonumber(ARGV[2]) then return 0 end
local ttl = tonumber(ARGV[3])
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
for _, key in ipairs(KEYS) do
  if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
end
return 1
"""
)

# A member past its deadline holds nothing (its value is stale): never decrement it below 0.
_UNRESERVE = (
    SERVER_NOW
    + """
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not deadline or tonumber(deadline) <= now then return 0 end
if (tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0) <= 0 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
return 1
"""
)


class RedisCounters(Counters):
    def __init__(self, pipeline: RedisPipeline, keys: KeySpace) -> None:
        self._redis = pipeline.redis
        self._pipeline = pipeline
        self._keys = keys
        self._reports = self._redis.register_script(_REPORTS)
        self._report = pipeline.script(_REPORT)
        self._reserve = pipeline.script(_RESERVE)
        self._unreserve = pipeline.script(_UNRESERVE)

    async def hit(self, key: str, window_ms: int) -> int:
        window = now_ms() // window_ms
        counter = self._keys.hits(key, window)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(counter)
            pipe.pexpire(counter, window_ms * 2)  # outlive the window a little for clock skew
            count, _ = await pipe.execute()
        return int(count)

    async def report(self, group: str, member: str, value: int, ttl_ms: int) -> None:
        await self._pipeline.submit(
            [("EVALSHA", self._report.sha, 2, *self._keys.reports(group), member, value, ttl_ms)]
        )

    async def reports(self, group: str) -> dict[str, int]:
        flat = await self._reports(keys=list(self._keys.reports(group)))
        return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    def reserve(self, group: str, member: str, limit: int, ttl_ms: int) -> Awaitable[bool]:
        script = ("EVALSHA", self._reserve.sha, 2, *self._keys.reports(group), member, limit, ttl_ms)
        return first_as_bool(self._pipeline.submit([script]))

    def unreserve(self, group: str, member: str) -> Awaitable[None]:
        script = ("EVALSHA", self._unreserve.sha, 2, *self._keys.reports(group), member)
        return completion(self._pipeline.submit([script]))
