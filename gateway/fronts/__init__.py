"""Seed protocol fronts: gateways that speak another chat system's wire protocol on parley's core.

Each front is a stateless, horizontally scalable process serving one of the small chat systems
of ``../shared/seeds`` exactly as its document shows (``line`` = seed 000, ``relay`` = 001,
``groupschat`` = 003, ``plic`` = 004). A front translates; it does not fork the product: what its
clients send becomes ``ActionEnvelope``s on the same action shards, so it is rate-limited,
reviewed and logged by the routers like any IVS message, and what the routers fan out reaches
it on the same room channels, re-encoded once per room delivery for its own connections.

Owns: one package per front (``<name>/codec.py`` pure frame ↔ action/event translation, tested
without sockets; ``<name>/server.py`` the listener), and this registry of them.

Must not: decide room-state rules (the router's job), keep state another replica needs, or
import another front.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

from gateway.ports import GatewayBus, GatewayStore
from shared.config import Settings


class Front(Protocol):
    """What ``parley front``, ``parley dev`` and the tests need of any front."""

    port: int  # the bound port once started

    async def start(self, port: int | None = None) -> None:
        """Listen on ``port`` (None: the front's setting; 0: any free port)."""

    async def stop(self) -> None:
        """Close the listener and every connection (clients are told, in their protocol)."""


FrontFactory = Callable[[Settings, GatewayStore, GatewayBus], Front]

# name → "module:factory", imported only when that front is asked for
_REGISTRY: dict[str, str] = {
    "line": "gateway.fronts.line.server:LineFront",
    "relay": "gateway.fronts.relay.server:RelayFront",
    "groupschat": "gateway.fronts.groupschat.server:GroupsChatFront",
    "plic": "gateway.fronts.plic.server:PlicFront",
}


def names() -> list[str]:
    """The fronts this build serves, in port order."""
    return list(_REGISTRY)


def factory(name: str) -> FrontFactory:
    if name not in _REGISTRY:
        raise KeyError(f"unknown front {name!r}; known: {', '.join(names()) or 'none'}")
    module, _, attribute = _REGISTRY[name].partition(":")
    built: FrontFactory = getattr(importlib.import_module(module), attribute)
    return built


def setting_port(settings: Settings, name: str) -> int:
    """The front's port from settings (``PARLEY_<NAME>_PORT``; 0: off in ``parley dev``)."""
    port: int = getattr(settings, f"{name}_port")
    return port
