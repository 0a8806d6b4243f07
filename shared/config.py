"""Configuration: one frozen :class:`Settings`, read from ``PARLEY_*`` environment variables.

Every variable, its default and its meaning is listed in the README's contract table.

Secrets are checked where a production process starts (:meth:`Settings.secret_problems`, called
by ``parley api|gateway``), not when Settings is built: ``parley dev`` and the tests use short ones.
``PARLEY_TOKEN_SECRET`` may hold a comma-separated rotation list (``new,old``), so a comma can never
be part of a token key.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, replace
from typing import Any


def _env(name: str, default: Any) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


# A chat token is handed to every end user, who can then try keys offline against its HMAC:
# the key must be long and random, like the 32 bytes secrets.token_urlsafe(32) draws.
MIN_TOKEN_SECRET_BYTES = 32
_MIN_DISTINCT_CHARS = 8  # "0000…" or "abab…" is long but not random
_GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
# Values printed in docs, deploy/ or by `parley dev` are public, so never secrets.
_PLACEHOLDER_MARKS = ("change-me", "changeme", "change_me", "replace-me", "placeholder")
_PUBLISHED_DEFAULTS = frozenset({"parley-dev-secret"})  # parley dev's SigV4 secret (parley/cli.py)


def _is_published(secret: str) -> bool:
    lowered = secret.lower()
    return lowered in _PUBLISHED_DEFAULTS or any(mark in lowered for mark in _PLACEHOLDER_MARKS)


def _token_key_entries(value: str) -> list[str]:
    # spaces around a comma are not part of a key ("new, old" is two keys)
    return [entry.strip() for entry in value.split(",")]


def _token_key_weakness(key: str) -> str | None:
    """Why ``key`` must not sign chat tokens, or None. Never quotes the key."""
    if _is_published(key):
        return "is a placeholder or a published default"
    size = len(key.encode())
    if size < MIN_TOKEN_SECRET_BYTES:
        return f"is too short ({size} bytes; at least {MIN_TOKEN_SECRET_BYTES} bytes needed)"
    if len(set(key)) < _MIN_DISTINCT_CHARS:
        return f"has fewer than {_MIN_DISTINCT_CHARS} distinct characters (not random)"
    return None


def _token_secret_problems(value: str) -> list[str]:
    fix = f"generate one with: {_GENERATE} (the api and every gateway must share it)"
    entries = _token_key_entries(value)
    if not any(entries):
        return [f"PARLEY_TOKEN_SECRET must be set; {fix}"]
    problems = []
    if not all(entries):
        problems.append("PARLEY_TOKEN_SECRET has an empty entry (a rotation list is comma-separated: new,old)")
    for number, entry in enumerate(entries, 1):
        weakness = _token_key_weakness(entry) if entry else None
        if weakness:
            which = f" (key {number} of {len(entries)})" if len(entries) > 1 else ""
            problems.append(f"PARLEY_TOKEN_SECRET{which} {weakness}; {fix}")
    return problems


def _sigv4_secret_problems(value: str) -> list[str]:
    if not value:
        return ["PARLEY_SECRET_ACCESS_KEY must be set"]
    if _is_published(value):
        return [
            "PARLEY_SECRET_ACCESS_KEY is a placeholder or parley dev's published default; "
            f"set a secret of your own, e.g. {_GENERATE}"
        ]
    return []


def _host_ports(name: str, value: str) -> tuple[list[tuple[str, int]], list[str]]:
    """``host:port,host:port`` (``[v6]:port`` too) as pairs, and what is wrong with its entries."""
    nodes: list[tuple[str, int]] = []
    problems: list[str] = []
    for entry in (part.strip() for part in value.split(",")):
        host, colon, port = entry.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not entry or not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(f"{name} entry {entry!r} is not host:port (a comma-separated list, e.g. sentinel-1:26379)")
        else:
            nodes.append((host, int(port)))
    return nodes, problems


@dataclass(frozen=True, slots=True)
class Settings:
    region: str = "us-east-1"
    account_id: str = "123456789012"
    access_key_id: str = ""
    secret_access_key: str = ""
    token_secret: str = ""

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis Sentinel (both or neither): the sentinels, host:port,..., and the master name they
    # monitor. The master's address then comes from them on every connect (PARLEY_REDIS_URL's
    # host:port is unused; its db, username and password are the master's).
    redis_sentinels: str = ""
    redis_sentinel_master: str = ""
    redis_sentinel_password: str = ""  # the sentinels' own requirepass, if they have one (never logged)
    # Redis Cluster: PARLEY_REDIS_URL names one seed node; the rest is discovered. A room's keys
    # and channel share a hash slot; fan-out is sharded pub/sub (shared/engine/redis/keys.py).
    redis_cluster: bool = False
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"  # or several nodes, comma-separated, tried in turn
    # quorum (replicated, RabbitMQ 3.10+/4.x) or classic: every durable queue of the namespace;
    # it cannot change on an existing namespace without a drain (shared/engine/amqp/queues.py)
    amqp_queue_type: str = "quorum"
    namespace: str = "parley"  # prefix of every Redis key, channel, exchange and queue

    api_host: str = "127.0.0.1"
    api_port: int = 8081
    # Control-plane read bounds (api/limits.py), so slow or silent clients cannot pile up open sockets.
    # A connection must finish each request head within api_header_timeout of connecting or of its previous
    # response (aiohttp runs one timer for both, so this is also the idle keep-alive limit); a body must finish
    # within api_body_timeout of its head. Both > 0. The cap counts open connections per client IP (0 = no cap).
    api_header_timeout: float = 10.0
    api_body_timeout: float = 30.0
    api_max_connections_per_client: int = 128
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    gateway_id: str = field(default_factory=lambda: secrets.token_hex(4))
    # Seed protocol fronts (gateway/fronts): one port each; 0 keeps that front off in `parley dev`.
    front_host: str = "127.0.0.1"
    # The aiohttp fronts' (groupschat, plic) read bounds, as api_* above (shared/http_limits.py). Their
    # own knobs, not api_*'s: the fronts face end users (a WebSocket per device, many behind one NAT or
    # balancer address), the control plane a few app servers, so the per-IP cap wants its own size.
    front_header_timeout: float = 10.0
    front_body_timeout: float = 30.0
    front_max_connections_per_client: int = 128
    line_port: int = 8090  # seed 000, line-oriented TCP
    relay_port: int = 8091  # seed 001, connection-id WebSocket relay
    relay_admin_key: str = ""  # seed 001: the dashboard key that makes a connection admin ("" = nobody)
    relay_create_rooms: bool = False  # seed 001: an unknown app name creates its room (true in `parley dev`)
    groupschat_port: int = 8093  # seed 003, groups-chat HTTP + WebSocket
    plic_port: int = 8094  # seed 004, PLIC-Chat HTTP + WebSocket
    # line front (seed 000): its one parley room's per-user inboxes and message rate (set when
    # the room is first created; later changes go through UpdateRoom/UpdateRoomExtensions)
    line_inbox_max_messages: int = 200
    line_inbox_max_age_seconds: int = 7 * 86_400
    line_room_message_rate: int = 1000
    # accounts (shared.features.accounts): login attempts per minute, per username and per address
    login_attempts_per_user: int = 10
    login_attempts_per_address: int = 60
    plic_jwt_secret: str = ""  # HS256 key of the Supabase-style JWTs the plic front accepts (never logged)
    plic_max_rooms_per_user: int = 500  # rooms one plic user may participate in (GET /rooms, subscriptions)
    plic_max_participants: int = 100  # participants of one plic room
    groupschat_jwt_secret: str = ""  # seed 003: HS256 key of the tokens POST /login issues (never logged)
    groupschat_token_ttl_seconds: int = 86_400  # seed 003: a login token's exp
    groupschat_session_ttl_seconds: int = 86_400  # seed 003: a messaging_url is accepted this long
    groupschat_events_max: int = 500  # seed 003: per-user event log bound (events kept for offline users)
    groupschat_events_max_age_seconds: int = 7 * 86_400  # seed 003: ... and its age bound
    # seed 003: a connection saves its delivered-up-to cursor after this many events, or this long
    # after the first unsaved one, whichever comes first (a front crash re-delivers at most that)
    groupschat_cursor_save_events: int = 32
    groupschat_cursor_save_ms: int = 1000
    groupschat_max_group_members: int = 100  # seed 003: members of one group
    groupschat_max_groups_per_user: int = 500  # seed 003: groups one user is in (subscriptions at connect)
    metrics_port: int = 0  # 0: no separate metrics listener (the api serves /metrics itself)
    metrics_host: str = "127.0.0.1"  # the PARLEY_METRICS_PORT listener's address (0.0.0.0 in containers)
    # false: /metrics only on PARLEY_METRICS_PORT, an unknown path on the api and gateway ports; true: on those too
    metrics_public: bool = True

    shards: int = 16  # action queues; rooms hash onto them, each has one active router
    router_prefetch: int = 256
    # false: actions are transient broker messages (no fsync per confirm; lost if RabbitMQ restarts)
    durable_actions: bool = True

    # Chat logs (logger_sink): where file destinations live, batch bounds, queue bound, retry cap.
    log_dir: str = "./var/logs"
    log_batch_seconds: float = 1.0
    log_batch_records: int = 1000
    log_batch_bytes: int = 1 << 20
    log_prefetch: int = 5000  # unacked deliveries per sink; bounds its memory
    log_queue_max_bytes: int = 1 << 30  # RabbitMQ x-max-length-bytes of {ns}.logs; every process must agree
    log_retry_max_seconds: float = 30.0  # exponential backoff cap for a failing destination
    log_spool_max_bytes: int = 1 << 30  # S3 objects parked on local disk while the bucket is unreachable

    max_rooms: int = 50_000
    max_connections: int = 50_000
    max_logging_configurations: int = 10
    max_send_buffer: int = 1 << 20  # bytes queued for a socket that stopped reading before it is dropped
    max_frame_bytes: int = 8192  # larger client frames get ERROR 413; 1 MiB and up close with 1009
    connection_rate_per_second: int = 10  # messaging requests per connection (IVS quota, not adjustable)
    # Account-wide messaging rates over all rooms (IVS quotas, adjustable): each of N routers
    # enforces 1/N, so a room-skewed load can be refused a little early.
    account_send_message_rate: int = 1000
    account_delete_message_rate: int = 100
    account_disconnect_user_rate: int = 100
    api_throttling: bool = True  # per-operation TPS limits of IVS (spec §10)
    ping_interval: float = 30.0
    # After a lost Redis pub/sub subscription a gateway refills each room's gap from its history:
    # at most this many messages, none older than this (gateway/gapfill.py).
    gap_fill_max_messages: int = 500
    gap_fill_max_age_seconds: int = 300
    presence_ttl_seconds: float = 10.0  # a dead gateway's connections leave presence within this
    # parley extensions: client events, idle timeout, connection approval
    event_rate_per_second: int = 5  # SEND_EVENT and PING per connection, apart from the messaging quota
    idle_timeout: float = 0.0  # seconds without a client frame or pong before close 4003; 0 = off
    approval_timeout: float = 60.0  # seconds an approvalRequired connection may wait, then 4004; 0 = no deadline
    # Web chat demo (api/demo): token vending without credentials, so never on by default; `parley dev` enables it.
    demo: bool = False
    demo_gateway_url: str = ""  # ws URL the demo page connects to (default: this host, gateway_port)
    # Loopback/private CIDRs rooms' review handler URLs may reach, comma-separated
    # (shared/address_policy.py); empty: public addresses only. `parley dev` defaults it to loopback.
    review_allowed_networks: str = ""

    log_level: str = "info"
    log_json: bool = True

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        defaults = cls()
        for f in fields(cls):
            values[f.name] = _env(f"PARLEY_{f.name.upper()}", getattr(defaults, f.name))
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def token_keys(self) -> tuple[bytes, ...]:
        """PARLEY_TOKEN_SECRET as chat token keys, comma-separated while rotating (``new,old``):
        tokens are signed with the first, any of them verifies. Empty entries are skipped, so an
        empty string never becomes an HMAC key."""
        keys = tuple(entry.encode() for entry in _token_key_entries(self.token_secret) if entry)
        if not keys:
            raise RuntimeError("PARLEY_TOKEN_SECRET must be set (the api and every gateway share it)")
        return keys

    @property
    def token_secret_bytes(self) -> bytes:
        """The key new chat tokens are signed with: the first of :attr:`token_keys`."""
        return self.token_keys[0]

    @property
    def redis_sentinel_nodes(self) -> tuple[tuple[str, int], ...]:
        """PARLEY_REDIS_SENTINELS as (host, port) pairs; () without Sentinel. Raises ValueError
        with :meth:`redis_problems` when the Sentinel settings are not usable."""
        problems = self.redis_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return tuple(_host_ports("PARLEY_REDIS_SENTINELS", self.redis_sentinels)[0]) if self.redis_sentinels else ()

    def redis_problems(self) -> list[str]:
        """Why the Redis Sentinel or Cluster settings are not usable: one Sentinel setting without
        the other, a PARLEY_REDIS_SENTINELS entry that is not host:port, Sentinel and Cluster
        both, or (with Cluster) a namespace with braces, which would move the keys' hash tag."""
        if self.redis_cluster:
            problems = []
            if self.redis_sentinels.strip() or self.redis_sentinel_master.strip():
                problems.append("PARLEY_REDIS_CLUSTER and PARLEY_REDIS_SENTINELS are exclusive: choose one")
            if "{" in self.namespace or "}" in self.namespace:
                problems.append("PARLEY_NAMESPACE must not contain '{' or '}' with PARLEY_REDIS_CLUSTER")
            if problems:
                return problems
        if bool(self.redis_sentinels.strip()) != bool(self.redis_sentinel_master.strip()):
            return ["PARLEY_REDIS_SENTINELS and PARLEY_REDIS_SENTINEL_MASTER must be set together (or neither)"]
        if not self.redis_sentinels.strip():
            return (
                ["PARLEY_REDIS_SENTINEL_PASSWORD is set without PARLEY_REDIS_SENTINELS"]
                if self.redis_sentinel_password
                else []
            )
        return _host_ports("PARLEY_REDIS_SENTINELS", self.redis_sentinels)[1]

    def secret_problems(self, *, token: bool, sigv4: bool) -> list[str]:
        """Why these settings must not serve production: a weak, placeholder or malformed
        PARLEY_TOKEN_SECRET (``token``) or a published PARLEY_SECRET_ACCESS_KEY (``sigv4``).
        Each message names the variable and the fix, never the value."""
        problems = _token_secret_problems(self.token_secret) if token else []
        if sigv4:
            problems += _sigv4_secret_problems(self.secret_access_key)
        return problems
