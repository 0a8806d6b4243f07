"""What one load test run is asked to do: :class:`Options`, its bounds, and the CLI flags that fill it.

Owns: ``parley loadtest``'s flags (:func:`add_arguments`), their validation and the SigV4 keys from
the environment (:func:`options_from_args`). Must not: open connections or resolve names."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

MAX_DURATION_S = 3600.0
SETUP_TIMEOUT_S = 300.0


@dataclass
class Options:
    api: str = "http://127.0.0.1:8081"
    gateways: list[str] = field(default_factory=lambda: ["ws://127.0.0.1:8080"])
    clients: int = 100
    rooms: int = 10
    rate: float = 100.0  # SEND_MESSAGE per second, all senders together
    duration: float = 10.0
    senders: int = 0  # 0: enough that each sends at most 5/s (the per-connection quota is 10/s)
    room_rate: int = 100  # the rooms' maximumMessageRatePerSecond (IVS allows 1-100)
    message_bytes: int = 32
    connect_concurrency: int = 200
    drain: float = 5.0
    latency_clients: int = 0  # 0: every client measures latency; N: only the first N clients
    keep_rooms: bool = False
    allow_remote: bool = False
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"
    progress: bool = True
    procs: int = 1  # worker processes sharing the clients and the rate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=Options.api, help="control-plane URL (default %(default)s)")
    parser.add_argument(
        "--gateway",
        action="append",
        dest="gateways",
        help="gateway ws:// URL; repeat for several (default ws://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--clients", type=int, default=Options.clients, help="WebSocket connections (default %(default)s)"
    )
    parser.add_argument(
        "--rooms", type=int, default=Options.rooms, help="rooms the clients spread over (default %(default)s)"
    )
    parser.add_argument(
        "--rate", type=float, default=Options.rate, help="SEND_MESSAGE/s in total (default %(default)s)"
    )
    parser.add_argument(
        "--duration", type=float, default=Options.duration, help=f"seconds of sending (max {MAX_DURATION_S:.0f})"
    )
    parser.add_argument("--senders", type=int, default=0, help="sending clients (default: enough for <= 5 msg/s each)")
    parser.add_argument("--room-rate", type=int, default=Options.room_rate, help="rooms' maximumMessageRatePerSecond")
    parser.add_argument("--message-bytes", type=int, default=Options.message_bytes)
    parser.add_argument("--connect-concurrency", type=int, default=Options.connect_concurrency)
    parser.add_argument("--drain", type=float, default=Options.drain, help="seconds to wait for the tail after sending")
    parser.add_argument(
        "--latency-clients", type=int, default=0, help="only the first N clients time messages (0: all)"
    )
    parser.add_argument("--keep-rooms", action="store_true", help="do not delete the rooms afterwards")
    parser.add_argument("--allow-remote", action="store_true", help="allow non-loopback targets")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no per-second progress line")
    parser.add_argument(
        "--procs",
        type=int,
        default=Options.procs,
        help="worker processes sharing the clients and the rate, each with its own event loop (default 1)",
    )


def options_from_args(args: argparse.Namespace) -> Options:
    access_key = os.environ.get("PARLEY_ACCESS_KEY_ID") or os.environ.get("AWS_ACCESS_KEY_ID", "")
    secret_key = os.environ.get("PARLEY_SECRET_ACCESS_KEY") or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    if not access_key or not secret_key:
        raise SystemExit(
            "parley loadtest: set PARLEY_ACCESS_KEY_ID and PARLEY_SECRET_ACCESS_KEY (the api's SigV4 keys)"
        )
    if args.procs < 1:
        raise SystemExit("parley loadtest: --procs must be >= 1")
    if args.duration <= 0 or args.duration > MAX_DURATION_S:
        raise SystemExit(f"parley loadtest: --duration must be in (0, {MAX_DURATION_S:.0f}]")
    return Options(
        api=args.api,
        gateways=args.gateways or ["ws://127.0.0.1:8080"],
        clients=args.clients,
        rooms=args.rooms,
        rate=args.rate,
        duration=args.duration,
        senders=args.senders,
        room_rate=args.room_rate,
        message_bytes=args.message_bytes,
        connect_concurrency=args.connect_concurrency,
        drain=args.drain,
        latency_clients=args.latency_clients,
        keep_rooms=args.keep_rooms,
        allow_remote=args.allow_remote,
        access_key=access_key,
        secret_key=secret_key,
        region=os.environ.get("PARLEY_REGION") or os.environ.get("AWS_REGION", "us-east-1"),
        progress=not args.no_progress,
        procs=args.procs,
    )
