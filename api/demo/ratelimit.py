"""The demo endpoint's own rate limit: token requests per client address, counted in the Store.

The endpoint hands out tokens without credentials, so without a limit one client could mint
tokens (and create rooms) as fast as it can send requests. Counting in the Store makes the limit
hold across api replicas when the demo is enabled on several.
"""

from __future__ import annotations

from api.ports import ApiStore

WINDOW_MS = 60_000
DEFAULT_TOKENS_PER_MINUTE = 30  # a page needs one per join/reconnect; a few tabs stay far below this


async def allow(store: ApiStore, client: str, per_minute: int) -> bool:
    """Count one token request from ``client``; False once it is over ``per_minute`` in this minute."""
    return await store.counters.hit(f"demo-token:{client}", WINDOW_MS) <= per_minute


def retry_after_seconds(now_ms: int) -> int:
    """Seconds until the current fixed window ends (the Store's windows are aligned to wall time)."""
    return max(1, (WINDOW_MS - now_ms % WINDOW_MS + 999) // 1000)
