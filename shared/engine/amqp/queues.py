"""How parley declares its durable RabbitMQ queues: the queue type, its arguments, and a clear
error when an existing queue was declared otherwise.

Owns the ``x-queue-type`` and ``x-delivery-limit`` arguments every durable queue carries
(``PARLEY_AMQP_QUEUE_TYPE``) and the translation of the broker's ``PRECONDITION_FAILED`` on
declare into :class:`QueueMismatch`. Must not know which queues exist (actions, logs and reviews
name their own).

Quorum queues are always durable and replicated, keep every message on disk (a transient
delivery mode saves no write there), support single-active-consumer, ``x-max-length-bytes`` with
``reject-publish`` and per-message TTL (RabbitMQ 3.10+), and refuse global QoS (parley sets
per-consumer prefetch only). They count each message's deliveries, and RabbitMQ 4.0-4.2 drop a
message returned (its consumer's channel closed) more than 20 times by default (4.3 counts only
rejects): a router or sink restarting that often with a
shard's actions unacked must not lose them, so quorum queues carry an explicit
:data:`DELIVERY_LIMIT` far beyond any hand-over churn (``-1``, "unlimited" on 4.x, means
"drop on first return" on 3.x, so it cannot be used on both).
"""

from __future__ import annotations

from enum import StrEnum

from aio_pika.abc import AbstractChannel, AbstractQueue
from aiormq.abc import FieldTable
from aiormq.exceptions import ChannelPreconditionFailed

# Returns (channel closes with the message unacked) a quorum queue tolerates before it drops a
# message. Identical on every broker version so every declaration carries the same arguments.
DELIVERY_LIMIT = 1_000_000


class QueueType(StrEnum):
    QUORUM = "quorum"
    CLASSIC = "classic"


def parse_queue_type(value: QueueType | str) -> QueueType:
    """``PARLEY_AMQP_QUEUE_TYPE``: ``quorum`` or ``classic``; anything else is a startup error."""
    try:
        return QueueType(value.strip().lower())
    except ValueError:
        raise ValueError(f"PARLEY_AMQP_QUEUE_TYPE must be quorum or classic, not {value!r}") from None


def queue_arguments(queue_type: QueueType, extra: FieldTable | None = None) -> FieldTable:
    """The declare arguments of a durable queue of this type (``extra`` first)."""
    arguments: FieldTable = dict(extra or {})
    arguments["x-queue-type"] = queue_type.value
    if queue_type is QueueType.QUORUM:
        arguments["x-delivery-limit"] = DELIVERY_LIMIT
    return arguments


class QueueMismatch(RuntimeError):
    """A queue exists with other arguments than these settings give it (typically another
    ``PARLEY_AMQP_QUEUE_TYPE``): parley stops instead of retrying a declare that cannot pass."""


def mismatch_message(name: str, queue_type: QueueType, broker_reply: str, hint: str = "") -> str:
    other = QueueType.CLASSIC if queue_type is QueueType.QUORUM else QueueType.QUORUM
    return (
        f"RabbitMQ refused to declare queue {name!r} as PARLEY_AMQP_QUEUE_TYPE={queue_type.value}: "
        f"it exists with other arguments ({broker_reply}). A queue's type cannot change in place. "
        f"Either set PARLEY_AMQP_QUEUE_TYPE={other.value} as before, or switch the namespace: stop every "
        "parley process, let the queues drain (or delete them with `rabbitmqctl delete_queue`), then "
        "start on the new type; or start the new type under a new PARLEY_NAMESPACE." + (f" {hint}" if hint else "")
    )


async def declare_durable_queue(
    channel: AbstractChannel, name: str, queue_type: QueueType, extra: FieldTable | None = None, hint: str = ""
) -> AbstractQueue:
    """Declare ``name`` durable with :func:`queue_arguments`; a mismatch raises :class:`QueueMismatch`
    (the broker has closed ``channel`` then)."""
    try:
        return await channel.declare_queue(name, durable=True, arguments=queue_arguments(queue_type, extra))
    except ChannelPreconditionFailed as exc:
        reply = str(exc.args[0] if exc.args else exc)
        raise QueueMismatch(mismatch_message(name, queue_type, reply, hint)) from exc
