"""``RedisStore``: the production :class:`~shared.engine.store.Store`, shared by every replica.

Owns the Redis key layout under ``{namespace}:`` (nothing else writes these keys):

- ``{ns}:rec:{kind}:{id}``   one JSON string per record
- ``{ns}:idx:{kind}``        sorted set id → updated_ms (count, paging, the quota check)
- ``{ns}:mark:{key}``        one-shot marks (``claim``), ``SET NX PX``
- ``{ns}:hit:{key}:{win}``   fixed-window counters (``hit``)
- ``{ns}:rep:{group}`` / ``{ns}:repx:{group}``  reported (and reserved) values (hash) and their deadlines (zset)
- ``{ns}:pres:{room}``      presence: hash connection id → JSON ``{"h": holder, "u": user, "a": attributes}``
- ``{ns}:presn:{room}``     presence: hash user id → that user's connection count in the room
- ``{ns}:presh:{holder}``   presence: set of ``"{room} {connection}"`` a holder (gateway incarnation) holds
- ``{ns}:presx``            presence: zset holder → deadline (server ms); past it the holder is dead
- ``{ns}:mem:{room}``       room members: zset of user ids, all score 0 (ordered by bytes)
- ``{ns}:done:{<shard>}:…`` redelivery de-duplication marks (``shared.engine.done_marks``)

Must not import any component, and must behave exactly like ``shared.engine.memory.MemoryStore``:
``tests/test_store.py`` runs the same tests against both.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable
from typing import Any

import redis.asyncio as aioredis

from shared.engine.done_marks import RedisDoneMarks
from shared.engine.redis.pipeline import Command, RedisPipeline, completion
from shared.engine.store import QuotaExceeded, Record, Store

# The count check and the insert must be one atomic step, or concurrent creates on several api
# replicas could each see ``limit - 1`` and all insert.
_CREATE = """
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
return 1
"""

# put must not resurrect a record deleted concurrently, hence the EXISTS inside the script.
_PUT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# Deadlines use the Redis server's clock so replicas with skewed clocks agree on who is alive.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_REPORT = (
    _NOW
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
    _NOW
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
    _NOW
    + """
local deadline = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not deadline or tonumber(deadline) <= now then return 0 end
if (tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0) <= 0 then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
return 1
"""
)


# History: one stream per room; entry ids are the server's ms clock, so age trimming is MINID.
# Count and age are trimmed on every append, and the key expires when the room goes quiet.
_HISTORY_APPEND = (
    _NOW
    + """
