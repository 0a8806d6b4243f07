"""Parley's extensions and limits, as logic shared by the components that enforce them.

Owns: connection approval, bans, room membership, presence, and the sliding-window rate limit.
Each builds on ``shared.protocol`` shapes and ``shared.engine`` interfaces.

Must not: import any component, or an engine implementation (only the interfaces).
"""
