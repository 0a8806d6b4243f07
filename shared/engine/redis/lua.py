"""Lua fragments shared by the concerns' scripts."""

from __future__ import annotations

# Defines ``now`` (server ms). Deadlines use the Redis server's clock so replicas with skewed
# clocks agree on who is alive.
SERVER_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