for i = 3, #ARGV, 2 do
  redis.call('XADD', KEYS[1], '*', 'i', ARGV[i], 'f', ARGV[i + 1])
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', tonumber(ARGV[1]))
redis.call('XTRIM', KEYS[1], 'MINID', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
"""
)

# Finding a message by its id scans the (small, bounded) stream inside Redis.
_HISTORY_REMOVE = """
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  if entry[2][2] == ARGV[1] then
    return redis.call('XDEL', KEYS[1], entry[1])
  end
end
return 0
"""


# Presence: all steps of one connection's add/remove (entry, holder set, per-user count) are
# one script, so "first connection" / "last connection" is decided exactly once per user.
_PRESENCE_ADD = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[5] .. ' ' .. ARGV[1])
return redis.call('HINCRBY', KEYS[2], ARGV[3], 1) == 1 and 1 or 0
"""

# KEYS: pres:room, presn:room; ARGV: connection, room, holder-set key prefix
_PRESENCE_REMOVE = """
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

_PRESENCE_REFRESH = (
    _NOW
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
_PRESENCE_LIST = (
    _NOW
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

# KEYS: presx; ARGV: key prefix "{ns}:" -> flat [room, raw entry, ...] of users who left
_PRESENCE_SWEEP = (
    _NOW
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

_MEMBERS_ADD = """
local out = {}
for _, user in ipairs(ARGV) do
  if redis.call('ZADD', KEYS[1], 0, user) == 1 then out[#out + 1] = user end
end
return out
"""

_MEMBERS_REMOVE = """
local out = {}
for _, user in ipairs(ARGV) do
  if redis.call('ZREM', KEYS[1], user) == 1 then out[#out + 1] = user end
end
return out
"""


def _presence_entry(raw: bytes) -> tuple[str, dict[str, str]]:
    entry = json.loads(raw)
    attributes = entry.get("a")
    return entry["u"], attributes if isinstance(attributes, dict) else {}


REDIS_POOL_SIZE = 64


def _encode(record: Record) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


def _decode(raw: bytes) -> Record:
    result: Record = json.loads(raw)
    return result


async def _first_as_bool(pending: Awaitable[list[Any]]) -> bool:
    return bool((await pending)[0])


class RedisStore(Store):
    def __init__(self, redis_url: str, namespace: str) -> None:
        self._ns = namespace
        # Building the client does not connect, so methods work without start() as well.
        # A blocking pool: a burst (thousands of handshakes at once) waits for a connection
        # instead of failing with MaxConnectionsError as redis-py's default pool does.
        pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=REDIS_POOL_SIZE, timeout=10)
        self._redis: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self.redis = self._redis  # the process's Redis client, which the fan-out shares
        self._create = self._redis.register_script(_CREATE)
        self._put = self._redis.register_script(_PUT)
        self._reports = self._redis.register_script(_REPORTS)
        # This turn's commands, in order, one round trip; the bus of the same process publishes
        # through it too (``real_backends``), so a router's history, publish and done marks share it.
        self.pipeline = RedisPipeline(self._redis)
        # report, reserve and unreserve share the pipeline: their order is their call order
        self._report = self.pipeline.script(_REPORT)
        self._reserve = self.pipeline.script(_RESERVE)
        self._unreserve = self.pipeline.script(_UNRESERVE)
        self._history_append = self.pipeline.script(_HISTORY_APPEND)
        self.done_marks = RedisDoneMarks(self.pipeline, namespace)
        self._history_remove = self.pipeline.script(_HISTORY_REMOVE)
        self._presence_add = self.pipeline.script(_PRESENCE_ADD)
        self._presence_remove = self._redis.register_script(_PRESENCE_REMOVE)
        self._presence_refresh = self._redis.register_script(_PRESENCE_REFRESH)
        self._presence_list = self._redis.register_script(_PRESENCE_LIST)
        self._presence_sweep = self._redis.register_script(_PRESENCE_SWEEP)
        self._members_add = self._redis.register_script(_MEMBERS_ADD)
        self._members_remove = self._redis.register_script(_MEMBERS_REMOVE)

    # --- keys -------------------------------------------------------------------------------
    def _rec(self, kind: str, rid: str) -> str:
        return f"{self._ns}:rec:{kind}:{rid}"

    def _idx(self, kind: str) -> str:
        return f"{self._ns}:idx:{kind}"

    def _mark(self, key: str) -> str:
        return f"{self._ns}:mark:{key}"

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        await self._redis.ping()  # fail fast on a wrong URL instead of on the first request
        await self.pipeline.load_scripts()  # they go as bare EVALSHA

    async def close(self) -> None:
        await self._redis.aclose()

    async def destroy(self) -> None:
        """Delete every key of this namespace (tests, teardown). Never touches other namespaces."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._ns) + ":*"
        batch: list[Any] = []
        async for key in self._redis.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                await self._redis.unlink(*batch)
                batch.clear()
        if batch:
            await self._redis.unlink(*batch)

    # --- resources --------------------------------------------------------------------------
    async def create(self, kind: str, rid: str, record: Record, updated_ms: int, limit: int) -> None:
        keys = [self._rec(kind, rid), self._idx(kind)]
        if not await self._create(keys=keys, args=[_encode(record), updated_ms, limit, rid]):
            raise QuotaExceeded(kind, limit)

    async def put(self, kind: str, rid: str, record: Record, updated_ms: int) -> bool:
        keys = [self._rec(kind, rid), self._idx(kind)]
        return bool(await self._put(keys=keys, args=[_encode(record), updated_ms, rid]))

    async def get(self, kind: str, rid: str) -> Record | None:
        raw = await self._redis.get(self._rec(kind, rid))
        return None if raw is None else _decode(raw)

    async def delete(self, kind: str, rid: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._rec(kind, rid))
            pipe.zrem(self._idx(kind), rid)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def count(self, kind: str) -> int:
        return int(await self._redis.zcard(self._idx(kind)))

    async def page(self, kind: str, after: tuple[int, str] | None, limit: int) -> list[tuple[int, str, Record]]:
        if limit <= 0:
            return []
        idx = self._idx(kind)
        # A sorted set orders equal scores by member bytes, so ZREVRANGEBYSCORE already gives
        # (updated_ms desc, id desc). The cursor's own score needs an id filter, done here in
        # Python rather than in Lua because Lua's string '<' follows the server's locale.
        rows: list[tuple[int, str]] = []
        async with self._redis.pipeline(transaction=True) as pipe:
            if after is None:
                pipe.zrevrangebyscore(idx, "+inf", "-inf", start=0, num=limit, withscores=True)
                (rest,) = await pipe.execute()
            else:
                updated, cursor_id = after
                pipe.zrevrangebyscore(idx, updated, updated, withscores=True)
                pipe.zrevrangebyscore(idx, f"({updated}", "-inf", start=0, num=limit, withscores=True)
                ties, rest = await pipe.execute()
                rows = [(int(s), m.decode()) for m, s in ties if m.decode() < cursor_id]
        rows.extend((int(s), m.decode()) for m, s in rest)
        rows = rows[:limit]
        if not rows:
            return []
        raws = await self._redis.mget([self._rec(kind, rid) for _, rid in rows])
        # A record deleted between the two reads is skipped, as if the page was read just after.
        return [
            (updated, rid, _decode(raw)) for (updated, rid), raw in zip(rows, raws, strict=False) if raw is not None
        ]

    # --- one-shot keys ----------------------------------------------------------------------
    async def get_with_claimed(self, kind: str, rid: str, keys: list[str]) -> tuple[Record | None, list[bool]]:
        commands: list[Command] = [("GET", self._rec(kind, rid))]
        if keys:
            commands.append(("MGET", *(self._mark(k) for k in keys)))
        results = await self.pipeline.submit(commands)
        raw, marks = results[0], results[1] if keys else []
        return (None if raw is None else _decode(raw)), [mark is not None for mark in marks]

    async def claim(self, key: str, ttl_ms: int) -> bool:
        (claimed,) = await self.pipeline.submit([("SET", self._mark(key), b"1", "NX", "PX", ttl_ms)])
        return bool(claimed)

    async def claimed(self, keys: list[str]) -> list[bool]:
        if not keys:
            return []
        (marks,) = await self.pipeline.submit([("MGET", *(self._mark(k) for k in keys))])
        return [raw is not None for raw in marks]

    def claim_many(self, keys: list[str], ttl_ms: int) -> Awaitable[None]:
        if not keys:
            return completion(None)
        return completion(self.pipeline.submit([("SET", self._mark(key), b"1", "PX", ttl_ms) for key in keys]))

    async def release(self, key: str) -> bool:
        return bool(await self._redis.delete(self._mark(key)))

    # --- history -----------------------------------------------------------------------------
    def _hist(self, room_id: str) -> str:
        return f"{self._ns}:hist:{room_id}"

    async def _history(self, room_id: str, max_age_ms: int) -> list[tuple[str, bytes]]:
        """Every live entry, oldest first; bounded by the room's history size."""
        now_ms_server = int(time.time() * 1000)  # close enough to the server clock for reads
        rows = await self._redis.xrange(self._hist(room_id), min=f"{now_ms_server - max_age_ms}", max="+")
        return [(fields[b"i"].decode(), fields[b"f"]) for _, fields in rows]

    def history_append(
        self, room_id: str, items: list[tuple[str, bytes]], max_messages: int, max_age_ms: int
    ) -> Awaitable[None]:
        flat: list[Any] = [max_messages, max_age_ms]
        for message_id, frame in items:
            flat += [message_id, frame]
        if not items:
            return completion(None)
        script = ("EVALSHA", self._history_append.sha, 1, self._hist(room_id), *flat)
        return completion(self.pipeline.submit([script]))

    def history_remove(self, room_id: str, message_id: str) -> Awaitable[bool]:
        return _first_as_bool(
            self.pipeline.submit([("EVALSHA", self._history_remove.sha, 1, self._hist(room_id), message_id)])
        )

    async def history_latest(
        self, room_id: str, limit: int, max_age_ms: int, before: str | None = None
    ) -> list[tuple[str, bytes]]:
        entries = await self._history(room_id, max_age_ms)
        if before is not None:
            ids = [message_id for message_id, _ in entries]
            entries = entries[: ids.index(before)] if before in ids else []
        return list(reversed(entries[-limit:])) if limit else []

    async def history_after(
        self, room_id: str, after: str, limit: int, max_age_ms: int
    ) -> tuple[list[tuple[str, bytes]], bool]:
        entries = await self._history(room_id, max_age_ms)
        ids = [message_id for message_id, _ in entries]
        found = after in ids
        start = ids.index(after) + 1 if found else 0
        return entries[start : start + limit], found

    async def history_clear(self, room_id: str) -> None:
        await self._redis.delete(self._hist(room_id))

    # --- presence ---------------------------------------------------------------------------
    def _pres(self, room_id: str) -> list[str]:
        return [f"{self._ns}:pres:{room_id}", f"{self._ns}:presn:{room_id}"]

    async def presence_add(
        self, room_id: str, connection_id: str, holder: str, user_id: str, attributes: dict[str, str] | None
    ) -> bool:
        entry = _encode({"h": holder, "u": user_id, "a": attributes or {}})
        keys = [*self._pres(room_id), f"{self._ns}:presh:{holder}"]
        script = ("EVALSHA", self._presence_add.sha, len(keys), *keys, connection_id, holder, user_id, entry, room_id)
        (added,) = await self.pipeline.submit([script])
        return bool(added)

    async def presence_remove(self, room_id: str, connection_id: str) -> bool:
        args = [connection_id, room_id, f"{self._ns}:presh:"]
        return bool(await self._presence_remove(keys=self._pres(room_id), args=args))

    async def presence_refresh(self, holder: str, ttl_ms: int) -> bool:
        return bool(await self._presence_refresh(keys=[f"{self._ns}:presx"], args=[holder, ttl_ms]))

    async def presence_list(self, room_id: str) -> list[tuple[str, str, dict[str, str]]]:
        flat = await self._presence_list(keys=[f"{self._ns}:pres:{room_id}", f"{self._ns}:presx"])
        return [(flat[i].decode(), *_presence_entry(flat[i + 1])) for i in range(0, len(flat), 2)]

    async def presence_sweep(self) -> list[tuple[str, str, dict[str, str]]]:
        flat = await self._presence_sweep(keys=[f"{self._ns}:presx"], args=[f"{self._ns}:"])
        return [(flat[i].decode(), *_presence_entry(flat[i + 1])) for i in range(0, len(flat), 2)]

    # --- members -----------------------------------------------------------------------------
    def _members_key(self, room_id: str) -> str:
        return f"{self._ns}:mem:{room_id}"

    async def members_add(self, room_id: str, user_ids: list[str]) -> list[str]:
        if not user_ids:
            return []
        added = await self._members_add(keys=[self._members_key(room_id)], args=user_ids)
        return [user_id.decode() for user_id in added]

    async def members_remove(self, room_id: str, user_ids: list[str]) -> list[str]:
        if not user_ids:
            return []
        removed = await self._members_remove(keys=[self._members_key(room_id)], args=user_ids)
        return [user_id.decode() for user_id in removed]

    async def members_check(self, room_id: str, user_ids: list[str]) -> list[bool]:
        if not user_ids:
            return []
        scores = await self._redis.zmscore(self._members_key(room_id), user_ids)
        return [score is not None for score in scores]

    async def members_page(self, room_id: str, after: str | None, limit: int) -> list[str]:
        if limit <= 0:
            return []
        low = b"(" + after.encode() if after is not None else b"-"
        rows = await self._redis.zrangebylex(self._members_key(room_id), low, b"+", start=0, num=limit)
        return [user_id.decode() for user_id in rows]

    async def members_clear(self, room_id: str) -> None:
        await self._redis.delete(self._members_key(room_id))

    # --- counters ---------------------------------------------------------------------------
    async def hit(self, key: str, window_ms: int) -> int:
        # Wall clock, like MemoryStore: every replica then counts into the same window key.
        window = int(time.time() * 1000) // window_ms
        counter = f"{self._ns}:hit:{key}:{window}"
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(counter)
            pipe.pexpire(counter, window_ms * 2)  # outlive the window a little for clock skew
            count, _ = await pipe.execute()
        return int(count)

    def _rep(self, group: str) -> tuple[str, str]:
        return f"{self._ns}:rep:{group}", f"{self._ns}:repx:{group}"

    async def report(self, group: str, member: str, value: int, ttl_ms: int) -> None:
        await self.pipeline.submit([("EVALSHA", self._report.sha, 2, *self._rep(group), member, value, ttl_ms)])

    async def reports(self, group: str) -> dict[str, int]:
        flat = await self._reports(keys=list(self._rep(group)))
        return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    def reserve(self, group: str, member: str, limit: int, ttl_ms: int) -> Awaitable[bool]:
        script = ("EVALSHA", self._reserve.sha, 2, *self._rep(group), member, limit, ttl_ms)
        return _first_as_bool(self.pipeline.submit([script]))

    def unreserve(self, group: str, member: str) -> Awaitable[None]:
        return completion(self.pipeline.submit([("EVALSHA", self._unreserve.sha, 2, *self._rep(group), member)]))
