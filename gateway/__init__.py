"""The WebSocket gateway: the only component that touches chat clients' sockets.

Owns: the token check at the handshake, frame parsing and shape checks, capabilities, the
per-connection rate limit, publishing accepted requests as actions, and writing the frames
routers publish to the local connections of each room (encoded once per room, not per socket).

Must not: decide anything that depends on room state (limits, review, ordering — the router's
job), call the reviewer, or keep state another gateway needs: gateways are stateless and any
number of them can serve the same room.

Read in this order: ``admission`` (handshake) → ``session`` (one connection's protocol logic)
→ ``fanout`` (rooms, subscriptions, broadcast) → ``server`` (websockets wiring).
"""
