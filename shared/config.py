"""Configuration: one frozen :class:`Settings`, read from ``PARLEY_*`` environment variables.

Every variable, its default and its meaning is listed in the README's contract table.
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


@dataclass(frozen=True, slots=True)
class Settings:
    region: str = "us-east-1"
    account_id: str = "123456789012"
    access_key_id: str = ""
    secret_access_key: str = ""
    token_secret: str = ""

    redis_url: str = "redis://127.0.0.1:6379/0"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    namespace: str = "parley"  # prefix of every Redis key, channel, exchange and queue

    api_host: str = "127.0.0.1"
    api_port: int = 8081
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    gateway_id: str = field(default_factory=lambda: secrets.token_hex(4))
    metrics_port: int = 0  # 0: no separate metrics listener (the api serves /metrics itself)
    metrics_host: str = "127.0.0.1"  # the PARLEY_METRICS_PORT listener's address (0.0.0.0 in containers)

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
    presence_ttl_seconds: float = 10.0  # a dead gateway's connections leave presence within this
    # parley extensions (issue 6): client events, idle timeout, connection approval
    event_rate_per_second: int = 5  # SEND_EVENT and PING per connection, apart from the messaging quota
    idle_timeout: float = 0.0  # seconds without a client frame or pong before close 4003; 0 = off
    approval_timeout: float = 60.0  # seconds a connection to an approvalRequired room may wait; then close 4004
    # Web chat demo (api/demo): token vending without credentials, so never on by default; `parley dev` enables it.
    demo: bool = False
    demo_gateway_url: str = ""  # ws URL the demo page connects to (default: this host, gateway_port)

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
    def token_secret_bytes(self) -> bytes:
        if not self.token_secret:
            raise RuntimeError("PARLEY_TOKEN_SECRET must be set (the api and every gateway share it)")
        return self.token_secret.encode()
