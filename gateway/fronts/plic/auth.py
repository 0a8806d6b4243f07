"""Supabase-style access tokens: HS256 JWTs signed with ``PARLEY_PLIC_JWT_SECRET``.

Owns: checking a token (signature in constant time by PyJWT's ``hmac.compare_digest``, ``exp``
required and checked, ``sub`` the user id). Must not log the token or the secret.
"""

from __future__ import annotations

import jwt

MAX_TOKEN_LENGTH = 8192
MAX_SUB_LENGTH = 128


class InvalidToken(Exception):
    pass


def user_of(token: str, secret: str) -> str:
    """The token's ``sub``; :class:`InvalidToken` if it is malformed, badly signed or expired."""
    if not secret:
        raise InvalidToken("the plic front has no PARLEY_PLIC_JWT_SECRET")
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("missing or oversized token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["exp", "sub"], "verify_aud": False},
            leeway=5,
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(type(error).__name__) from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUB_LENGTH:
        raise InvalidToken("sub must be a user id")
    return sub


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header ('' when absent)."""
    if not header:
        return ""
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
