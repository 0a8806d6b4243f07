"""Per-user inboxes (a parley extension): direct messages kept for their recipient, for offline
delivery (seed 000's ``inbox``).

Owns: where a room's inbox for one user lives (a History key of its own, so bounds by count and
age come with it) and taking the inbox: read, then remove each message, keeping only those this
caller removed, so two replicas taking the same inbox at once never both return a message.

Must not: decide what is delivered (the router appends exactly the direct messages it delivers,
once, in rooms with ``inbox_per_user``).
"""

from __future__ import annotations

import asyncio

from shared.engine.history import History


def inbox_key(room_id: str, user_id: str) -> str:
    """The History key holding ``user_id``'s direct messages in ``room_id``."""
    return f"{room_id}:inbox:{user_id}"


async def take(history: History, room_id: str, user_id: str, limit: int, max_age_ms: int) -> list[tuple[str, bytes]]:
    """The user's kept messages, oldest first, removed from the inbox (each returned once)."""
    key = inbox_key(room_id, user_id)
    newest_first = await history.latest(key, limit, max_age_ms)
    if not newest_first:
        return []
    oldest_first = newest_first[::-1]
    removals = [history.remove(key, message_id) for message_id, _ in oldest_first]
    removed = await asyncio.gather(*removals)
    return [item for item, mine in zip(oldest_first, removed, strict=True) if mine]
