"""The reviewer's settings, read from ``PARLEY_REVIEW_*`` (listed in the README's contract)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.address_policy import Network, parse_networks

DEFAULT_CONCURRENCY = 256
# Above the handler's 200 ms budget by enough for two bus hops and a busy event loop: the
# reviewer's own fallback verdict (sent at ~200 ms) should normally win over this timeout.
DEFAULT_ROUTER_TIMEOUT_MS = 300


@dataclass(frozen=True, slots=True)
class ReviewConfig:
    concurrency: int = DEFAULT_CONCURRENCY  # handler invocations in flight per reviewer process
    router_timeout: float = DEFAULT_ROUTER_TIMEOUT_MS / 1000  # seconds a router waits for a verdict
    lambda_map: Mapping[str, str] = field(default_factory=dict)  # Lambda ARN -> http(s):// or parley: URI
    # Loopback/private networks rooms' handler URLs may reach (shared.address_policy); empty: none.
    # Lambda map targets are operator configuration, trusted: they skip this policy.
    allowed_networks: tuple[Network, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, allowed_networks: str | None = None) -> ReviewConfig:
        """``allowed_networks`` (``Settings.review_allowed_networks``, which ``parley dev`` defaults
        to loopback) takes the place of PARLEY_REVIEW_ALLOWED_NETWORKS, so the api and the
        reviewer in one process read one value. Raises ``ValueError`` on a malformed setting."""
        env = os.environ if environ is None else environ
        concurrency = int(env.get("PARLEY_REVIEW_CONCURRENCY") or DEFAULT_CONCURRENCY)
        timeout_ms = int(env.get("PARLEY_REVIEW_ROUTER_TIMEOUT_MS") or DEFAULT_ROUTER_TIMEOUT_MS)
        if allowed_networks is None:
            allowed_networks = env.get("PARLEY_REVIEW_ALLOWED_NETWORKS", "")
        return cls(
            max(1, concurrency),
            timeout_ms / 1000,
            parse_lambda_map(env.get("PARLEY_REVIEW_LAMBDA_MAP", "")),
            parse_networks(allowed_networks),
        )


def parse_lambda_map(raw: str) -> dict[str, str]:
    """``{"arn:aws:lambda:…:function:f": "http://host/review", …}`` as JSON; empty means none."""
    if not raw.strip():
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("PARLEY_REVIEW_LAMBDA_MAP must be a JSON object of ARN -> URI strings")
    return dict(value)
