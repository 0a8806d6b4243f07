"""``parley dev`` as a newcomer runs it (``make run``): one process, no servers, boto3 + WebSocket."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from parley.testing.chatclient import ChatClient
from parley.testing.cluster import dev_ivschat, parley_dev

pytestmark = pytest.mark.e2e


@pytest.fixture
def dev() -> Iterator[dict[str, int]]:
    with parley_dev() as ports:
        yield ports


async def test_parley_dev_serves_boto3_and_websockets(dev: dict[str, int]) -> None:
    ivschat = dev_ivschat(dev["api"])
    room = ivschat.create_room(name="lobby")
    assert ivschat.get_room(identifier=room["arn"])["maximumMessageLength"] == 500
    token = ivschat.create_chat_token(roomIdentifier=room["arn"], userId="alice", capabilities=["SEND_MESSAGE"])[
        "token"
    ]
    client = await ChatClient.open(f"ws://127.0.0.1:{dev['gateway']}/", token)
    rid = await client.send_message("hello from dev")
    frame = await client.expect(Type="MESSAGE")
    assert frame["RequestId"] == rid and frame["Content"] == "hello from dev"
    event_id = ivschat.send_event(roomIdentifier=room["arn"], eventName="app:hi")["id"]
    assert (await client.expect(Type="EVENT"))["Id"] == event_id
    await client.close()
    with pytest.raises(ivschat.exceptions.AccessDeniedException):
        boto3.client(
            "ivschat",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{dev['api']}",
            aws_access_key_id="AKIDPARLEYDEV",
            aws_secret_access_key="wrong",
            config=Config(retries={"max_attempts": 1}),
        ).list_rooms()
