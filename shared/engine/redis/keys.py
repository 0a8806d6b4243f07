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
- channels ``{ns}:room:{room}``, ``{ns}:gw:{gateway}``, ``{ns}:control`` (``shared.engine.redis.fanout``)
- ``{ns}:done:{<shard>}:gen`` / ``{ns}:done:{<shard>}:<g>``  done marks: a shard's generation
  counter and one set per generation, in one hash slot

**Redis Cluster** (``clustered``): the keys one script or transaction touches together share a
hash tag, so each stays in one slot: a kind's records and index (``{ns}:rec:{<kind>}:{id}``,
``{ns}:idx:{<kind>}``, so ListRooms and the quota check are one-slot reads), a group's reports,
and a room's history and members with its fan-out channel (``{ns}:hist:{<room>}``,
``{ns}:mem:{<room>}``, ``{ns}:room:{<room>}``), so a router's history append and room publish go
to one node, in order. Presence is one slot for all rooms (``{ns}:{presence}:pres:{room}`` …
``{ns}:{presence}:presx``): a join, a leave and a dead holder's sweep stay one atomic script each,
and presence load follows connection churn, not message rate. Without Cluster the layout is
exactly the list above (braces would change nothing there, but renaming would orphan a running
deployment's keys).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeySpace:
    namespace: str
    clustered: bool = False

    def _tag(self, part: str) -> str:
        """``part`` as the key's hash tag under Cluster (the namespace has no braces there)."""
        return f"{{{part}}}" if self.clustered else part

    @property
    def prefix(self) -> str:
        """What every key starts with (scripts that build keys inside Redis are given it)."""
        return f"{self.namespace}:"

    def record(self, kind: str, rid: str) -> str:
        return f"{self.namespace}:rec:{self._tag(kind)}:{rid}"

    def index(self, kind: str) -> str:
        return f"{self.namespace}:idx:{self._tag(kind)}"

    def mark(self, key: str) -> str:
        return f"{self.namespace}:mark:{key}"

    def hits(self, key: str, window: int) -> str:
        return f"{self.namespace}:hit:{key}:{window}"

    def reports(self, group: str) -> tuple[str, str]:
        """The group's values (hash) and its members' deadlines (zset)."""
        tag = self._tag(group)
        return f"{self.namespace}:rep:{tag}", f"{self.namespace}:repx:{tag}"

    def history(self, room_id: str) -> str:
        return f"{self.namespace}:hist:{self._tag(room_id)}"

    @property
    def presence_prefix(self) -> str:
        """What every presence key starts with; the sweep script builds keys from it."""
        return f"{self.namespace}:{self._tag('presence')}:" if self.clustered else self.prefix

    def presence(self, room_id: str) -> tuple[str, str]:
        """The room's entries (hash) and its per-user connection counts (hash)."""
        return f"{self.presence_prefix}pres:{room_id}", f"{self.presence_prefix}presn:{room_id}"

    @property
    def presence_held_prefix(self) -> str:
        """A holder's set of entries is this plus the holder (scripts append it)."""
        return f"{self.presence_prefix}presh:"

    def presence_held(self, holder: str) -> str:
        return f"{self.presence_held_prefix}{holder}"

    def presence_deadlines(self) -> str:
        return f"{self.presence_prefix}presx"

    def members(self, room_id: str) -> str:
        return f"{self.namespace}:mem:{self._tag(room_id)}"

    def room_channel(self, room_id: str) -> bytes:
        """The room's fan-out channel (with Cluster, in the slot of the room's keys)."""
        return f"{self.namespace}:room:{self._tag(room_id)}".encode()

    def gateway_channel(self, gateway_id: str) -> bytes:
        return f"{self.namespace}:gw:{gateway_id}".encode()

    def control_channel(self) -> bytes:
        return f"{self.namespace}:control".encode()

    def done_generation(self, shard: int) -> str:
        return f"{self.namespace}:done:{{{shard}}}:gen"

    def done_set(self, shard: int, generation: int) -> str:
        return f"{self.namespace}:done:{{{shard}}}:{generation}"
