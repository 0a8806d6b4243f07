"""Chat tokens: signed, tamper-evident, time-bounded, valid subprotocol values."""

from __future__ import annotations

import re

import pytest

from shared.protocol import tokens

SECRET = b"s3cret"
NOW = 1_700_000_000_000
RFC7230_TOKEN = re.compile(r"^[!#$%&'*+\-.0-9A-Z^_`|a-z~]+$")


def _mint(**overrides: object) -> tuple[str, tokens.ChatToken]:
    args: dict[str, object] = dict(
        room_id="abcDEF123456",
        user_id="ü ser/1",
        capabilities=["SEND_MESSAGE"],
        attributes={"displayName": "Zoë"},
        now_ms=NOW,
        session_minutes=60,
    )
    args.update(overrides)
    return tokens.mint(SECRET, **args)  # type: ignore[arg-type]


def test_round_trip_and_subprotocol_safe() -> None:
    token, claims = _mint()
    assert RFC7230_TOKEN.match(token)
    verified = tokens.verify(SECRET, token, now_ms=NOW + 1000)
    assert verified == claims
    assert verified.user_id == "ü ser/1" and verified.attributes == {"displayName": "Zoë"}
    assert verified.token_expires_ms == NOW + 60_000
    assert verified.session_expires_ms == NOW + 3_600_000


def test_each_mint_is_unique() -> None:
    assert _mint()[1].token_id != _mint()[1].token_id


@pytest.mark.parametrize("position", [0, 5, -3])
def test_tampering_is_detected(position: int) -> None:
    token, _ = _mint()
    chars = list(token)
    chars[position] = "A" if chars[position] != "A" else "B"
    with pytest.raises(tokens.TokenError):
        tokens.verify(SECRET, "".join(chars), now_ms=NOW)


def test_wrong_secret_and_garbage_are_refused() -> None:
    token, _ = _mint()
    with pytest.raises(tokens.TokenError):
        tokens.verify(b"other", token, now_ms=NOW)
    for garbage in ("", "abc", "a.b.c", "x" * 10000):
        with pytest.raises(tokens.TokenError):
            tokens.verify(SECRET, garbage, now_ms=NOW)


def test_expired_token_is_refused() -> None:
    token, _ = _mint()
    tokens.verify(SECRET, token, now_ms=NOW + 60_000)
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(SECRET, token, now_ms=NOW + 60_001)


def test_any_key_of_a_rotation_list_verifies() -> None:
    token, claims = _mint()
    assert tokens.verify([b"new-key", SECRET], token, now_ms=NOW) == claims
    assert tokens.verify((SECRET,), token, now_ms=NOW) == claims
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify([b"new-key", b"other"], token, now_ms=NOW)
    for no_keys in ([], [b""], b""):
        with pytest.raises(ValueError):
            tokens.verify(no_keys, token, now_ms=NOW)
