"""Redis :class:`~shared.engine.presence.Presence`.

All steps of one connection's add or remove (its entry, its holder's set, the user's count) are
one script, so "first connection" / "last connection" is decided exactly once per user. Holder
deadlines are the server's clock.
"""

from __future__ import annotations

import json

from shared.engine.presence import Connections, Departures, Presence
from shared.engine.redis.codec import encode
from shared.engine.redis.keys import KeySpace
from shared.engine.redis.lua import SERVER_NOW
from shared.engine.redis.pipeline import RedisPipeline

_ADD = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5] .. ' ' .. ARGV[1])
return redis.call('HINCRBY', KEYS[2], ARGV[3], 1) == 1 and 1 or 0
"""

# KEYS: pres:room, presn:room; ARGV: connection, room, holder-set key prefix
_REMOVE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local e = cjson.decode(raw)
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', ARGV[3] .. e.h, ARGV[2] .. ' ' .. ARGV[1])
if redis.call('HINCRBY', KEYS[2], e.u, -1) <= 0 then
  redis.call('HDEL', KEYS[2], e.u)
  return 1
end
return 0
"""

_REFRESH = (
    SERVER_NOW
    + """
local known = redis.call('ZSCORE', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return known and 1 or 0
"""
)

# KEYS: pres:room, presx -> flat [connection, raw entry, ...] of live holders only
_LIST = (
    SERVER_NOW
    + """
local all = redis.call('HGETALL', KEYS[1])
local alive = {}
local out = {}
for i = 1, #all, 2 do
  local h = cjson.decode(all[i + 1]).h
  if alive[h] == nil then
    local deadline = redis.call('ZSCORE', KEYS[2], h)
    alive[h] = deadline ~= false and tonumber(deadline) > now
  end
  if alive[h] then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out
"""
)

# KEYS: presx; ARGV: the presence key prefix (``KeySpace.presence_prefix``) -> flat [room, raw
# entry, ...] of users who left. It builds the holders' and rooms' keys itself (``KeySpace.presence``,
# ``presence_held``): their rooms are known only inside Redis (all in presence's one slot).
_SWEEP = (
    SERVER_NOW
    + """
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 20)
local out = {}
for _, h in ipairs(dead) do
  local held = ARGV[1] .. 'presh:' .. h
  for _, m in ipairs(redis.call('SMEMBERS', held)) do
    local room, conn = string.match(m, '^(.*) ([^ ]*)$')
    local pk = ARGV[1] .. 'pres:' .. room
    local raw = redis.call('HGET', pk, conn)
    if raw then
      redis.call('HDEL', pk, conn)
      local e = cjson.decode(raw)
      local nk = ARGV[1] .. 'presn:' .. room
      if redis.call('HINCRBY', nk, e.u, -1) <= 0 then
        redis.call('HDEL', nk, e.u)
        out[#out + 1] = room
        out[#out + 1] = raw
      end
    end
  end
  redis.call('DEL', held)
  redis.call('ZREM', KEYS[1], h)
end
return out
"""
)


def _entry(raw: bytes) -> tuple[str, dict[str, str]]:
    """A stored entry's user and attributes."""
    entry = json.loads(raw)
    attributes = entry.get("a")
    return entry["u"], attributes if isinstance(attributes, dict) else {}


def _pairs(flat: list[bytes]) -> list[tuple[str, str, dict[str, str]]]:
    """A script's flat ``[name, raw entry, ...]`` reply as ``(name, user, attributes)``."""
    return [(flat[i].decode(), *_entry(flat[i + 1])) for i in range(0, len(flat), 2)]


class RedisPresence(Presence):
    def __init__(self, pipeline: RedisPipeline, keys: KeySpace) -> None:
        self._pipeline = pipeline
        self._keys = keys
        redis = pipeline.redis
        self._add = pipeline.script(_ADD)
        self._remove = redis.register_script(_REMOVE)
        self._refresh = redis.register_script(_REFRESH)
        self._list = redis.register_script(_LIST)
        self._sweep = redis.register_script(_SWEEP)

    async def add(
        self, room_id: str, connection_id: str, holder: str, user_id: str, attributes: dict[str, str] | None
    ) -> bool:
        entry = encode({"h": holder, "u": user_id, "a": attributes or {}})
        keys = [*self._keys.presence(room_id), self._keys.presence_held(holder)]
        script = ("EVALSHA", self._add.sha, len(keys), *keys, connection_id, holder, user_id, entry, room_id)
        (added,) = await self._pipeline.submit([script])
        return bool(added)

    async def remove(self, room_id: str, connection_id: str) -> bool:
        args = [connection_id, room_id, self._keys.presence_held_prefix]
        return bool(await self._remove(keys=list(self._keys.presence(room_id)), args=args))

    async def refresh(self, holder: str, ttl_ms: int) -> bool:
        return bool(await self._refresh(keys=[self._keys.presence_deadlines()], args=[holder, ttl_ms]))

    async def list(self, room_id: str) -> Connections:
        entries, _ = self._keys.presence(room_id)
        return _pairs(await self._list(keys=[entries, self._keys.presence_deadlines()]))

    async def sweep(self) -> Departures:
        return _pairs(await self._sweep(keys=[self._keys.presence_deadlines()], args=[self._keys.presence_prefix]))
