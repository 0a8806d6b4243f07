"""The RabbitMQ engines: action shards, the review RPC and the log stream, over one connection."""

from shared.engine.amqp.bus import AmqpRedisBus

__all__ = ["AmqpRedisBus"]
