"""Seed 003, groups-chat: REST (users, login, sessions, groups) + a JSON RPC WebSocket, on parley's core.

``codec`` (pure wire shapes), ``auth`` (HS256 login tokens), ``events`` (per-user event logs and
the storage of their delivered-up-to cursors), ``cursor`` (what a cursor covers and when a
connection saves it, pure), ``groups`` (groups as members-only parley rooms, sessions), ``hub``
(this process's connections and the room channels they need), ``rest`` (the HTTP handlers) and
``server`` (the listener and the WebSocket loop).
"""
