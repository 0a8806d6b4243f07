"""Process wiring shared by every ``parley`` subcommand."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import structlog

from shared.config import Settings
from shared.engine.bus import Bus
from shared.engine.store import Store

log = structlog.get_logger("parley")


def real_backends(settings: Settings) -> tuple[Store, Bus]:
    """Redis store and RabbitMQ/Redis bus, as every distributed process uses."""
    from shared.engine.amqp import AmqpRedisBus
    from shared.engine.redis.connect import RedisTarget
    from shared.engine.redis.store import RedisStore

    redis = RedisTarget.from_settings(settings)  # one server, or the master a Sentinel set names
    store = RedisStore(redis, settings.namespace)
    bus = AmqpRedisBus(
        settings.amqp_url,
        redis,
        settings.namespace,
        shards=settings.shards,
        prefetch=settings.router_prefetch,
        durable_actions=settings.durable_actions,
        # one client and one ordered pipeline for the store's writes and the bus's publishes: a
        # router's history, publish and done marks go out together and run in that order
        # (shared/engine/redis/pipeline.py)
        pipeline=store.pipeline,
        redis=store.redis,
        log_queue_max_bytes=settings.log_queue_max_bytes,
        queue_type=settings.amqp_queue_type,
    )
    return store, bus


async def serve_until_signal(start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
    """Run ``start``, wait for SIGINT/SIGTERM, then ``stop`` (graceful shutdown)."""
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    await start()
    await done.wait()
    log.info("shutting down")
    await stop()


def run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows)
        asyncio.run(main)
    else:
        uvloop.run(main)
