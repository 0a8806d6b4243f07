"""groups-chat login tokens: HS256 JWTs ``{exp, user_id}`` signed with ``PARLEY_GROUPSCHAT_JWT_SECRET``.

Owns issuing and checking them (signature compared in constant time by PyJWT, ``exp`` required).
Must not log a token or the secret.
"""

from __future__ import annotations

import time

import jwt

MAX_TOKEN_LENGTH = 4096


class InvalidToken(Exception):
    pass


def issue(user_id: str, secret: str, ttl_seconds: int) -> str:
    return jwt.encode({"exp": int(time.time()) + ttl_seconds, "user_id": user_id}, secret, algorithm="HS256")


def user_of(token: str, secret: str) -> str:
    if not secret:
        raise InvalidToken("no PARLEY_GROUPSCHAT_JWT_SECRET")
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("missing or oversized token")
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "user_id"]}, leeway=5)
    except jwt.PyJWTError as error:
        raise InvalidToken(type(error).__name__) from None
    user_id = claims.get("user_id")
    if not isinstance(user_id, str) or not 0 < len(user_id) <= 128:
        raise InvalidToken("user_id must be a user id")
    return user_id


def bearer(header: str | None) -> str:
    """The token of an ``authorization: bearer <token>`` header ('' when absent)."""
    if not header:
        return ""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
