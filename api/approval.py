"""ApproveConnection (parley extension): admit a connection waiting in an approvalRequired room.

Published on the room's channel like a moderator's APPROVE_CONNECTION (``shared.features.approval``), so
the gateway holding the connection admits it wherever it runs.
"""

from __future__ import annotations

from typing import Any

from api.context import ApiContext, load_room
from shared.clock import now_ms
from shared.features import approval


async def approve_connection(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["roomIdentifier"])
    delivery = approval.approved_delivery(room.id, params["connectionId"], None, now_ms())
    await ctx.bus.fanout.publish_rooms([(room.id, delivery)])
    return {}
