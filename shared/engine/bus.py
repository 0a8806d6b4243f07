"""The ``Bus``: how components hand work and frames to each other, one interface per path.

Four paths, each with its own guarantee (see its module):

- ``actions`` (:class:`~shared.engine.actions.Actions`): gateways and the control plane →
  routers; at least once, in order per shard.
- ``fanout`` (:class:`~shared.engine.fanout.Fanout`): routers → gateways on room and gateway
  channels, and control notices to every process; at most once.
- ``reviews`` (:class:`~shared.engine.review_rpc.ReviewRpc`): router → any reviewer → that
  router; request/reply, at most once, with a deadline.
- ``logs`` (:class:`~shared.engine.logstream.LogStream`): routers → the logger sink; at least
  once, one durable stream.

A ``Bus`` holds one engine's four paths and their shared lifecycle. Engines:
``shared.engine.memory.MemoryBus`` (embedded mode) and ``shared.engine.amqp.AmqpRedisBus``
(RabbitMQ for actions, reviews and logs; Redis pub/sub for fan-out). Both pass the
``tests/test_engine_*.py`` conformance suites. Components declare the paths they use as
Protocols in their own ``ports`` module, so they take any ``Bus``.
"""

from __future__ import annotations

from shared.engine.actions import Actions
from shared.engine.fanout import Fanout
from shared.engine.logstream import LogStream
from shared.engine.review_rpc import ReviewRpc


class Bus:
    actions: Actions
    fanout: Fanout
    reviews: ReviewRpc
    logs: LogStream

    def __init__(self, actions: Actions, fanout: Fanout, reviews: ReviewRpc, logs: LogStream) -> None:
        self.actions = actions
        self.fanout = fanout
        self.reviews = reviews
        self.logs = logs

    async def start(self) -> None:
        """Connect and declare what is needed. Idempotent."""

    async def close(self) -> None:
        """Stop every consumer and server of this bus and release its connections. Idempotent."""

    async def destroy(self) -> None:
        """Delete what this bus's namespace holds on its servers (tests)."""
