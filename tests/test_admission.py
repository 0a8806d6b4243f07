"""The handshake decision (gateway.admission) without sockets: each refusal, its HTTP status
and metric reason, and which refusals leave the single-use token unspent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from http import HTTPStatus

import pytest

from gateway.admission import Admitted, ConnectionQuota, Rejection, admit
from shared.engine.memory import MemoryStore
from shared.engine.memory.counters import MemoryCounters
from shared.engine.records import RecordKind
from shared.features import bans
from shared.protocol import tokens

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
    await store.records.create(RecordKind.ROOM, "room1", {"id": "room1", "name": "lobby"}, NOW, limit=10)
    return store


GROUP = "gateway-connections"


def _quota(store: MemoryStore) -> ConnectionQuota:
    return ConnectionQuota(store, GROUP, "gw", 5000)


async def _admit(
    store: MemoryStore, token: str | None, in_use: int = 0, quota: ConnectionQuota | None = None
) -> Admitted | Rejection:
    await store.counters.report(GROUP, "other-gateway", in_use, 5000)  # the slots other gateways hold
    return await admit(
        store=store, secret=SECRET, token=token, now_ms=NOW, quota=quota or _quota(store), max_connections=5
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
        await bans.ban(store.marks, "room1", "u1", 60_000)
    result = await _admit(store, offered, in_use=5 if case == "quota" else 0)
    assert isinstance(result, Rejection) and (result.status, result.reason) == (status, reason)
    if case in ("banned", "quota"):  # a refusal for another reason must not burn the token
        await bans.unban(store.marks, "room1", "u1")
        assert isinstance(await _admit(store, token), Admitted)


# --- the connection quota: a slot reserved in the store, given back on every refusal ------------
async def test_admission_holds_a_slot_until_released(store: MemoryStore) -> None:
    quota = _quota(store)
    admitted = [await _admit(store, _token(user_id=f"u{n}"), in_use=3, quota=quota) for n in range(3)]
    assert [type(a) for a in admitted] == [Admitted, Admitted, Rejection]  # 3 + 2 = 5
    assert (quota.held, await store.counters.reports(GROUP)) == (2, {"other-gateway": 3, "gw": 2})
    first = admitted[0]
    assert isinstance(first, Admitted)
    first.reservation.release()
    first.reservation.release()  # once only
    await asyncio.sleep(0)
    assert (quota.held, (await store.counters.reports(GROUP))["gw"]) == (1, 1)
    assert isinstance(await _admit(store, _token(user_id="later"), in_use=3, quota=quota), Admitted)


async def test_a_used_token_gives_its_reserved_slot_back(store: MemoryStore) -> None:
    quota, token = _quota(store), _token()
    assert isinstance(await _admit(store, token, quota=quota), Admitted)
    for _ in range(10):
        refused = await _admit(store, token, in_use=3, quota=quota)
        assert isinstance(refused, Rejection) and refused.reason == "token_used"
    await asyncio.sleep(0)
    assert (quota.held, (await store.counters.reports(GROUP))["gw"]) == (1, 1)


async def test_concurrent_admissions_take_exactly_the_free_slots(store: MemoryStore) -> None:
    quota = _quota(store)
    await store.counters.report(GROUP, "other-gateway", 2, 5000)
    results = await asyncio.gather(
        *(
            admit(store=store, secret=SECRET, token=_token(user_id=f"u{n}"), now_ms=NOW, quota=quota, max_connections=5)
            for n in range(20)
        )
    )
    reasons = sorted(r.reason if isinstance(r, Rejection) else "admitted" for r in results)
    assert reasons == ["admitted"] * 3 + ["quota"] * 17
    assert quota.held == 3


async def test_a_reservation_released_before_its_answer_still_comes_back(store: MemoryStore) -> None:
    quota = _quota(store)
    reservation = quota.reserve(5)
    reservation.release()  # e.g. the handshake was cancelled while the store answered
    assert await reservation.granted() is True
    await asyncio.sleep(0)
    assert (quota.held, await store.counters.reports(GROUP)) == (0, {"gw": 0})


class _ReserveFails(MemoryCounters):
    def reserve(self, group: str, member: str, limit: int, ttl_ms: int) -> Awaitable[bool]:
        return self._lose(super().reserve(group, member, limit, ttl_ms))  # applied, but its answer is lost

    async def _lose(self, answer: Awaitable[bool]) -> bool:
        await answer
        raise ConnectionError("store unreachable")


async def test_a_lost_reservation_answer_is_not_counted_and_burns_no_slot_for_good() -> None:
    store = MemoryStore()
    store.counters = _ReserveFails()
    await store.records.create(RecordKind.ROOM, "room1", {"id": "room1"}, NOW, limit=10)
    quota = _quota(store)
    with pytest.raises(ConnectionError):
        await admit(store=store, secret=SECRET, token=_token(), now_ms=NOW, quota=quota, max_connections=5)
    await asyncio.sleep(0)
    assert quota.held == 0  # the store over-counts ("gw": 1) until the gateway's next report of ``held``
    await store.counters.report(GROUP, "gw", quota.held, 5000)
    assert await store.counters.reports(GROUP) == {"gw": 0}


async def test_a_report_sent_while_a_reservation_is_in_flight_counts_it(store: MemoryStore) -> None:
    """The gateway reports ``held`` every second and the report sets the store's value: it must
    include a reservation issued before it, whose answer has not come yet."""
    quota = _quota(store)
    reservation = quota.reserve(5)
    await store.counters.report(GROUP, "gw", quota.held, 5000)
    assert await reservation.granted() is True
    assert (await store.counters.reports(GROUP))["gw"] == 1
