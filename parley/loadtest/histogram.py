"""The latency histogram: 1 % log buckets over 0.1 ms, constant memory, mergeable across workers.

Owns: bucketing, merging and percentiles. A worker ships its histogram to the coordinator as
:data:`HistogramState` (plain types, so it pickles across processes)."""

from __future__ import annotations

import math

HistogramState = tuple[dict[int, int], int, float]
"""``(counts by bucket, total, max_ms)``: what crosses the worker queue."""


class LatencyHistogram:
    GROWTH = math.log(1.01)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.total = 0
        self.max_ms = 0.0

    @classmethod
    def from_state(cls, state: HistogramState) -> LatencyHistogram:
        histogram = cls()
        histogram.counts, histogram.total, histogram.max_ms = dict(state[0]), state[1], state[2]
        return histogram

    def state(self) -> HistogramState:
        return self.counts, self.total, self.max_ms

    def add(self, ms: float) -> None:
        ms = max(ms, 0.0)
        index = int(math.log1p(ms * 10) / self.GROWTH)  # 0.1 ms floor, 1% relative precision
        self.counts[index] = self.counts.get(index, 0) + 1
        self.total += 1
        if ms > self.max_ms:
            self.max_ms = ms

    def merge(self, other: LatencyHistogram) -> None:
        for index, count in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + count
        self.total += other.total
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile(self, p: float) -> float | None:
        if not self.total:
            return None
        rank = max(1, math.ceil(self.total * p / 100))
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return round(min(math.expm1((index + 1) * self.GROWTH) / 10, self.max_ms), 2)
        return round(self.max_ms, 2)
