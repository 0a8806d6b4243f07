"""A robust RabbitMQ connection over several node URLs (``PARLEY_AMQP_URL=amqp://a,amqp://b``).

Owns the node list and which node the next connection attempt goes to: the first connect tries
each node in turn, starting with the first, until one answers; after a lost connection the
reconnect tries the node it was on, then each other one in turn (round-robin, no wait between
nodes), and aio_pika's robust connection restores channels, queues and consumers on whichever
node answers. A round where no node answers is retried after the robust connection's interval.
With one URL this is exactly ``aio_pika.connect_robust(url)``.

Must not declare anything (``shared.engine.amqp.connection`` does).
"""

from __future__ import annotations

from typing import Any

import aio_pika
import structlog
from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from yarl import URL

log = structlog.get_logger(__name__)


def node_urls(amqp_url: str) -> list[str]:
    """The comma-separated node URLs of ``PARLEY_AMQP_URL``, in order, blanks dropped."""
    urls = [part.strip() for part in amqp_url.split(",") if part.strip()]
    if not urls:
        raise ValueError("PARLEY_AMQP_URL names no RabbitMQ node")
    return urls


class FailoverConnection(RobustConnection):
    """``RobustConnection`` whose every (re)connection attempt goes round the nodes."""

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        self._nodes = [URL(url) for url in urls]
        self._node = 0
        super().__init__(self._nodes[self._node], **kwargs)

    # Connection.connect reads ``self.url`` on every attempt; __init__ and update_secret assign it.
    @property
    def url(self) -> URL:
        return self._nodes[self._node]

    @url.setter
    def url(self, value: URL) -> None:
        self._nodes[self._node] = URL(value)

    async def _RobustConnection__connect_transport(self) -> None:  # noqa: N802 - aio_pika's one attempt
        """One (re)connection attempt of the robust connection, here a round over every node
        starting with the current one: a live node is reached at once, not a retry interval
        later. Raises the last node's error when none answers (the robust connection then
        waits its interval and tries another round)."""
        for tried in range(1, len(self._nodes) + 1):
            try:
                await super()._RobustConnection__connect_transport()  # type: ignore[misc]
                return
            except Exception as exc:
                self._node = (self._node + 1) % len(self._nodes)
                if tried == len(self._nodes):
                    raise
                log.warning("amqp.node_unreachable", error=repr(exc), next_node=self._node)


async def connect_nodes(amqp_url: str) -> AbstractRobustConnection:
    """A robust connection to the first node of ``amqp_url`` that accepts one (see module doc);
    raises the last node's error if none does (fail fast, as ``connect_robust`` does)."""
    urls = node_urls(amqp_url)
    if len(urls) == 1:
        return await aio_pika.connect_robust(urls[0])
    connection = FailoverConnection(urls)
    try:
        await connection.connect()
    except BaseException:
        await connection.close()
        raise
    return connection
