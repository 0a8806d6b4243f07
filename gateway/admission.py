"""The handshake decision: may this WebSocket upgrade become a chat connection?

Order of checks: a token is offered → its signature and connect-by time are good → its room
still exists → its user is not banned from the room (and is a member, if the room is members-only)
→ the account's connection quota has room →
the token was never used (consumed last, so a refusal for another reason does not burn it).

The quota is a slot reserved in the Store (:class:`ConnectionQuota`), held by the connection
until it is gone and given back on every way out: a refusal after reserving, a failed
handshake, a connection that never joins, the end of the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

import structlog
from websockets.exceptions import InvalidHeaderFormat
from websockets.headers import parse_subprotocol

from gateway.ports import GatewayStore
from shared.engine.records import Record, RecordKind
from shared.features import bans, membership
from shared.protocol import tokens

log = structlog.get_logger("gateway")

CLAIM_SLACK_MS = 60_000
# The account's connection quota is one group that every gateway and front reports its slots to.
CONNECTIONS_GROUP = "gateway-connections"
REPORT_INTERVAL_S = 1.0
REPORT_TTL_MS = 5000  # a process that stops reporting holds no slots this long after

Heartbeat = Callable[[], Awaitable[None]]


class ConnectionQuota:
    """This gateway's part of the account's concurrent-connection quota (PARLEY_MAX_CONNECTIONS),
    which every gateway shares through the Store: ``Counters.reserve`` takes a slot atomically, so
    the quota holds under any concurrency and on any number of gateways.

    ``held`` counts the reservations issued and not given back, those still waiting for their
    answer included; the gateway reports it every second (``Counters.report`` sets the store's
    value: that corrects it after a lost answer, and the deadline lets a crashed gateway's slots
    expire). Reports and reservations of one process take effect in call order (one pipeline),
    so a report issued after a reservation includes it and one issued before lands before it:
    a report never undoes a reservation the store may already have applied. A refused (or
    failed) reservation is un-counted when its answer comes, so until the next report the store
    may count one too many, never one too few.
    """

    def __init__(self, store: GatewayStore, group: str, member: str, ttl_ms: int) -> None:
        self.held = 0
        self._store = store
        self._group = group
        self._member = member
        self._ttl_ms = ttl_ms
        self._unreserving: set[asyncio.Future[None]] = set()
        self._heartbeat: Heartbeat | None = None
        self._reporter: asyncio.Task[None] | None = None

    # --- the report that keeps this process's slots live -----------------------------------------
    async def start_reporting(self, heartbeat: Heartbeat | None = None) -> None:
        """Report now, then every ``REPORT_INTERVAL_S`` until :meth:`stop_reporting`. ``heartbeat``
        (what else the process keeps alive on the same beat, e.g. its presence entries) runs first."""
        self._heartbeat = heartbeat
        await self.report()
        self._reporter = asyncio.create_task(self._report_forever(), name=f"{self._member}-quota-report")

    async def report(self) -> None:
        if self._heartbeat is not None:
            await self._heartbeat()
        await self._store.counters.report(self._group, self._member, self.held, self._ttl_ms)

    async def stop_reporting(self) -> None:
        """Stop, and give back every slot at once: a stopped process holds none."""
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter
        with contextlib.suppress(Exception):
            await self._store.counters.report(self._group, self._member, 0, 1)

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(REPORT_INTERVAL_S)
            try:
                await self.report()
            except Exception:  # the store is briefly unreachable: the next beat corrects it
                log.warning("connection count report failed", member=self._member, exc_info=True)

    # --- slots -------------------------------------------------------------------------------
    def reserve(self, limit: int) -> Reservation:
        """Ask for a slot now: the request goes out with whatever else this loop turn sends."""
        self.held += 1  # before the request exists: a report from now on includes it
        answer = asyncio.ensure_future(self._store.counters.reserve(self._group, self._member, limit, self._ttl_ms))
        return Reservation(self, answer)

    def _give_back(self, *, granted: bool) -> None:
        self.held -= 1
        if granted:  # issued with the decrement: a report that omits the slot lands after it
            self._background(self._store.counters.unreserve(self._group, self._member))

    def _background(self, pending: Awaitable[None]) -> None:
        task = asyncio.ensure_future(pending)
        self._unreserving.add(task)  # referenced until done
        task.add_done_callback(self._unreserved)

    def _unreserved(self, task: asyncio.Future[None]) -> None:
        self._unreserving.discard(task)
        if not task.cancelled():
            task.exception()  # a failure needs nothing more: the next report sets the store's value to ``held``


class Reservation:
    """One connection's slot, from its handshake until the connection is gone. ``release`` is
    idempotent and may come before the answer (the slot is then given back once granted)."""

    __slots__ = ("_answer", "_granted", "_quota", "_released")

    def __init__(self, quota: ConnectionQuota, answer: asyncio.Future[bool]) -> None:
        self._quota = quota
        self._answer = answer
        self._granted: bool | None = None  # None until the answer came
        self._released = False
        answer.add_done_callback(self._answered)

    def _answered(self, answer: asyncio.Future[bool]) -> None:
        self._granted = not answer.cancelled() and answer.exception() is None and answer.result()
        if not self._granted:
            self._quota._give_back(granted=False)
        elif self._released:
            self._quota._give_back(granted=True)

    async def granted(self) -> bool:
        """Whether the slot is ours; raises if the store failed (nothing is held then)."""
        return await asyncio.shield(self._answer)  # a cancelled handshake must not lose the answer

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._granted:
            self._quota._give_back(granted=True)


@dataclass(slots=True, frozen=True)
class Admitted:
    token: tokens.ChatToken
    room: Record  # the room's record as read at the handshake (what the connection starts with)
    reservation: Reservation  # the connection's quota slot: released when it is gone


@dataclass(slots=True, frozen=True)
class Rejection:
    status: HTTPStatus
    reason: str  # also the metric label: keep it a short fixed word
    detail: str


def offered_token(headers: Sequence[str]) -> str | None:
    """The chat token: the first ``Sec-WebSocket-Protocol`` value (the only one IVS SDKs offer).

    ``headers`` holds every such header of the request: RFC 6455 lets a client send several, which
    mean the same as one comma-joined header. They are parsed exactly as websockets parses them
    to pick the subprotocol it echoes (``_echo_subprotocol``), so the token admitted here is the
    one echoed; and a header websockets would refuse (400) offers no token, so it burns none.
    """
    offered: list[str] = []
    try:
        for header in headers:
            offered.extend(parse_subprotocol(header))
    except InvalidHeaderFormat:
        return None
    return offered[0] if offered else None


async def admit(
    *,
    store: GatewayStore,
    secret: tokens.Keys,  # one key or a rotation list (any verifies)
    token: str | None,
    now_ms: int,
    quota: ConnectionQuota,
    max_connections: int,
) -> Admitted | Rejection:
    if token is None:
        return Rejection(HTTPStatus.UNAUTHORIZED, "missing_token", "A chat token is required")
    try:
        claims = tokens.verify(secret, token, now_ms=now_ms)
    except tokens.TokenError as exc:
        return Rejection(HTTPStatus.UNAUTHORIZED, "invalid_token", str(exc))
    # the room and the user's ban in one round trip: every connect pays for this
    room, (banned,) = await store.get_with_claimed(
        RecordKind.ROOM, claims.room_id, [bans.ban_key(claims.room_id, claims.user_id)]
    )
    if room is None:
        return Rejection(HTTPStatus.NOT_FOUND, "room_not_found", "The token's room does not exist")
    if room.get("members_only") and not await membership.is_member(store.members, claims.room_id, claims.user_id):
        return Rejection(HTTPStatus.FORBIDDEN, "not_member", membership.NOT_A_MEMBER)
    if banned:
        return Rejection(HTTPStatus.FORBIDDEN, "banned", "The user is banned from this room")
    ttl = max(claims.token_expires_ms - now_ms, 0) + CLAIM_SLACK_MS
    token_key = f"token:{claims.token_id}"
    # The quota decides before the claim but goes out in the claim's round trip (every connect
    # pays for it): a quota refusal then gives the token back, a used token gives the slot back.
    reservation = quota.reserve(max_connections)
    try:
        claimed = await store.marks.claim(token_key, ttl)
        reserved = await reservation.granted()
    except BaseException:
        reservation.release()
        raise
    if not reserved:
        if claimed:
            await store.marks.release(token_key)  # a refusal for the quota must not burn the token
        return Rejection(HTTPStatus.SERVICE_UNAVAILABLE, "quota", "Concurrent connection quota reached")
    if not claimed:
        reservation.release()
        return Rejection(HTTPStatus.UNAUTHORIZED, "token_used", "This chat token was already used")
    return Admitted(claims, room, reservation)
