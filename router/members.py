"""Membership enforcement in the router (a parley extension): in a members-only room, every
action a connection sends is refused with ERROR 403 unless its user is a member.

The member set of each room is cached here as user → bool, filled from the Store for the users
a batch needs. It is dropped on a ``members_changed`` control notice (AddRoomMembers /
RemoveRoomMembers) and after ``ttl_ms`` in any case, since notices are at-most-once. The
``Kind.MEMBERSHIP`` actions those operations also publish travel through the room's shard, so the
batch walk below applies them in order too: a member removed while connected has every action
queued after the removal refused, even if the control notice was lost.
"""

from __future__ import annotations

import time

from router.decide import Outcome, reject
from router.ports import RouterStore
from shared.features import membership
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.frames import ErrorCode
from shared.protocol.models import Room


class MemberCache:
    def __init__(self, store: RouterStore, ttl_ms: int = 5000, max_rooms: int = 10_000) -> None:
        self._store = store
        self._ttl_ns = ttl_ms * 1_000_000
        self._max_rooms = max_rooms
        self._rooms: dict[str, tuple[int, dict[str, bool]]] = {}

    def invalidate(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)

    def _known(self, room_id: str) -> dict[str, bool]:
        now = time.monotonic_ns()
        entry = self._rooms.get(room_id)
        if entry is None or now - entry[0] >= self._ttl_ns:
            if len(self._rooms) >= self._max_rooms:
                self._rooms.clear()
            entry = self._rooms[room_id] = (now, {})
        return entry[1]

    async def refusals(self, room: Room | None, actions: list[ActionEnvelope]) -> dict[str, Outcome]:
        """ERROR 403 outcomes by frame id for the actions of non-members, in batch order."""
        if room is None:
            if any(action.kind == Kind.MEMBERSHIP for action in actions):
                for action in actions:
                    self.invalidate(action.room_id)
            return {}
        known = self._known(room.id)
        if not room.members_only:
            for action in actions:  # keep the cache right for when the room turns members-only
                if action.kind == Kind.MEMBERSHIP:
                    known.pop(action.user_id, None)
            return {}
        wanted = sorted({action.user_id for action in actions if _checked(action) and action.user_id not in known})
        if wanted:
            for user_id, is_member in zip(wanted, await self._store.members.check(room.id, wanted), strict=True):
                known[user_id] = is_member
        refused: dict[str, Outcome] = {}
        for action in actions:
            if action.kind == Kind.MEMBERSHIP:
                known[action.user_id] = action.event_name == membership.EVENT_MEMBER_ADDED
            elif _checked(action) and not known.get(action.user_id, False):
                refused[action.frame_id] = reject(action, ErrorCode.FORBIDDEN, membership.NOT_A_MEMBER)
        return refused


def _checked(action: ActionEnvelope) -> bool:
    """Actions a connection sent (control-plane and presence actions have no gateway)."""
    return bool(action.gateway_id) and action.kind not in (Kind.PRESENCE, Kind.MEMBERSHIP)
