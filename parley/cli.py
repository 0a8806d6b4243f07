"""``parley dev | api | gateway | front | router | reviewer`` — see the README's contract table for flags and env."""

from __future__ import annotations

import argparse
import os
import secrets
import sys

import structlog

from gateway import fronts
from parley.embedded import Node
from parley.runtime import real_backends, run, serve_until_signal
from shared.address_policy import LOOPBACK_NETWORKS
from shared.config import Settings
from shared.engine.amqp.queues import QueueMismatch, parse_queue_type
from shared.engine.memory import MemoryBus, MemoryStore
from shared.logs import configure_logging

log = structlog.get_logger("parley")

DEV_ACCESS_KEY_ID = "AKIDPARLEYDEV"
DEV_SECRET_ACCESS_KEY = "parley-dev-secret"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="parley", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    dev = sub.add_parser("dev", help="every component in one process, in memory, no servers needed")
    dev.add_argument("--api-port", type=int, default=None)
    dev.add_argument("--gateway-port", type=int, default=None)
    dev.add_argument("--no-demo", action="store_true", help="do not serve the web chat demo on the api port")
    api = sub.add_parser("api", help="the control plane (IVS REST API)")
    api.add_argument("--port", type=int, default=None)
    api.add_argument("--demo", action="store_true", help="serve the web chat demo (no auth: never in production)")
    gateway = sub.add_parser("gateway", help="a WebSocket gateway")
    gateway.add_argument("--port", type=int, default=None)
    gateway.add_argument("--id", default=None, help="gateway id (default: random)")
    front = sub.add_parser("front", help="a seed protocol front (a gateway speaking another chat system's protocol)")
    front.add_argument("name", choices=fronts.names())
    front.add_argument("--port", type=int, default=None)
    sub.add_parser("router", help="a router (consumes its share of the action shards)")
    sub.add_parser("logger", help="a logger sink (writes chat logs to the rooms' logging configurations)")
    from logger_sink import readback

    readback.add_arguments(sub.add_parser("logs", help="print a room's chat log, in order, as JSON lines"))
    from parley import users

    users.add_arguments(sub.add_parser("users", help="chat accounts of the seed fronts: users add <username>"))
    sub.add_parser("reviewer", help="a message reviewer (calls rooms' review handlers for the routers)")
    from parley import loadtest

    loadtest.add_arguments(sub.add_parser("loadtest", help="drive simulated chat clients through running gateways"))
    return parser


def _metrics(settings: Settings) -> None:
    """The PARLEY_METRICS_PORT listener (every command but loadtest/logs) when that is set."""
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=settings.metrics_host)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "loadtest":
        from parley import loadtest

        loadtest.main(args)
        return
    settings = Settings.from_env()
    # A newcomer's `make run` reads logs in a terminal: readable lines unless JSON is asked for.
    log_json = settings.log_json and (args.command != "dev" or "PARLEY_LOG_JSON" in os.environ)
    configure_logging(settings.log_level, log_json)
    if args.command == "logs":
        from logger_sink import readback

        sys.exit(readback.run(args, settings))
    if args.command == "users":
        from parley import users

        sys.exit(users.run(args, settings))

    if args.command == "dev":
        settings = settings.with_(
            access_key_id=settings.access_key_id or DEV_ACCESS_KEY_ID,
            secret_access_key=settings.secret_access_key or DEV_SECRET_ACCESS_KEY,
            token_secret=settings.token_secret or secrets.token_urlsafe(32),
            demo=not args.no_demo,  # the web chat demo is on in dev only; `parley api` needs --demo/PARLEY_DEMO
            # A handler on this machine is the usual dev setup; production allows only what the operator lists.
            review_allowed_networks=settings.review_allowed_networks or LOOPBACK_NETWORKS,
            # seed 001 relay: apps are created on first use in dev (PARLEY_RELAY_CREATE_ROOMS=false to refuse)
            relay_create_rooms=os.environ.get("PARLEY_RELAY_CREATE_ROOMS", "true").strip().lower()
            not in ("0", "false", "no", "off"),
            relay_admin_key=settings.relay_admin_key or secrets.token_urlsafe(24),  # printed below
            # seed 003 groupschat: tokens from POST /login are signed with this (a fresh one per dev run)
            groupschat_jwt_secret=settings.groupschat_jwt_secret or secrets.token_urlsafe(32),
        )
        _metrics(settings)  # with PARLEY_METRICS_PUBLIC=false this listener is the only /metrics
        # every front whose port is not 0
        dev_fronts = [name for name in fronts.names() if fronts.setting_port(settings, name)]
        node = Node(
            settings, MemoryStore(), MemoryBus(settings.shards), router_all_shards=True, logger=True, fronts=dev_fronts
        )

        async def start() -> None:
            await node.start(api_port=args.api_port, gateway_port=args.gateway_port)
            assert node.api is not None and node.gateway is not None
            print(
                f"parley dev: control plane http://{settings.api_host}:{node.api.port}  "
                f"chat ws://{settings.gateway_host}:{node.gateway.port}\n"
                f"  SigV4 keys: PARLEY_ACCESS_KEY_ID={settings.access_key_id} "
                f"PARLEY_SECRET_ACCESS_KEY={settings.secret_access_key} region={settings.region}",
                file=sys.stderr,
                flush=True,
            )
            for name, started in node.fronts.items():
                print(f"  front {name}: port {started.port}", file=sys.stderr, flush=True)
            if "relay" in node.fronts:
                print(
                    f"  relay admin key: PARLEY_RELAY_ADMIN_KEY={settings.relay_admin_key}", file=sys.stderr, flush=True
                )
            if settings.demo:
                print(f"  web chat demo: http://{settings.api_host}:{node.api.port}/", file=sys.stderr, flush=True)

        run(serve_until_signal(start, node.stop))
        return

    needs = {
        "api": ("token_secret", "access_key_id", "secret_access_key"),
        "gateway": ("token_secret",),
        "front": ("token_secret",),
    }
    for required in needs.get(args.command, ()):
        if not getattr(settings, required):
            sys.exit(f"parley {args.command}: PARLEY_{required.upper()} must be set")
    # refuse to serve on a guessable secret: exit before any listener or backend connection
    problems = settings.secret_problems(token=args.command in ("api", "gateway", "front"), sigv4=args.command == "api")
    problems += settings.redis_problems()
    if problems:
        sys.exit("\n".join(f"parley {args.command}: {problem}" for problem in problems))
    try:
        parse_queue_type(settings.amqp_queue_type)
    except ValueError as exc:
        sys.exit(f"parley {args.command}: {exc}")
    if args.command == "api" and args.demo:
        settings = settings.with_(demo=True)
    if args.command == "gateway" and args.id:
        settings = settings.with_(gateway_id=args.id)
    _metrics(settings)
    store, bus = real_backends(settings)
    node = Node(
        settings,
        store,
        bus,
        api=args.command == "api",
        gateway=args.command == "gateway",
        router=args.command == "router",
        logger=args.command == "logger",
        reviewer=args.command == "reviewer",
        fronts=[args.name] if args.command == "front" else (),
    )
    port = getattr(args, "port", None)
    front_ports = {args.name: port} if args.command == "front" and port is not None else None

    async def start_one() -> None:
        await node.start(api_port=port, gateway_port=port, front_ports=front_ports)
        log.info("started", component=args.command, front=getattr(args, "name", None))

    try:
        run(serve_until_signal(start_one, node.stop))
    except QueueMismatch as exc:  # a restart cannot fix it: say what to change, once, and stop
        sys.exit(f"parley {args.command}: {exc}")


if __name__ == "__main__":
    main()
