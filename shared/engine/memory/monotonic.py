"""The memory engine's clock for deadlines (mark TTLs, holder and member deadlines).

Monotonic, unlike ``shared.clock.now_ms``: a deadline in this process must not move when the
wall clock is set. What other processes must agree on (fixed windows, history ages) uses the
wall clock instead.
"""

from __future__ import annotations

import time


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000
