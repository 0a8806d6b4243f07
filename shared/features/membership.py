"""Room membership (a parley extension): members-only rooms and their participant lists.

A room with ``membersOnly`` admits only its members (``shared.engine.members``, managed with
AddRoomMembers / RemoveRoomMembers): CreateChatToken refuses others (AccessDeniedException), the
gateway refuses their upgrade (HTTP 403) and the router refuses every action of a non-member
(ERROR 403; ``router/members.py``), so a member removed while connected can do nothing more even
before their disconnect arrives. Member changes are announced to the room as
``parley:MEMBER_ADDED`` / ``parley:MEMBER_REMOVED`` events (``Kind.MEMBERSHIP`` actions through the
room's shard, ordered with its messages).
"""

from __future__ import annotations

from shared.clock import now_ms
from shared.engine.members import MemberCheck
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.ids import new_id

EVENT_MEMBER_ADDED = "parley:MEMBER_ADDED"
EVENT_MEMBER_REMOVED = "parley:MEMBER_REMOVED"
NOT_A_MEMBER = "The user is not a member of this members-only room"


async def is_member(members: MemberCheck, room_id: str, user_id: str) -> bool:
    return (await members.check(room_id, [user_id]))[0]


def membership_action(room_id: str, event_name: str, user_id: str) -> ActionEnvelope:
    return ActionEnvelope(
        kind=Kind.MEMBERSHIP,
        frame_id=new_id(),
        room_id=room_id,
        received_ms=now_ms(),
        user_id=user_id,
        attributes={"UserId": user_id},
        event_name=event_name,
    )
