"""Chat tokens: what CreateChatToken mints and a gateway checks at the WebSocket handshake.

A token is ``base64url(claims).base64url(HMAC-SHA256(secret, claims))`` with no padding, so it
is a valid ``Sec-WebSocket-Protocol`` value (RFC 7230 token characters only). Claims carry
everything a gateway needs to admit the connection without a store lookup except the two that
must be shared: single use (``jti``, consumed atomically in the Store) and the room still
existing. Forging or altering a token requires the server secret.

Key rotation: tokens are signed with one key and verified against a list (``verify`` takes
``new, old``), so a gateway keeps admitting tokens minted with the old key while it is listed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

TOKEN_LIFETIME_MS = 60_000  # a token can be used to connect for 60 s after minting (spec §1.3)
_MAX_TOKEN_CHARS = 8192

Keys: TypeAlias = bytes | Sequence[bytes]  # one key, or a rotation list (any of them verifies)


class Capability(StrEnum):
    SEND_MESSAGE = "SEND_MESSAGE"
    DELETE_MESSAGE = "DELETE_MESSAGE"
    DISCONNECT_USER = "DISCONNECT_USER"
    SEND_EVENT = "SEND_EVENT"  # parley extension (not in IVS's enum): client events over the socket


IVS_CAPABILITIES = (Capability.SEND_MESSAGE, Capability.DELETE_MESSAGE, Capability.DISCONNECT_USER)
EXTENSION_CAPABILITIES = (Capability.SEND_EVENT,)


class TokenError(Exception):
    """The token cannot open a connection (bad format, bad signature or expired)."""


@dataclass(slots=True, frozen=True)
class ChatToken:
    token_id: str  # jti: consumed on first use
    room_id: str
    user_id: str
    capabilities: frozenset[str]
    attributes: dict[str, str] = field(default_factory=dict)
    token_expires_ms: int = 0
    session_expires_ms: int = 0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())


def verification_keys(keys: Keys) -> tuple[bytes, ...]:
    """``keys`` as a tuple; an empty list or an empty key is a configuration error, never a key."""
    found = (keys,) if isinstance(keys, bytes) else tuple(keys)
    if not found or not all(found):
        raise ValueError("chat token keys must be non-empty")
    return found


def _signed_by_any(keys: tuple[bytes, ...], body: str, signature: str) -> bool:
    # every key is tried, no early exit: the time taken tells neither whether nor which key matched
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(_sign(key, body), signature)
    return matched


def mint(
    secret: bytes,
    *,
    room_id: str,
    user_id: str,
    capabilities: list[str],
    attributes: dict[str, str] | None,
    now_ms: int,
    session_minutes: int,
) -> tuple[str, ChatToken]:
    if not secret:
        raise ValueError("the chat token signing key must be non-empty")
    claims = ChatToken(
        token_id=_b64(secrets.token_bytes(16)),
        room_id=room_id,
        user_id=user_id,
        capabilities=frozenset(capabilities),
        attributes=dict(attributes or {}),
        token_expires_ms=now_ms + TOKEN_LIFETIME_MS,
        session_expires_ms=now_ms + session_minutes * 60_000,
    )
    body = _b64(
        json.dumps(
            [
                claims.token_id,
                claims.room_id,
                claims.user_id,
                sorted(claims.capabilities),
                claims.attributes,
                claims.token_expires_ms,
                claims.session_expires_ms,
            ],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
    )
    return f"{body}.{_sign(secret, body)}", claims


def verify(keys: Keys, token: str, *, now_ms: int) -> ChatToken:
    """Check signature (by any of ``keys``) and connect-by time. Does not consume the token
    (see Store.consume_token)."""
    accepted = verification_keys(keys)
    if len(token) > _MAX_TOKEN_CHARS or token.count(".") != 1:
        raise TokenError("malformed token")
    body, signature = token.split(".")
    if not _signed_by_any(accepted, body, signature):
        raise TokenError("invalid token signature")
    try:
        token_id, room_id, user_id, caps, attributes, token_exp, session_exp = json.loads(_unb64(body))
    except (ValueError, TypeError):
        raise TokenError("malformed token") from None
    if now_ms > token_exp:
        raise TokenError("token expired")
    if now_ms > session_exp:
        raise TokenError("session expired")
    return ChatToken(token_id, room_id, user_id, frozenset(caps), attributes, token_exp, session_exp)
