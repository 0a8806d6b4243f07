"""The demo's token-vending endpoint (``POST /demo/token``) and its wiring, without a browser.

The endpoint is the only part of the demo with authority (it mints tokens without SigV4), so what
matters here: it is off unless asked for, it validates and rate-limits, its rooms and tokens are the
control plane's own, and its errors are JSON.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api import rooms
from api.app import API_CONTEXT
from api.demo.routes import gateway_url
from parley.embedded import Node
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore
from shared.protocol import tokens

pytest_plugins = ["demo_helpers"]  # the `client` and `start_demo` fixtures


async def _vend(client: TestClient, **body: Any) -> dict[str, Any]:
    response = await client.post("/demo/token", json=body)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_vends_a_user_token_for_a_new_room_then_reuses_the_room(client: TestClient, settings: Settings) -> None:
    first = await _vend(client, room="lobby", displayName="Ana")
    again = await _vend(client, room="lobby", displayName="Ben")
    assert first["roomArn"] == again["roomArn"] and first["roomName"] == "lobby"
    assert first["maximumMessageLength"] == 500
    assert first["gatewayUrl"] == "ws://127.0.0.1:18080"
    assert first["capabilities"] == ["SEND_MESSAGE"]
    assert first["userId"] != again["userId"]
    claims = tokens.verify(settings.token_secret_bytes, first["token"], now_ms=0)
    assert claims.room_id == first["roomId"] and claims.user_id == first["userId"]
    assert claims.capabilities == frozenset({"SEND_MESSAGE"})
    assert claims.attributes == {"displayName": "Ana"}


async def test_moderator_token_and_a_room_created_through_the_api(client: TestClient) -> None:
    ctx = client.app[API_CONTEXT]
    existing = await rooms.create_room(ctx, {"name": "stage", "maximumMessageLength": 42})
    vended = await _vend(client, room="stage", displayName="Mo", moderator=True, userId="moderator-1")
    assert vended["roomArn"] == existing["arn"] and vended["maximumMessageLength"] == 42
    assert vended["capabilities"] == ["SEND_MESSAGE", "DELETE_MESSAGE", "DISCONNECT_USER"]
    assert vended["userId"] == "moderator-1"  # kept across reconnects


async def test_a_room_deleted_meanwhile_is_created_again(client: TestClient) -> None:
    ctx = client.app[API_CONTEXT]
    first = await _vend(client, room="gone", displayName="Ana")
    await rooms.delete_room(ctx, {"identifier": first["roomArn"]})
    second = await _vend(client, room="gone", displayName="Ana")
    assert second["roomArn"] != first["roomArn"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"displayName": "Ana"}, "room"),
        ({"room": "a b", "displayName": "Ana"}, "room"),
        ({"room": "x" * 65, "displayName": "Ana"}, "room"),
        ({"room": "lobby"}, "displayName"),
        ({"room": "lobby", "displayName": "<script>"}, "displayName"),
        ({"room": "lobby", "displayName": "x" * 33}, "displayName"),
        ({"room": "lobby", "displayName": "   "}, "displayName"),
        ({"room": "lobby", "displayName": "Ana", "moderator": "yes"}, "moderator"),
        ({"room": "lobby", "displayName": "Ana", "userId": "short"}, "userId"),
        (["lobby"], "body"),
    ],
)
async def test_invalid_input_is_a_json_400_naming_the_field(client: TestClient, body: Any, field: str) -> None:
    response = await client.post("/demo/token", json=body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == "InvalidInput" and error["field"] == field and error["message"]


async def test_not_json_and_oversized_bodies(client: TestClient) -> None:
    json_type = {"Content-Type": "application/json"}  # anything else is a 415 (tests/test_web_demo_requests.py)
    response = await client.post("/demo/token", data=b"{not json", headers=json_type)
    assert response.status == 400 and (await response.json())["error"]["field"] == "body"
    response = await client.post("/demo/token", data=b"x" * 5000, headers=json_type)
    assert response.status == 400 and "at most" in (await response.json())["error"]["message"]


async def test_rate_limited_per_client(start_demo) -> None:
    client = await start_demo(tokens_per_minute=2)
    await _vend(client, room="lobby", displayName="Ana")
    await _vend(client, room="lobby", displayName="Ana")
    response = await client.post("/demo/token", json={"room": "lobby", "displayName": "Ana"})
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert (await response.json())["error"]["code"] == "TooManyRequests"


async def test_page_and_static_files_are_served(client: TestClient) -> None:
    page = await client.get("/")
    assert page.status == 200 and "text/html" in page.headers["Content-Type"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    text = await page.text()
    assert 'aria-live="polite"' in text
    for path in ("/demo/static/style.css", "/demo/static/js/app.js", "/demo/static/js/ivs-chat.js"):
        assert (await client.get(path)).status == 200, path
    # The page speaks the public protocol: the token is the WebSocket subprotocol.
    script = await (await client.get("/demo/static/js/ivs-chat.js")).text()
    assert "new WebSocket(credentials.url, credentials.token)" in script
    # User content only ever goes in as text: no HTML-parsing sink anywhere in the scripts.
    for name in ("app.js", "views.js", "errors.js", "ivs-chat.js", "demo-backend.js"):
        source = await (await client.get(f"/demo/static/js/{name}")).text()
        assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", source), name


def test_off_by_default_in_production(settings: Settings) -> None:
    assert Settings().demo is False
    for node_settings, expected in ((settings, False), (settings.with_(demo=True), True)):
        node = Node(node_settings, MemoryStore(), MemoryBus(1), gateway=False, router=False)
        assert node.api is not None
        paths = {resource.canonical for resource in node.api.app.router.resources()}
        assert ("/demo/token" in paths) is expected and ("/" in paths) is expected


def test_gateway_url_follows_the_gateway_listener() -> None:
    assert gateway_url(Settings(), "example.test", 8080) == "ws://127.0.0.1:8080"
    assert gateway_url(Settings(gateway_host="0.0.0.0"), "chat.example.test", 9000) == "ws://chat.example.test:9000"
    assert gateway_url(Settings(gateway_host="::1"), None, 9000) == "ws://[::1]:9000"
    assert gateway_url(Settings(demo_gateway_url="wss://chat.example.test/ws"), "x", 1) == "wss://chat.example.test/ws"
