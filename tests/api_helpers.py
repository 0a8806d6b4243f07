"""Test harness for the control plane: the real aiohttp app on an ephemeral port, in its own
thread and event loop, driven by the real boto3 ``ivschat`` client (or hand-signed requests).

Test modules opt in with ``pytest_plugins = ["api_helpers"]`` (and import nothing else from
here, so pytest can register the module before it is imported) and get the fixtures ``api`` (a
running :class:`ApiServer` for the ``settings`` fixture), ``ivs`` (a boto3 client for it) and
``start_api`` (start another server with other settings or another Store).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import json
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

import boto3
import botocore.config
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from api.app import create_app
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from shared.engine.store import Store
from shared.protocol.envelope import ActionEnvelope, ControlNotice

_SESSION = boto3.session.Session()  # one session: its loader caches the service model


class ApiServer:
    """``create_app`` served on 127.0.0.1:<ephemeral> with MemoryStore/MemoryBus."""

    def __init__(self, settings: Settings, store_factory: Callable[[], Store] = MemoryStore) -> None:
        self.settings = settings
        self._store_factory = store_factory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="api-test-loop", daemon=True)
        self.actions: queue.Queue[ActionEnvelope] = queue.Queue()
        self.notices: list[ControlNotice] = []
        self.port = 0

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> ApiServer:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.store = self._store_factory()
        await self.store.start()
        self.bus = MemoryBus(self.settings.shards)
        self._runner = web.AppRunner(create_app(self.settings, self.store, self.bus), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

        async def collect(action: ActionEnvelope, ack: Callable[[], Any], redelivered: bool) -> None:
            self.actions.put(action)
            await ack()

        actions = self.bus.actions
        self._consumers = [await actions.consume_shard(shard, collect) for shard in range(actions.shards)]
        self._subscription = await self.bus.fanout.subscribe(
            "api-test", None, None, lambda data: self.notices.append(ControlNotice.decode(data))
        )

    async def _stop(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()
        await self._subscription.close()
        await self._runner.cleanup()
        await self.store.close()

    def stop(self) -> None:
        self.run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def run(self, awaitable: Awaitable[Any], timeout: float = 5) -> Any:
        """Await ``awaitable`` on the server's loop (the Store and Bus live there) and return its result."""

        async def result() -> Any:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(result(), self._loop).result(timeout)

    # --- clients ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **overrides: Any) -> Any:
        options: dict[str, Any] = {
            "region_name": self.settings.region,
            "endpoint_url": self.url,
            "aws_access_key_id": self.settings.access_key_id,
            "aws_secret_access_key": self.settings.secret_access_key,
            "config": botocore.config.Config(retries={"max_attempts": 1}),
            **overrides,
        }
        return _SESSION.client("ivschat", **options)

    @staticmethod
    def tags_path(arn: str) -> str:
        """``/tags/{arn}`` encoded the way botocore does (only ``-._~`` left as is)."""
        return "/tags/" + quote(arn, safe="-._~")

    def signed_headers(
        self, method: str, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Headers signed with this server's credentials for ``method path`` and ``body``."""
        return sign_headers(
            method,
            self.url + path,
            {"Host": f"127.0.0.1:{self.port}", **(headers or {})},
            body,
            access_key=self.settings.access_key_id,
            secret=self.settings.secret_access_key,
            region=self.settings.region,
        )

    def next_action(self, timeout: float = 2) -> ActionEnvelope:
        return self.actions.get(timeout=timeout)

    def raw(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        sign: bool = True,
        secret: str | None = None,
        service: str = "ivschat",
        when: dt.datetime | None = None,
        after_signing: Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """Send one hand-built (optionally SigV4-signed) request; returns status, headers, JSON."""
        headers = {"Content-Type": "application/json", "Host": f"127.0.0.1:{self.port}"}
        if sign:
            headers = sign_headers(
                method,
                self.url + path,
                headers,
                body,
                access_key=self.settings.access_key_id,
                secret=self.settings.secret_access_key if secret is None else secret,
                region=self.settings.region,
                service=service,
                when=when,
            )
        if after_signing is not None:
            headers, body = after_signing(headers, body)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data) if data else None
        finally:
            connection.close()


def sign_headers(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    access_key: str,
    secret: str,
    region: str,
    service: str = "ivschat",
    when: dt.datetime | None = None,
) -> dict[str, str]:
    """SigV4-sign like boto3 does, optionally at another moment (for clock-skew tests)."""
    moment = when or dt.datetime.now(dt.UTC)
    amz_date = moment.strftime("%Y%m%dT%H%M%SZ")
    request = AWSRequest(method=method, url=url, data=body, headers={**headers, "X-Amz-Date": amz_date})
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(access_key, secret), service, region)
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signed = signer.signed_headers(signer.headers_to_sign(request))
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, SignedHeaders={signed}, Signature={signature}"
    )
    return {**headers, "X-Amz-Date": amz_date, "Authorization": authorization}


@pytest.fixture
def start_api() -> Iterator[Callable[..., ApiServer]]:
    """``start_api(settings, store_factory=MemoryStore)``: servers stopped after the test."""
    servers: list[ApiServer] = []

    def start(settings: Settings, store_factory: Callable[[], Store] = MemoryStore) -> ApiServer:
        server = ApiServer(settings, store_factory).start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def api(settings: Settings, start_api: Callable[..., ApiServer]) -> ApiServer:
    return start_api(settings)


@pytest.fixture
def ivs(api: ApiServer) -> Any:
    return api.client()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def server(
    request: pytest.FixtureRequest, settings: Settings, start_api: Callable[..., ApiServer], namespace: str
) -> Iterator[ApiServer]:
    """A running server on each Store in turn: memory, then Redis (this test's namespace, deleted after)."""
    if request.param == "memory":
        yield start_api(settings, MemoryStore)
        return
    from shared.engine.redis.store import RedisStore

    redis_url = request.getfixturevalue("redis_url")
    api = start_api(settings, lambda: RedisStore(redis_url, namespace))
    yield api
    assert isinstance(api.store, RedisStore)
    api.run(api.store.destroy())
