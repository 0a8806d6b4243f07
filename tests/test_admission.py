"""The handshake decision (gateway.admission) without sockets: each refusal, its HTTP status
and metric reason, and which refusals leave the single-use token unspent."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from gateway.admission import Admitted, Rejection, admit
from shared import bans, tokens
from shared.memory import MemoryStore
from shared.store import ROOM

SECRET = b"admission-test-secret"
NOW = 1_700_000_000_000


def _token(room_id: str = "room1", user_id: str = "u1") -> str:
    token, _ = tokens.mint(
        SECRET,
        room_id=room_id,
        user_id=user_id,
        capabilities=["SEND_MESSAGE"],
        attributes=None,
        now_ms=NOW,
        session_minutes=60,
    )
    return token


@pytest.fixture
async def store() -> MemoryStore:
    store = MemoryStore()
    await store.create(ROOM, "room1", {"id": "room1", "name": "lobby"}, NOW, limit=10)
    return store


async def _admit(store: MemoryStore, token: str | None, in_use: int = 0) -> Admitted | Rejection:
    return await admit(
        store=store, secret=SECRET, token=token, now_ms=NOW, connections_in_use=in_use, max_connections=5
    )


async def test_a_good_token_is_admitted_with_its_room_once(store: MemoryStore) -> None:
    token = _token()
    admitted = await _admit(store, token)
    assert isinstance(admitted, Admitted)
    assert admitted.token.user_id == "u1" and admitted.room["name"] == "lobby"
    again = await _admit(store, token)
    assert isinstance(again, Rejection) and (again.status, again.reason) == (HTTPStatus.UNAUTHORIZED, "token_used")


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("missing", HTTPStatus.UNAUTHORIZED, "missing_token"),
        ("forged", HTTPStatus.UNAUTHORIZED, "invalid_token"),
        ("no_room", HTTPStatus.NOT_FOUND, "room_not_found"),
        ("banned", HTTPStatus.FORBIDDEN, "banned"),
        ("quota", HTTPStatus.SERVICE_UNAVAILABLE, "quota"),
    ],
)
async def test_refusals_and_the_token_survives_them(
    store: MemoryStore, case: str, status: HTTPStatus, reason: str
) -> None:
    token = _token("gone" if case == "no_room" else "room1")
    offered: str | None = {"missing": None, "forged": token[:-2] + "xx"}.get(case, token)
    if case == "banned":
        await bans.ban(store, "room1", "u1", 60_000)
    result = await _admit(store, offered, in_use=5 if case == "quota" else 0)
    assert isinstance(result, Rejection) and (result.status, result.reason) == (status, reason)
    if case in ("banned", "quota"):  # a refusal for another reason must not burn the token
        await bans.unban(store, "room1", "u1")
        assert isinstance(await _admit(store, token), Admitted)
