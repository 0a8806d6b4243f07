"""End-to-end throughput of REVIEWED messages in distributed mode.

Starts ``parley api``, a ``parley gateway``, N ``parley router`` and M ``parley reviewer``
processes on the real RabbitMQ and Redis (a throwaway namespace), plus a fast local HTTP review
handler in its own process (ALLOW, content prefixed with ``ok:``, so a reviewed delivery is told
apart from a fallback one). Creates ``--rooms`` rooms using that handler (or a ``parley:``
built-in with ``--handler``), lifts their message rate cap, then drives senders at a target rate
spread over the rooms, with one receiver per room.

Prints one JSON object: offered and reviewed-delivered messages/s, fallbacks, errors, lost
messages, and send→receive latency percentiles (ms, from the frame's SendTime).

    .venv/bin/python bench/review_e2e.py --rate 1000 --seconds 10 --rooms 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time

from bench.room_e2e import count_errors, lift_rate_cap, percentile, print_result, send_paced
from parley.testing.chatclient import ChatClient
from parley.testing.cluster import BENCH_ENV, free_port, running_cluster, throwaway_settings, wait_http
from shared.clock import now_ms
from shared.protocol.timestamps import parse_iso

MARK = "ok:"


def serve_handler(port: int) -> None:
    """The review handler process: as fast as aiohttp allows, so the pipeline is what's measured."""
    from aiohttp import web

    async def review(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"ReviewResult": "ALLOW", "Content": MARK + body["Content"]})

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/review", review)
    app.router.add_get("/healthz", health)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def run(args: argparse.Namespace) -> dict[str, object]:
    settings = throwaway_settings(args.shards)
    handler_port = free_port()
    handler = subprocess.Popen([sys.executable, __file__, "--serve-handler", str(handler_port)])
    stack = contextlib.ExitStack()
    try:
        wait_http(f"http://127.0.0.1:{handler_port}/healthz")
        uri = args.handler or f"http://127.0.0.1:{handler_port}/review"
        cluster = stack.enter_context(
            running_cluster(settings, args.redis_url, args.amqp_url, gateways=1, routers=args.routers, **BENCH_ENV)
        )
        for n in range(args.reviewers):
            cluster.start(f"reviewer{n}", "reviewer")
        ivschat = cluster.ivschat()
        rooms = []
        for n in range(args.rooms):
            room = ivschat.create_room(
                name=f"bench{n}",
                maximumMessageRatePerSecond=100,
                messageReviewHandler={"uri": uri, "fallbackResult": "DENY"},
            )
            await lift_rate_cap(settings, args.redis_url, args.amqp_url, room["id"], 1_000_000)
            rooms.append(room)

        def token(room: dict[str, str], user: str, caps: list[str]) -> str:
            return ivschat.create_chat_token(roomIdentifier=room["arn"], userId=user, capabilities=caps)["token"]

        senders = [await ChatClient.open(cluster.ws_url("gwA"), token(r, "s", ["SEND_MESSAGE"])) for r in rooms]
        receivers = [await ChatClient.open(cluster.ws_url("gwA"), token(r, "r", [])) for r in rooms]
        await asyncio.sleep(1.0)

        latencies: list[float] = []
        reviewed = [0] * len(receivers)
        fallbacks = [0]
        errors: dict[int, int] = {}
        stop_reading = asyncio.Event()

        async def read(index: int, client: ChatClient) -> None:
            while not stop_reading.is_set():
                try:
                    frame = json.loads(await asyncio.wait_for(client.ws.recv(), 0.5))
                except TimeoutError:
                    continue
                if frame["Type"] == "MESSAGE":
                    if frame["Content"].startswith(MARK):
                        reviewed[index] += 1
                    else:
                        fallbacks[0] += 1
                    latencies.append(now_ms() - parse_iso(frame["SendTime"]))

        readers = [asyncio.create_task(read(i, c)) for i, c in enumerate(receivers)]
        readers += [asyncio.create_task(count_errors(c, stop_reading, errors)) for c in senders]

        sent, started = await send_paced(senders, args.rate, args.seconds)
        send_seconds = time.perf_counter() - started
        tail_deadline = time.perf_counter() + 15
        while sum(reviewed) + fallbacks[0] + sum(errors.values()) < sent and time.perf_counter() < tail_deadline:
            await asyncio.sleep(0.1)
        total_seconds = time.perf_counter() - started
        stop_reading.set()
        await asyncio.gather(*readers)
        for client in senders + receivers:
            await client.close()
        return {
            "handler": "http" if not args.handler else args.handler,
            "rooms": len(rooms),
            "routers": args.routers,
            "reviewers": args.reviewers,
            "offered_msgs_per_s": round(sent / send_seconds),
            "sent": sent,
            "reviewed_delivered": sum(reviewed),
            "reviewed_msgs_per_s": round(sum(reviewed) / total_seconds),
            "fallback_delivered": fallbacks[0],
            "errors_by_code": errors,  # 406 here = fallback DENY (no verdict in time)
            "lost": sent - sum(reviewed) - fallbacks[0] - sum(errors.values()),
            "latency_ms_p50": round(percentile(latencies, 50), 1),
            "latency_ms_p95": round(percentile(latencies, 95), 1),
            "latency_ms_p99": round(percentile(latencies, 99), 1),
        }
    finally:
        stack.close()  # the cluster (and its namespace) first, then the handler
        handler.terminate()
        handler.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=1000, help="offered messages per second, over all rooms")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--routers", type=int, default=1)
    parser.add_argument("--reviewers", type=int, default=1)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--handler", default="", help="a handler URI instead of the local HTTP one (parley:allow)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--serve-handler", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_handler:
        serve_handler(args.serve_handler)
        return
    print_result(run(args))


if __name__ == "__main__":
    main()
