"""``parley dev`` allows review handlers on this machine by default, and still never
the metadata service: the dev default is loopback only (PARLEY_REVIEW_ALLOWED_NETWORKS unset)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from parley.testing.chatclient import ChatClient
from parley.testing.cluster import dev_ivschat, parley_dev, serving

pytestmark = pytest.mark.e2e


@pytest.fixture
def dev() -> Iterator[dict[str, int]]:
    with parley_dev() as ports:
        yield ports


@pytest.fixture
async def handler_url() -> AsyncIterator[str]:
    async def review(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"ReviewResult": "ALLOW", "Content": body["Content"].upper()})

    app = web.Application()
    app.router.add_post("/review", review)
    async with serving(app) as url:
        yield f"{url}/review"


async def test_parley_dev_reviews_through_a_loopback_handler(dev: dict[str, int], handler_url: str) -> None:
    ivschat = dev_ivschat(dev["api"])
    with pytest.raises(ivschat.exceptions.ValidationException):
        ivschat.create_room(messageReviewHandler={"uri": "http://169.254.169.254/latest/meta-data/"})
    with pytest.raises(ivschat.exceptions.ValidationException):
        ivschat.create_room(messageReviewHandler={"uri": "http://10.0.0.1/review"})  # private: not by default
    room = ivschat.create_room(messageReviewHandler={"uri": handler_url, "fallbackResult": "DENY"})
    token = ivschat.create_chat_token(roomIdentifier=room["arn"], userId="alice", capabilities=["SEND_MESSAGE"])
    client = await ChatClient.open(f"ws://127.0.0.1:{dev['gateway']}/", token["token"])
    rid = await client.send_message("hello")
    frame = await client.recv(timeout=5)
    assert (frame["RequestId"], frame["Type"], frame["Content"]) == (rid, "MESSAGE", "HELLO")
    await client.close()
