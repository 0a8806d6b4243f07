"""Identifiers: 12-character ``[A-Za-z0-9]`` ids (IVS's Id12) and ivschat ARNs."""

from __future__ import annotations

import re
import secrets

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ID_SPACE = 62**12
ID12_RE = re.compile(r"^[a-zA-Z0-9]{12}$")
_ARN_RE = re.compile(
    r"^arn:aws:ivschat:(?P<region>[a-z0-9-]+):(?P<account>[0-9]+):"
    r"(?P<kind>room|logging-configuration)/(?P<id>[a-zA-Z0-9-]+)$"
)


def new_id() -> str:
    """A fresh random Id12. 62**12 ≈ 3e21 values, so ids never repeat in practice.

    Clients de-duplicate frames by Id for the whole session, so every frame needs one
    that was never used before (a per-connection counter would not do).
    """
    value = secrets.randbelow(_ID_SPACE)
    chars = []
    for _ in range(12):
        value, digit = divmod(value, 62)
        chars.append(_ALPHABET[digit])
    return "".join(chars)


def room_arn(region: str, account: str, room_id: str) -> str:
    return f"arn:aws:ivschat:{region}:{account}:room/{room_id}"


def logging_configuration_arn(region: str, account: str, config_id: str) -> str:
    return f"arn:aws:ivschat:{region}:{account}:logging-configuration/{config_id}"


def parse_arn(arn: str) -> tuple[str, str] | None:
    """Return ``(kind, id)`` for an ivschat room or logging-configuration ARN, else None."""
    match = _ARN_RE.match(arn)
    if match is None:
        return None
    return match["kind"], match["id"]
