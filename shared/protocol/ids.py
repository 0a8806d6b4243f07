"""Identifiers: 12-character ``[A-Za-z0-9]`` ids (IVS's Id12) and ivschat ARNs."""

from __future__ import annotations

import os
import re
from collections import deque

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ID_SPACE = 62**12
# Patterns that validate input are used with .fullmatch(): "$" also matches before a final newline,
# so ^...$ with .match() let "<id>\n" through. ID12_RE is anchored with \A...\Z so a .match() stays safe.
ID12_RE = re.compile(r"\A[a-zA-Z0-9]{12}\Z")
# A connection id: an Id12 (IVS gateway) or a lowercase UUID (the relay front, whose seed shows UUIDs).
CONNECTION_ID_RE = re.compile(r"\A(?:[a-zA-Z0-9]{12}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\Z")
_ARN_RE = re.compile(
    r"arn:aws:ivschat:(?P<region>[a-z0-9-]+):(?P<account>[0-9]+):"
    r"(?P<kind>room|logging-configuration)/(?P<id>[a-zA-Z0-9-]+)"
)


def new_id() -> str:
    """A fresh random Id12. 62**12 ≈ 3e21 values, so ids never repeat in practice.

    Clients de-duplicate frames by Id for the whole session, so every frame needs one
    that was never used before (a per-connection counter would not do).
    """
    try:
        return _pool.popleft()  # deque.popleft is atomic: safe from the sinks' worker threads too
    except IndexError:
        _refill()
        return _pool.popleft()


# One urandom read (a syscall) per id cost a gateway ~9 % of its CPU at ingest; ids are now cut
# from one read of POOL_BYTES. Bytes >= 248 are dropped so each character stays uniform over 62.
POOL_BYTES = 4096
_BYTE_TO_CHAR = bytes(ord(_ALPHABET[b % 62]) for b in range(248)) + bytes(8)
_REJECTED = bytes(range(248, 256))
_pool: deque[str] = deque()


def _refill() -> None:
    chars = os.urandom(POOL_BYTES).translate(_BYTE_TO_CHAR, _REJECTED).decode()
    _pool.extend(chars[i : i + 12] for i in range(0, len(chars) - 11, 12))


def _forget_pool() -> None:
    _pool.clear()  # a forked child must not hand out the ids its parent will also hand out


os.register_at_fork(after_in_child=_forget_pool)


def room_arn(region: str, account: str, room_id: str) -> str:
    return f"arn:aws:ivschat:{region}:{account}:room/{room_id}"


def logging_configuration_arn(region: str, account: str, config_id: str) -> str:
    return f"arn:aws:ivschat:{region}:{account}:logging-configuration/{config_id}"


def parse_arn(arn: str) -> tuple[str, str] | None:
    """Return ``(kind, id)`` for an ivschat room or logging-configuration ARN, else None."""
    match = _ARN_RE.fullmatch(arn)
    if match is None:
        return None
    return match["kind"], match["id"]
