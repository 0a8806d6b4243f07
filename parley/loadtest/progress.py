"""The per-second progress line on stderr: connections, sent/s, delivered/s, p99 and errors.

On a terminal the line is rewritten in place (and ended by :meth:`Progress.finish`); otherwise
one line a second is printed."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Collection

from parley.loadtest.channel import Snapshot
from parley.loadtest.histogram import LatencyHistogram


class Progress:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._window = LatencyHistogram()  # the workers' latencies since the last line
        self._last = (0, 0)  # sent, delivered at the last line
        self._next = math.inf  # no line before start()

    def start(self) -> None:
        self._next = time.perf_counter() + 1.0

    def record(self, snapshot: Snapshot) -> None:
        self._window.merge(LatencyHistogram.from_state(snapshot["window"]))

    def tick(self, snapshots: Collection[Snapshot]) -> None:
        """Print the line if a second has passed since the last one."""
        if not self.enabled or not snapshots or time.perf_counter() < self._next:
            return
        self._next += 1.0
        sent, delivered = sum(s["sent"] for s in snapshots), sum(s["delivered"] for s in snapshots)
        window, self._window = self._window, LatencyHistogram()
        p99 = window.percentile(99)
        line = (
            f"conns {sum(s['open'] for s in snapshots):>6}  sent/s {sent - self._last[0]:>7}  "
            f"delivered/s {delivered - self._last[1]:>8}  "
            f"p99 {'-' if p99 is None else f'{p99:.1f} ms':>9}  "
            f"errors {sum(s['errors'] for s in snapshots):>5}"
        )
        self._last = (sent, delivered)
        tty = sys.stderr.isatty()
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.enabled and sys.stderr.isatty():
            print(file=sys.stderr)
