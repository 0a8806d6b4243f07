"""The web chat demo: a token-vending endpoint and a static chat page served by the control plane.

It plays the part of the web demo and demo backend that IVS ships: ``GET /`` serves the page,
``GET /demo/static/*`` its files, and ``POST /demo/token`` finds or creates a room by name and mints
a chat token, as an application backend would with CreateRoom and CreateChatToken.

What it must not touch:

- It is never enabled by default in production. Anyone who can reach the endpoint gets a chat token,
  moderator capabilities included, without SigV4 credentials. Only ``parley dev`` turns it on;
  ``parley api`` needs an explicit ``PARLEY_DEMO=true`` (or ``--demo``).
- It speaks only the public protocol. The server side goes through the same handlers, models and
  validation as the IVS operations (``api.rooms``, ``api.chat_tokens``), and the page is a plain
  browser WebSocket client (the token as ``Sec-WebSocket-Protocol``) like any other client.
"""

from api.demo.routes import mount_demo

__all__ = ["mount_demo"]
