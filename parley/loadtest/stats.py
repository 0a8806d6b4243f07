"""What one worker counts while it runs, and the counter helpers the merged report reuses."""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.loadtest.histogram import LatencyHistogram


@dataclass
class Stats:
    sent: int = 0
    delivered: int = 0
    connect_failures: dict[str, int] = field(default_factory=dict)
    errors_by_code: dict[str, int] = field(default_factory=dict)
    disconnects: dict[str, int] = field(default_factory=dict)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    window: LatencyHistogram = field(default_factory=LatencyHistogram)  # since the last snapshot


def count(counter: dict[str, int], key: str, n: int = 1) -> None:
    counter[key] = counter.get(key, 0) + n


def merge_counts(into: dict[str, int], other: dict[str, int]) -> None:
    for key, n in other.items():
        count(into, key, n)
