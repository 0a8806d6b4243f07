"""The Redis engines: the store's concerns and the fan-out channels, over one ordered pipeline."""

from shared.engine.redis.fanout import RedisFanout
from shared.engine.redis.store import RedisStore

__all__ = ["RedisFanout", "RedisStore"]
