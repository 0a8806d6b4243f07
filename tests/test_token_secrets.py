"""Weak or placeholder secrets are refused outside ``parley dev``, and the token secret
can hold a rotation list (``PARLEY_TOKEN_SECRET=new,old``: sign with the first, accept any).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.admission import Admitted, ConnectionQuota, Rejection, admit
from parley import cli
from shared.config import MIN_TOKEN_SECRET_BYTES, Settings
from shared.engine.memory import MemoryStore
from shared.engine.records import RecordKind
from shared.protocol import tokens

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_700_000_000_000
STRONG = "kq3VJ8c1Zr0T-5wXyLm2pN7sAe4dUfGh9iBoCj6Ht0Q"  # secrets.token_urlsafe(32)
OTHER = "Xw8rT2mQ9vB4nK7cL1pZ5sD3fG6hJ0aE-yU_iO8tR2w"


def _problems(token_secret: str = STRONG, secret_access_key: str = "AnAccessKeySecret/0123456789") -> list[str]:
    settings = Settings(token_secret=token_secret, access_key_id="AKID", secret_access_key=secret_access_key)
    return settings.secret_problems(token=True, sigv4=True)


# --- validation -------------------------------------------------------------------------------
def test_a_strong_secret_and_a_strong_rotation_list_pass() -> None:
    assert _problems(STRONG) == []
    assert _problems(f"{STRONG},{OTHER}") == []
    assert _problems(f"{STRONG} , {OTHER}") == []  # spaces around entries are not part of a key


@pytest.mark.parametrize("secret", ["x", "s3cret", "a" * 31, "é" * 15])
def test_short_token_secrets_are_refused(secret: str) -> None:
    (problem,) = _problems(secret)
    assert "PARLEY_TOKEN_SECRET" in problem and f"at least {MIN_TOKEN_SECRET_BYTES} bytes" in problem
    assert "secrets.token_urlsafe(32)" in problem  # says how to fix it


def test_length_is_counted_in_bytes_and_32_is_enough() -> None:
    assert _problems("abcdefghijklmnopqrstuvwxyz012345") == []
    assert _problems("é" * 16 + "abcdefgh") == []  # 40 bytes, 24 characters


@pytest.mark.parametrize(
    "secret",
    ["change-me-token-secret", "change-me", "CHANGE-ME-to-something-long-enough-1234", "0" * 40, "abab" * 10],
)
def test_placeholder_and_degenerate_token_secrets_are_refused(secret: str) -> None:
    (problem,) = _problems(secret)
    assert "PARLEY_TOKEN_SECRET" in problem and "secrets.token_urlsafe(32)" in problem


def test_every_key_of_a_rotation_list_is_checked() -> None:
    (problem,) = _problems(f"{STRONG},short")
    assert "PARLEY_TOKEN_SECRET" in problem and "key 2 of 2" in problem
    (problem,) = _problems(f"{STRONG},,{OTHER}")
    assert "empty" in problem


def test_problems_never_contain_the_secret() -> None:
    for secret in ("tiny-secret-value", "change-me-please-keep-this-private-1234567", f"{STRONG},oldish-secret"):
        for problem in _problems(secret):
            for part in secret.split(","):
                assert part not in problem


def test_the_dev_and_shipped_sigv4_secrets_are_refused() -> None:
    for secret in (cli.DEV_SECRET_ACCESS_KEY, "change-me-secret-access-key"):
        (problem,) = _problems(secret_access_key=secret)
        assert "PARLEY_SECRET_ACCESS_KEY" in problem
    assert Settings(secret_access_key="parley-dev-secret").secret_problems(token=False, sigv4=False) == []


# --- rotation ---------------------------------------------------------------------------------
def _mint(key: bytes) -> str:
    token, _ = tokens.mint(
        key, room_id="room1", user_id="u", capabilities=[], attributes=None, now_ms=NOW, session_minutes=60
    )
    return token


def test_tokens_are_signed_with_the_first_key_and_verified_with_any() -> None:
    rotating = Settings(token_secret=f"{STRONG},{OTHER}")
    assert rotating.token_secret_bytes == STRONG.encode()
    assert rotating.token_keys == (STRONG.encode(), OTHER.encode())
    old_token = _mint(Settings(token_secret=OTHER).token_secret_bytes)  # minted before the rotation
    assert tokens.verify(rotating.token_keys, old_token, now_ms=NOW).room_id == "room1"
    assert tokens.verify(rotating.token_keys, _mint(rotating.token_secret_bytes), now_ms=NOW).user_id == "u"
    # the old key removed: its tokens no longer verify
    with pytest.raises(tokens.TokenError, match="signature"):
        tokens.verify(Settings(token_secret=STRONG).token_keys, old_token, now_ms=NOW)


def test_an_empty_entry_never_becomes_an_hmac_key() -> None:
    assert Settings(token_secret=f",{STRONG},").token_keys == (STRONG.encode(),)
    body = _mint(STRONG.encode()).split(".")[0]
    signed_with_nothing = f"{body}.{tokens._sign(b'', body)}"
    with pytest.raises(tokens.TokenError):
        tokens.verify(Settings(token_secret=f"{STRONG},").token_keys, signed_with_nothing, now_ms=NOW)
    with pytest.raises(ValueError):
        tokens.verify([STRONG.encode(), b""], signed_with_nothing, now_ms=NOW)
    with pytest.raises(ValueError):
        tokens.mint(b"", room_id="r", user_id="u", capabilities=[], attributes=None, now_ms=NOW, session_minutes=1)


async def test_the_gateway_admits_tokens_of_every_listed_key() -> None:
    store = MemoryStore()
    await store.records.create(RecordKind.ROOM, "room1", {"id": "room1"}, NOW, 100)
    keys = Settings(token_secret=f"{STRONG},{OTHER}").token_keys

    async def _admit(token: str, accepted: tuple[bytes, ...]) -> Admitted | Rejection:
        quota = ConnectionQuota(store, "gateway-connections", "gw", 5000)
        return await admit(store=store, secret=accepted, token=token, now_ms=NOW, quota=quota, max_connections=5)

    assert isinstance(await _admit(_mint(OTHER.encode()), keys), Admitted)
    refused = await _admit(_mint(OTHER.encode()), keys[:1])
    assert isinstance(refused, Rejection) and refused.reason == "invalid_token"


# --- the CLI ----------------------------------------------------------------------------------
def _run(command: str, token_secret: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    environ.update(
        PARLEY_TOKEN_SECRET=token_secret,
        PARLEY_ACCESS_KEY_ID="AKIDTEST",
        PARLEY_SECRET_ACCESS_KEY="a-real-looking-sigv4-secret-0123456789",
        # unreachable backends: a process that got past the checks fails fast instead of serving
        PARLEY_REDIS_URL="redis://127.0.0.1:1/0",
        PARLEY_AMQP_URL="amqp://guest:guest@127.0.0.1:1/",
        PARLEY_API_PORT="0",
        PARLEY_GATEWAY_PORT="0",
        PARLEY_METRICS_PORT="0",
    )
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "parley", command],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("command", ["api", "gateway"])
@pytest.mark.parametrize("secret", ["weak-token-secret", "change-me-token-secret"])
def test_api_and_gateway_refuse_to_start_with_a_weak_token_secret(command: str, secret: str) -> None:
    result = _run(command, secret)
    assert result.returncode != 0
    assert f"parley {command}: PARLEY_TOKEN_SECRET" in result.stderr
    assert "secrets.token_urlsafe(32)" in result.stderr
    assert secret not in result.stderr + result.stdout


def test_api_refuses_the_dev_sigv4_secret() -> None:
    result = _run("api", STRONG, PARLEY_SECRET_ACCESS_KEY=cli.DEV_SECRET_ACCESS_KEY)
    assert result.returncode != 0 and "PARLEY_SECRET_ACCESS_KEY" in result.stderr
    assert cli.DEV_SECRET_ACCESS_KEY not in result.stderr


def test_a_gateway_with_a_strong_rotation_list_gets_past_the_checks() -> None:
    # it then fails on the unreachable Redis, not on the secret
    result = _run("gateway", f"{STRONG},{OTHER}")
    assert "PARLEY_TOKEN_SECRET" not in result.stderr
