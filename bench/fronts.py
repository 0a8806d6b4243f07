"""What the seed protocol front benchmarks (``bench/front_*.py``) share: the local servers, the
cluster-shape arguments, and their latency quantiles."""

from __future__ import annotations

import argparse

REDIS = "redis://127.0.0.1:6379/0"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """``--seconds`` measured, and the cluster: ``--fronts`` replicas of the front, ``--routers``."""
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--fronts", type=int, default=2)
    parser.add_argument("--routers", type=int, default=1)


def quantile_ms(ordered_seconds: list[float], q: float) -> float:
    """The ``q`` quantile of sorted latencies in seconds, in milliseconds (0.0 for none)."""
    if not ordered_seconds:
        return 0.0
    return round(ordered_seconds[min(int(q * len(ordered_seconds)), len(ordered_seconds) - 1)] * 1000, 2)
