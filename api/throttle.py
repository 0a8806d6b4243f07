"""Per-operation API rate limits of IVS Chat (spec §10), enforced account-wide.

The limits are per account and region, not per api replica, so the count lives in the shared
Store (``Counters.hit`` over a one-second fixed window) and every replica sees the same total.
Disabled when ``settings.api_throttling`` is False (tests, single-user setups).
"""

from __future__ import annotations

from api.errors import ROOM, ThrottlingException
from api.ports import ApiStore

WINDOW_MS = 1000

TPS_LIMITS: dict[str, int] = {
    "DeleteMessage": 100,
    "DisconnectUser": 100,
    "SendEvent": 100,
    "CreateChatToken": 200,
    "CreateLoggingConfiguration": 3,
    "DeleteLoggingConfiguration": 3,
    "GetLoggingConfiguration": 3,
    "ListLoggingConfigurations": 3,
    "UpdateLoggingConfiguration": 3,
    "CreateRoom": 5,
    "DeleteRoom": 5,
    "GetRoom": 5,
    "ListRooms": 5,
    "UpdateRoom": 5,
    "ListTagsForResource": 10,
    "TagResource": 10,
    "UntagResource": 10,
}


def counter_key(operation: str) -> str:
    return f"api-tps:{operation}"


async def check(store: ApiStore, operation: str, resource_id: str) -> None:
    """Count one call of ``operation``; raise ``ThrottlingException`` past its TPS limit.

    ``resource_id`` names what the call was about (the room id when there is one), because the
    error shape requires one.
    """
    limit = TPS_LIMITS.get(operation)
    if limit is None:
        return
    if await store.counters.hit(counter_key(operation), WINDOW_MS) > limit:
        raise ThrottlingException(
            f"Rate exceeded: {operation} allows {limit} requests per second", resource_id, ROOM, limit
        )
