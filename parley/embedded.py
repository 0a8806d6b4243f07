"""Components assembled in one process: ``parley dev`` and the end-to-end tests use this.

With ``MemoryStore``/``MemoryBus`` it is the no-servers embedded mode; with the real backends it
is one node of a distributed deployment (tests run several against the same Redis/RabbitMQ).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web

from gateway import fronts as front_registry
from gateway.fronts import Front
from gateway.server import Gateway
from logger_sink.sink import LoggerSink
from reviewer.config import ReviewConfig
from reviewer.remote import RemoteReviewer
from reviewer.server import ReviewerServer
from router.worker import Router
from shared.config import Settings
from shared.engine.bus import Bus
from shared.engine.store import Store


class ApiServer:
    """The control plane's aiohttp app on a TCP port."""

    def __init__(self, settings: Settings, store: Store, bus: Bus) -> None:
        from api.app import create_app

        self.settings = settings
        self.app = create_app(settings, store, bus)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        """Listen within the PARLEY_API_* read deadlines and per-client cap (``parley api`` and ``parley dev``)."""
        from api.limits import ServerLimits, serve

        self._runner, self.port = await serve(
            self.app,
            host or self.settings.api_host,
            self.settings.api_port if port is None else port,
            ServerLimits.from_settings(self.settings),
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Node:
    """Any subset of api + gateway + seed protocol fronts + router + reviewer sharing one Store
    and Bus. The router always reviews through the Bus (``RemoteReviewer``); ``reviewer`` serves
    those reviews here."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        bus: Bus,
        *,
        api: bool = True,
        gateway: bool = True,
        router: bool = True,
        router_all_shards: bool = False,
        logger: bool = False,
        reviewer: bool = True,
        review_config: ReviewConfig | None = None,
        fronts: Sequence[str] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.api = ApiServer(settings, store, bus) if api else None
        self.gateway = Gateway(settings, store, bus) if gateway else None
        self.fronts: dict[str, Front] = {name: front_registry.factory(name)(settings, store, bus) for name in fronts}
        self.logger = LoggerSink(settings, store, bus) if logger else None
        # The reviewer and the api judge handler addresses by the same setting.
        review_config = review_config or ReviewConfig.from_env(allowed_networks=settings.review_allowed_networks)
        self.reviewer = ReviewerServer(bus, review_config) if reviewer else None
        self.router = (
            Router(
                settings,
                store,
                bus,
                all_shards=router_all_shards,
                reviewer=RemoteReviewer(bus, review_config.router_timeout),
            )
            if router
            else None
        )
        if self.api is not None and settings.demo:
            self._mount_demo(self.api)

    def _mount_demo(self, api: ApiServer) -> None:
        """The web chat demo (``api.demo``), only when ``settings.demo`` asks for it."""
        from api.demo import mount_demo

        gateway = self.gateway
        # A gateway in this process (parley dev) gets its port only when it starts; ask at request time.
        mount_demo(api.app, gateway_port=(lambda: gateway.port) if gateway is not None else None)

    async def start(
        self,
        *,
        api_port: int | None = None,
        gateway_port: int | None = None,
        front_ports: Mapping[str, int] | None = None,
    ) -> None:
        """Start what this node holds; a port of None is the component's setting, 0 any free port."""
        await self.store.start()
        await self.bus.start()
        if self.logger is not None:
            await self.logger.start()
        if self.reviewer is not None:  # before the router, so its first reviews find a server
            await self.reviewer.start()
        if self.router is not None:
            await self.router.start()
        if self.gateway is not None:
            await self.gateway.start(port=gateway_port)
        for name, front in self.fronts.items():
            await front.start(port=(front_ports or {}).get(name))
        if self.api is not None:
            await self.api.start(port=api_port)

    async def stop(self, *, close_backends: bool = True) -> None:
        if self.api is not None:
            await self.api.stop()
        if self.gateway is not None:
            await self.gateway.stop()
        for front in self.fronts.values():
            await front.stop()
        if self.router is not None:
            await self.router.stop()
        if self.logger is not None:  # after the router, which publishes logs until it stops
            await self.logger.stop()
        if self.reviewer is not None:
            await self.reviewer.stop()
        if close_backends:
            await self.bus.close()
            await self.store.close()
