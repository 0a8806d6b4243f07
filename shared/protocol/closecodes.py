"""WebSocket close codes parley sends, and what the IVS client SDK does with each.

The SDK treats any close frame as final (no reconnect) and reconnects with a fresh token after
an ``ERROR`` frame with ``ErrorCode`` 401. So wherever the client should come back (session
expiry, gateway shutdown) parley sends ERROR 401 first; the close that follows is ignored.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    DISCONNECTED_BY_MODERATOR = 1000  # DisconnectUser: final, as IVS does
    GOING_AWAY = 1001  # gateway shutting down; preceded by ERROR 401 so clients reconnect elsewhere
    MESSAGE_TOO_BIG = 1009  # frame over the hard limit (websockets' own check)
    SESSION_EXPIRED = 4001  # sessionDurationInMinutes elapsed; preceded by ERROR 401
    IDLE_TIMEOUT = 4003  # PARLEY_IDLE_TIMEOUT: no frame and no pong for that long; final (no ERROR 401)
    NOT_APPROVED = 4004  # approvalRequired room: no moderator approved within PARLEY_APPROVAL_TIMEOUT; final
