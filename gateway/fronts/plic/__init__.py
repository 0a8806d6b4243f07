"""Seed 004, PLIC-Chat (Swappart chat service): REST rooms + a JSON WebSocket, on parley's core.

``codec`` (pure wire shapes), ``auth`` (Supabase-style HS256 JWTs), ``rooms`` (plic rooms as
parley rooms: alias records, members, history), ``hub`` (this process's connections and the room
channels they need), ``send`` (the never-wait send path for aiohttp sockets), ``rest`` (the HTTP
handlers) and ``server`` (the listener and the WebSocket loop).
"""
