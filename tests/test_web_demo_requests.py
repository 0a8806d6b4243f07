"""What ``POST /demo/token`` accepts as a request: JSON from its own page, and nothing else.

Every refusal is in the demo's own error shape (``{"error": {"code", "message", "field"?}}``, what
the page shows), never the control plane's 500. The endpoint mints tokens and creates rooms without
credentials, so a page on another origin must not be able to drive it from a visitor's browser: a
``text/plain`` POST is a CORS "simple request" that needs no preflight, hence the 415, and a foreign
``Origin`` gets a 403 before anything else (the rate-limit budget included) is touched.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from api import rooms
from api.app import API_CONTEXT

pytest_plugins = ["demo_helpers"]  # the `client` and `start_demo` fixtures

VALID = {"room": "lobby", "displayName": "Ana"}
JSON = {"Content-Type": "application/json"}


async def _demo_error(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    error = (await response.json())["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    assert error.get("field") == field
    return error


async def _room_names(client: TestClient) -> list[str]:
    listed = await rooms.list_rooms(client.app[API_CONTEXT], {})
    return [room["name"] for room in listed["rooms"]]


async def test_json_nested_2000_deep_is_the_demos_own_400(client: TestClient) -> None:
    response = await client.post("/demo/token", data=b"[" * 2000 + b"]" * 2000, headers=JSON)
    await _demo_error(response, 400, "InvalidInput", "body")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"", "body"),
        (b"null", "body"),
        (b'"lobby"', "body"),
        (b"42", "body"),
        (b'{"room": "lobby", "displayName": "Ana"', "body"),
        (b'{"room": "lobby", "displayName": "\xff"}', "body"),  # not UTF-8
        (b'{"room": "lobby", "displayName": "\\ud800"}', "displayName"),  # a lone surrogate escape
        (b'{"room": "lobby", "displayName": "\xed\xa0\x80"}', "displayName"),  # CESU-8: json decodes it
        (b'{"room": "lobby", "displayName": "Ana", "extra": ["\\udfff"]}', "extra"),
        (b'{"room": "lobby", "displayName": "Ana", "\\ud800": 1}', "body"),  # a key is never echoed
        (b'{"room": ["lobby"], "displayName": "Ana"}', "room"),
        (b'{"room": "lobby", "displayName": 7}', "displayName"),
        (b'{"room": "lobby", "displayName": "Ana", "userId": 12345678}', "userId"),
        (b'{"room": "lobby", "displayName": "Ana", "moderator": 1}', "moderator"),
        (b'{"room": "lobby", "displayName": "Ana", "pad": "' + b"x" * 5000 + b'"}', "body"),
    ],
)
async def test_every_bad_body_is_the_demos_own_400(client: TestClient, body: bytes, field: str) -> None:
    await _demo_error(await client.post("/demo/token", data=body, headers=JSON), 400, "InvalidInput", field)
    assert await _room_names(client) == []


async def test_a_huge_chunked_body_is_refused_too(client: TestClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies while reading
        for _ in range(10):
            yield b" " * 1000

    response = await client.post("/demo/token", data=chunks(), headers=JSON)
    error = await _demo_error(response, 400, "InvalidInput", "body")
    assert "at most" in error["message"]


async def test_a_body_arriving_in_pieces_is_read_whole(client: TestClient) -> None:
    body = json.dumps(VALID).encode()
    reader, writer = await asyncio.open_connection(client.host, client.port)
    head = f"POST /demo/token HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nContent-Type: application/json\r\n"
    writer.write(f"{head}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body[:10])
    await writer.drain()
    await asyncio.sleep(0.05)  # the handler is already reading when the rest comes
    writer.write(body[10:])
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    assert b" 200 " in status_line, status_line


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded"]
)
async def test_only_json_is_accepted(client: TestClient, content_type: str | None) -> None:
    # aiohttp would label a bytes body application/octet-stream; skip that to send no Content-Type.
    headers = {"Content-Type": content_type} if content_type else {}
    skip = () if content_type else ("Content-Type",)
    response = await client.post("/demo/token", data=json.dumps(VALID), headers=headers, skip_auto_headers=skip)
    await _demo_error(response, 415, "UnsupportedMediaType")
    assert await _room_names(client) == []
    response = await client.post(
        "/demo/token", data=json.dumps(VALID), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert response.status == 200


@pytest.mark.parametrize(
    "origin", ["https://attacker.example", "null", "http://127.0.0.1:1", "http://127.0.0.1.attacker.example"]
)
async def test_a_foreign_origin_is_refused_before_anything_else(start_demo, origin: str) -> None:
    client = await start_demo(tokens_per_minute=1)
    for _ in range(3):  # refused before the rate limit: a foreign page cannot use up a visitor's budget
        response = await client.post("/demo/token", json=VALID, headers={"Origin": origin})
        await _demo_error(response, 403, "ForbiddenOrigin")
    assert await _room_names(client) == []
    own = f"http://{client.host}:{client.port}"
    assert (await client.post("/demo/token", json=VALID, headers={"Origin": own})).status == 200


async def test_own_origin_and_no_origin_are_accepted(client: TestClient) -> None:
    # No Origin: not a browser's cross-site request (curl, scripts); the page's own origin: the demo.
    assert (await client.post("/demo/token", json=VALID)).status == 200
    for host in ("localhost", "LOCALHOST"):
        headers = {"Host": f"{host}:8000", "Origin": "http://localhost:8000"}
        assert (await client.post("/demo/token", json=VALID, headers=headers)).status == 200
    headers = {"Host": "chat.example", "Origin": "https://chat.example"}  # behind a TLS proxy, default port
    assert (await client.post("/demo/token", json=VALID, headers=headers)).status == 200
    headers = {"Host": "[::1]:8000", "Origin": "http://[::1]:8000"}
    assert (await client.post("/demo/token", json=VALID, headers=headers)).status == 200
    headers = {"Host": "chat.example", "Origin": "https://chat.example:8443"}
    assert (await client.post("/demo/token", json=VALID, headers=headers)).status == 403
