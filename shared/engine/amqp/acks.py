"""Acks of one consumer channel, coalesced: one ``basic.ack`` frame per event-loop turn.

Used by every RabbitMQ consumer that acks manually (action shards, the log stream).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage

from shared.engine.actions import Ack

log = structlog.get_logger(__name__)


class AckCoalescer:
    """Acks of one consumer channel, sent once per event-loop turn instead of one frame each.

    Deliveries are registered in arrival (delivery-tag) order; ``ack`` only marks one done. At the
    end of the turn the longest done prefix is acked with one ``basic.ack(multiple=True)`` and done
    deliveries behind a still-pending one are acked singly, so a slow room never holds back
    another's acks (nor the prefetch window). Acks are fire-and-forget in AMQP anyway; one that
    never reaches the broker (channel lost) means a redelivery, which frame-id de-duplication and
    the log sink's ``--unique`` already absorb.
    """

    def __init__(self, what: str) -> None:
        self._what = what
        # aiormq channel → {delivery tag: done?} in tag order; a reconnect brings a new channel
        self._outstanding: dict[Any, dict[int, bool]] = {}
        self._scheduled = False
        self._closed = False

    def register(self, message: AbstractIncomingMessage) -> Ack:
        channel, tag = message.channel, message.delivery_tag
        assert tag is not None
        self._outstanding.setdefault(channel, {})[tag] = False

        async def ack() -> None:
            if self._closed:
                return  # the channel is closing: the broker requeues it, de-duplication skips it
            tags = self._outstanding.get(channel)
            if tags is None:  # the channel closed (queue deleted, connection lost): requeued already
                log.debug("amqp.ack_after_close", what=self._what)
                return
            if tags.get(tag) is not False:
                log.warning("amqp.double_ack", what=self._what)
                return
            tags[tag] = True
            if not self._scheduled:
                self._scheduled = True
                asyncio.get_running_loop().call_soon(self.flush)

        return ack

    def close(self) -> None:
        """Send what is done, then nothing more: call before closing the channel. A frame that
        reached the broker after its close-ok would be a connection error (504), dropping every
        channel of the connection."""
        self.flush()
        self._closed = True
        self._outstanding.clear()

    def flush(self) -> None:
        self._scheduled = False
        if self._closed:
            return
        for channel, tags in list(self._outstanding.items()):
            if channel.is_closed:  # the broker requeued all of them already
                del self._outstanding[channel]
                continue
            frames: list[tuple[int, bool]] = []
            prefix = None
            for tag, done in list(tags.items()):
                if not done:
                    break
                prefix = tag
                del tags[tag]
            if prefix is not None:
                frames.append((prefix, True))
            for tag, done in list(tags.items()):
                if done:
                    frames.append((tag, False))
                    del tags[tag]
            for tag, multiple in frames:
                # wait=False: queued on the connection's writer, nothing to await per frame
                task = asyncio.ensure_future(channel.basic_ack(tag, multiple=multiple, wait=False))
                task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # The channel is gone: the broker put the messages back and will redeliver them.
            log.debug("amqp.ack_after_close", what=self._what, error=repr(task.exception()))
