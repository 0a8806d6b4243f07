"""The clock: every wall-clock read in parley goes through :func:`now_ms` (or :func:`precise_now_ms`).

Epoch milliseconds inside parley; :mod:`shared.protocol.timestamps` formats them for the wire.
One definition lets tests reason about time in one unit and keeps ``time.time() * 1000`` (a float,
rounded differently at each call site) out of the code."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


def precise_now_ms() -> float:
    """Wall-clock epoch milliseconds to the microsecond, for the load test's latency stamps: a
    loopback delivery takes about a millisecond, which whole milliseconds would swamp."""
    return time.time_ns() / 1_000_000
