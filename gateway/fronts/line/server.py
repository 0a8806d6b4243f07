"""The ``line`` front (seed 000): a TCP listener, one command per line, replies per the codec.

Owns: the sockets, each connection's session (the ``auth`` token, connection-local as the seed's
commands carry no token), its command rate, the session's presence entry (under this process's
holder, kept alive by a heartbeat, so ``show`` lists every replica's users), and the order of
work per command: one command at a time per connection, so a client that never reads its
replies only fills its own send buffer (dropped past ``PARLEY_MAX_SEND_BUFFER``).

Must not: parse or render the protocol (``codec``), decide message rules (the router: a ``send``
is a SEND_MESSAGE ``ActionEnvelope`` with ``recipient``), or log a line's text or a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import uuid
from dataclasses import dataclass, field

import structlog

from gateway.admission import CONNECTIONS_GROUP, REPORT_TTL_MS, ConnectionQuota
from gateway.fronts.line import codec
from gateway.fronts.line.room import LineRoom
from gateway.ports import GatewayBus, GatewayStore
from shared import metrics
from shared.clock import now_ms
from shared.config import Settings
from shared.features import accounts, bans, inbox
from shared.features.accounts import Account, LoginResult
from shared.features.ratelimit import SlidingWindow
from shared.protocol.envelope import ActionEnvelope, ClientProtocol, Kind
from shared.protocol.ids import new_id

log = structlog.get_logger("gateway.line")

SEND_TIMEOUT_S = 10.0
READ_CHUNK = 16 * 1024


@dataclass(slots=True, eq=False)  # hashed by identity: kept in a set
class _Connection:
    connection_id: str
    ip: str
    writer: asyncio.StreamWriter
    rate: SlidingWindow
    account: Account | None = None
    token: str = ""  # the session id of ``account``'s login
    splitter: codec.LineSplitter = field(default_factory=codec.LineSplitter)


class LineFront:
    def __init__(self, settings: Settings, store: GatewayStore, bus: GatewayBus) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.front_id = f"line-{settings.gateway_id}-{secrets.token_hex(4)}"
        self.holder = self.front_id  # presence holder: one per process incarnation
        self.room = LineRoom(settings, store, bus, self.front_id, on_disconnect=self._disconnect_user)
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._ttl_ms = max(int(settings.presence_ttl_seconds * 1000), 2000)
        # the account's PARLEY_MAX_CONNECTIONS, shared with the gateways (gateway.admission)
        self.quota = ConnectionQuota(store, CONNECTIONS_GROUP, self.front_id, REPORT_TTL_MS)

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self, port: int | None = None) -> None:
        await self.room.start()
        await self.quota.start_reporting(heartbeat=self._keep_presence)
        self._server = await asyncio.start_server(
            self._handle, self.settings.front_host, self.settings.line_port if port is None else port, backlog=4096
        )
        log.info("line front listening", front_id=self.front_id, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.writer.close()  # the seed has no shutdown notice: the connection ends
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        await self.quota.stop_reporting()
        with contextlib.suppress(Exception):
            await self.store.presence.refresh(self.holder, 1)  # every session here leaves presence
        await self.room.stop()

    async def _keep_presence(self) -> None:
        """Keep this process's presence entries alive (on the connection quota's beat)."""
        if not await self.store.presence.refresh(self.holder, self._ttl_ms):
            for conn in list(self._connections):  # swept as dead meanwhile: record them again
                if conn.account is not None:
                    await self._add_presence(conn, conn.account)

    # --- one connection ----------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        conn = _Connection(
            new_id(), peer[0] if peer else "", writer, SlidingWindow(self.settings.connection_rate_per_second)
        )
        reservation = self.quota.reserve(self.settings.max_connections)
        try:
            if not await reservation.granted():
                metrics.CONNECT_REJECTIONS.labels("quota").inc()
                self._write(conn, codec.error("too many connections; try again later"))
                return
            self._connections.add(conn)
            metrics.connection_opened(ClientProtocol.LINE)
            try:
                await self._serve(conn, reader)
            finally:
                metrics.connection_closed(ClientProtocol.LINE)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("line connection failed")
        finally:
            reservation.release()
            self._connections.discard(conn)
            await self._end_session(conn)
            writer.close()

    async def _serve(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        idle = self.settings.idle_timeout or None  # PARLEY_IDLE_TIMEOUT, as on the gateway (0: off)
        while not conn.writer.is_closing():
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), idle)
            except TimeoutError:
                self._write(conn, codec.error("idle timeout; connection closed"))
                return
            if not data:
                return
            for line in conn.splitter.feed(data):
                self._write(conn, await self._answer(conn, line))

    def _write(self, conn: _Connection, reply: bytes | None) -> None:
        """The gateway's send policy: never wait for a client; one that stopped reading is dropped."""
        transport = conn.writer.transport
        if reply is None or transport.is_closing():
            return
        if transport.get_write_buffer_size() > self.settings.max_send_buffer:
            metrics.SLOW_CONSUMER_DISCONNECTS.inc()
            transport.abort()
            return
        transport.write(reply)

    async def _answer(self, conn: _Connection, line: bytes | codec.TooLong) -> bytes | None:
        if isinstance(line, codec.TooLong):
            return codec.error(f"lines must be at most {codec.MAX_LINE} bytes")
        command = codec.parse(line)
        if command is None:
            return None
        if not conn.rate.allow(now_ms()):
            return codec.error(f"too many commands: at most {conn.rate.limit} per second per connection")
        if isinstance(command, codec.Bad):
            return codec.error(command.reason)
        try:
            return await self._command(conn, command)
        except Exception:
            log.exception("line command failed", command=command.name.value)
            return codec.error("the chat service could not answer; try again")

    async def _command(self, conn: _Connection, command: codec.Command) -> bytes:
        if command.name is codec.Name.AUTH:
            return await self._auth(conn, *command.args)
        account = conn.account
        if account is None:
            return codec.reply(codec.NOT_AUTHORIZED)
        if command.name is codec.Name.SEND:
            return await self._send(conn, account, *command.args)
        if command.name is codec.Name.INBOX:
            return await self._inbox(account)
        if command.name is codec.Name.SHOW:
            return await self._show()
        token = conn.token
        await self._end_session(conn)
        return codec.logged_out(token)

    async def _auth(self, conn: _Connection, username: str, password: str) -> bytes:
        result, account = await accounts.login(
            self.store,
            username,
            password,
            conn.ip,
            per_user=self.settings.login_attempts_per_user,
            per_address=self.settings.login_attempts_per_address,
        )
        if result is LoginResult.NO_USER:
            return codec.reply(codec.NO_SUCH_USER)
        if result is LoginResult.BAD_PASSWORD:
            return codec.reply(codec.WRONG_PASSWORD)
        if result is LoginResult.THROTTLED or account is None:
            return codec.error("too many login attempts; try again in a minute")
        room = await self.room.record()
        if await bans.is_banned(self.store.marks, room["id"], account.user_id):  # BanUser on the line room
            return codec.error("you are banned from this chat")
        await self._end_session(conn)  # a second auth replaces the connection's session
        conn.account, conn.token = account, str(uuid.uuid4())
        await self._add_presence(conn, account)
        return codec.logged_in(account.username, conn.token)

    async def _send(self, conn: _Connection, account: Account, username_to: str, message: str) -> bytes:
        recipient = await accounts.get_account(self.store.records, username_to)
        if recipient is None:
            return codec.reply(codec.RECIPIENT_NOT_FOUND)
        room = await self.room.record()
        action = ActionEnvelope(
            kind=Kind.SEND_MESSAGE,
            protocol=ClientProtocol.LINE,
            frame_id=new_id(),
            room_id=room["id"],
            received_ms=now_ms(),
            request_id=new_id(),
            gateway_id=self.front_id,
            connection_id=conn.connection_id,
            user_id=account.user_id,
            user_attributes=_sender_attributes(account),
            ip=conn.ip,
            content=message,
            recipient=recipient.user_id,
        )
        refused = await self.room.send(action, SEND_TIMEOUT_S)
        if refused is not None:
            return codec.error(refused)
        return codec.message_sent(username_to)

    async def _inbox(self, account: Account) -> bytes:
        room = await self.room.record()
        taken = await inbox.take(
            self.store.history,
            room["id"],
            account.user_id,
            int(room.get("history_max_messages", self.settings.line_inbox_max_messages)),
            int(room.get("history_max_age_seconds", self.settings.line_inbox_max_age_seconds)) * 1000,
        )
        entries = [entry for _, frame in taken if (entry := codec.received(frame)) is not None]
        # a line client receives its direct messages here, when it reads its inbox
        metrics.count_deliveries(ClientProtocol.LINE, Kind.SEND_MESSAGE, len(entries))
        return codec.inbox(entries, account.display_name)

    async def _show(self) -> bytes:
        room = await self.room.record()
        online = [
            codec.Online(token, attributes.get("username", user_id), _detail(attributes))
            for token, user_id, attributes in await self.store.presence.list(room["id"])
        ]
        online.sort(key=lambda user: (user.username, user.token))
        return codec.show(online)

    # --- sessions and presence ---------------------------------------------------------------
    def _disconnect_user(self, user_id: str) -> None:
        """DisconnectUser/BanUser on the line room: that user's sessions here end, connections close."""
        for conn in list(self._connections):
            if conn.account is not None and conn.account.user_id == user_id:
                self._write(conn, codec.error("disconnected by a moderator"))
                conn.writer.close()  # the handler's finally ends the session

    async def _add_presence(self, conn: _Connection, account: Account) -> None:
        room = await self.room.record()
        await self.store.presence.add(room["id"], conn.token, self.holder, account.user_id, _sender_attributes(account))

    async def _end_session(self, conn: _Connection) -> None:
        if conn.account is None:
            return
        token, conn.account, conn.token = conn.token, None, ""
        try:
            await self.store.presence.remove(self.room.room_id, token)
        except Exception:
            log.warning("removing line presence failed", exc_info=True)


def _sender_attributes(account: Account) -> dict[str, str]:
    """What other clients see of a line user (IVS ``Sender.Attributes``, presence)."""
    return {**account.attributes, "username": account.username}


def _detail(attributes: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in attributes.items() if key != "username"}
