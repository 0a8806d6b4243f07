"""The Redis key layout: every key the store writes, under ``{namespace}:`` (nothing else writes
these keys, and ``RedisStore.destroy`` deletes exactly them).

- ``{ns}:rec:{kind}:{id}``   one JSON string per record
- ``{ns}:idx:{kind}``        sorted set id → updated_ms (count, paging, the quota check)
- ``{ns}:mark:{key}``        one-shot marks (``claim``), ``SET NX PX``
- ``{ns}:hit:{key}:{win}``   fixed-window counters (``hit``)
- ``{ns}:rep:{group}`` / ``{ns}:repx:{group}``  reported (and reserved) values (hash) and their deadlines (zset)
- ``{ns}:hist:{room}``      history: one stream per room
- ``{ns}:pres:{room}``      presence: hash connection id → JSON ``{"h": holder, "u": user, "a": attributes}``
- ``{ns}:presn:{room}``     presence: hash user id → that user's connection count in the room
- ``{ns}:presh:{holder}``   presence: set of ``"{room} {connection}"`` a holder (gateway incarnation) holds
- ``{ns}:presx``            presence: zset holder → deadline (server ms); past it the holder is dead
- ``{ns}:mem:{room}``       room members: zset of user ids, all score 0 (ordered by bytes)
- ``{ns}:done:{<shard>}:gen`` / ``{ns}:done:{<shard>}:<g>``  done marks: a shard's generation
  counter and one set per generation, in one hash slot
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeySpace:
    namespace: str

    @property
    def prefix(self) -> str:
        """What every key starts with (scripts that build keys inside Redis are given it)."""
        return f"{self.namespace}:"

    def record(self, kind: str, rid: str) -> str:
        return f"{self.namespace}:rec:{kind}:{rid}"

    def index(self, kind: str) -> str:
        return f"{self.namespace}:idx:{kind}"

    def mark(self, key: str) -> str:
        return f"{self.namespace}:mark:{key}"

    def hits(self, key: str, window: int) -> str:
        return f"{self.namespace}:hit:{key}:{window}"

    def reports(self, group: str) -> tuple[str, str]:
        """The group's values (hash) and its members' deadlines (zset)."""
        return f"{self.namespace}:rep:{group}", f"{self.namespace}:repx:{group}"

    def history(self, room_id: str) -> str:
        return f"{self.namespace}:hist:{room_id}"

    def presence(self, room_id: str) -> tuple[str, str]:
        """The room's entries (hash) and its per-user connection counts (hash)."""
        return f"{self.namespace}:pres:{room_id}", f"{self.namespace}:presn:{room_id}"

    @property
    def presence_held_prefix(self) -> str:
        """A holder's set of entries is this plus the holder (scripts append it)."""
        return f"{self.namespace}:presh:"

    def presence_held(self, holder: str) -> str:
        return f"{self.presence_held_prefix}{holder}"

    def presence_deadlines(self) -> str:
        return f"{self.namespace}:presx"

    def members(self, room_id: str) -> str:
        return f"{self.namespace}:mem:{room_id}"

    def done_generation(self, shard: int) -> str:
        return f"{self.namespace}:done:{{{shard}}}:gen"

    def done_set(self, shard: int, generation: int) -> str:
        return f"{self.namespace}:done:{{{shard}}}:{generation}"
