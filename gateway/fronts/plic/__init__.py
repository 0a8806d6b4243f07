"""Seed 004, PLIC-Chat (Swappart chat service): REST rooms + a JSON WebSocket, on parley's core.

``codec`` (pure wire shapes), ``auth`` (Supabase-style HS256 JWTs), ``rooms`` (plic rooms as
parley rooms: alias records, members, history), ``hub`` (this process's connections and the room
channels they need), ``connection`` (one WebSocket connection; it is written through
``gateway.fronts.aiohttp_wire``, the send path of the aiohttp fronts), ``rest`` (the HTTP
handlers) and ``server`` (the listener and the WebSocket loop).
"""
