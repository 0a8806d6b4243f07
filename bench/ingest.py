"""Max SendMessage ingest in distributed mode: how many messages/s the cluster accepts and
delivers when many rooms each get a steady stream.

Starts ``parley api``, 2 gateways and 2 routers on the real RabbitMQ and Redis (a throwaway
namespace), creates ``--rooms`` rooms at IVS's maximum rate (100 msg/s), and runs ``--procs``
generator processes; each holds one sender connection per room it drives (connections alternate
between the gateways) and sends at its share of ``--rate``. Only the sender is in each room, so
deliveries equal accepted messages and the figure is the ingest path (gateway parse + publish,
broker, router decide + fan-out publish, echo). The generator reads frames without JSON-decoding
the echoes (it matches bytes), to keep itself out of the measurement as far as it can.

    .venv/bin/python bench/ingest.py --rooms 100 --rate 10000 --seconds 10 --procs 2

Prints JSON: offered/s, accepted/s (echoes), errors by code, latency p50/p99 from SendTime.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time


def _generate(urls_tokens: list[tuple[str, str]], rate: float, seconds: float, out: multiprocessing.Queue) -> None:
    import uvloop
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.typing import Subprotocol

    from shared.clock import now_ms
    from shared.protocol.timestamps import parse_iso

    async def run() -> dict[str, object]:
        conns = [
            await connect(url, subprotocols=[Subprotocol(token)], max_queue=None, compression=None)
            for url, token in urls_tokens
        ]
        echoes = 0
        errors: dict[str, int] = {}
        latencies: list[float] = []
        done = asyncio.Event()

        async def read(ws: ClientConnection) -> None:
            nonlocal echoes
            n = 0
            while not done.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(decode=True), 0.5)  # the gateway sends text frames
                except TimeoutError:
                    continue
                if raw.startswith('{"Type":"MESSAGE"'):
                    echoes += 1
                    n += 1
                    if n % 50 == 0:  # sample latency without decoding every frame
                        latencies.append(now_ms() - parse_iso(json.loads(raw)["SendTime"]))
                elif raw.startswith('{"Type":"ERROR"'):
                    code = str(json.loads(raw)["ErrorCode"])
                    errors[code] = errors.get(code, 0) + 1

        readers = [asyncio.create_task(read(ws)) for ws in conns]
        payloads = [json.dumps({"Action": "SEND_MESSAGE", "Content": f"m{i}"}) for i in range(64)]
        sent = 0
        start = time.perf_counter()
        while (now := time.perf_counter()) - start < seconds:
            due = int((now - start) * rate)
            while sent < due:
                await conns[sent % len(conns)].send(payloads[sent % 64])
                sent += 1
            await asyncio.sleep(0.002)
        send_time = time.perf_counter() - start
        deadline = time.perf_counter() + 10
        while echoes + sum(errors.values()) < sent and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        total_time = time.perf_counter() - start
        done.set()
        await asyncio.gather(*readers)
        for ws in conns:
            ws.transport.abort()
        return {
            "sent": sent,
            "send_time": send_time,
            "total_time": total_time,
            "echoes": echoes,
            "errors": errors,
            "latencies": latencies,
        }

    out.put(uvloop.run(run()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--routers", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()

    from bench.room_e2e import percentile
    from parley.testing.cluster import BENCH_ENV, running_cluster, throwaway_settings

    settings = throwaway_settings(16)
    with running_cluster(
        settings, args.redis_url, args.amqp_url, gateways=2, routers=args.routers, **BENCH_ENV
    ) as cluster:
        ivschat = cluster.ivschat()
        work: list[tuple[str, str]] = []
        for i in range(args.rooms):
            room = ivschat.create_room(name=f"r{i}", maximumMessageRatePerSecond=100)
            token = ivschat.create_chat_token(roomIdentifier=room["arn"], userId=f"u{i}", capabilities=["SEND_MESSAGE"])
            work.append((cluster.ws_url("gwA" if i % 2 else "gwB"), token["token"]))
        time.sleep(1)
        out: multiprocessing.Queue = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(
                target=_generate, args=(work[p :: args.procs], args.rate / args.procs, args.seconds, out)
            )
            for p in range(args.procs)
        ]
        for proc in procs:
            proc.start()
        results = [out.get(timeout=args.seconds + 60) for _ in procs]
        for proc in procs:
            proc.join()
        sent = sum(r["sent"] for r in results)
        echoes = sum(r["echoes"] for r in results)
        errors: dict[str, int] = {}
        for r in results:
            for code, n in r["errors"].items():
                errors[code] = errors.get(code, 0) + n
        latencies = [x for r in results for x in r["latencies"]]
        total_time = max(r["total_time"] for r in results)

        def pct(p: float) -> float:
            return round(percentile(latencies, p), 1) if latencies else -1

        print(
            json.dumps(
                {
                    "rooms": args.rooms,
                    "procs": args.procs,
                    "routers": args.routers,
                    "offered_per_s": round(sent / max(r["send_time"] for r in results)),
                    "accepted_per_s": round(echoes / total_time),
                    "sent": sent,
                    "echoes": echoes,
                    "unanswered": sent - echoes - sum(errors.values()),
                    "errors_by_code": errors,
                    "latency_ms_p50": pct(50),
                    "latency_ms_p99": pct(99),
                }
            )
        )


if __name__ == "__main__":
    main()
