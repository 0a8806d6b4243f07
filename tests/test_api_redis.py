"""The control plane on the production Store (Redis): two api replicas share one account.

Needs Redis (``make services``); the Bus stays in memory because the api only publishes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from shared.engine.redis.store import RedisStore

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]
pytestmark = pytest.mark.integration


@pytest.fixture
def start_replicas(settings, start_api, redis_url: str, namespace: str) -> Iterator[Callable[..., list[ApiServer]]]:
    """``start_replicas(**settings_changes)``: two api servers on one Redis namespace."""
    started: list[ApiServer] = []

    def start(**changes: object) -> list[ApiServer]:
        servers = [start_api(settings.with_(**changes), lambda: RedisStore(redis_url, namespace)) for _ in range(2)]
        started.extend(servers)
        return servers

    yield start
    if started:
        assert isinstance(started[0].store, RedisStore)
        started[0].run(started[0].store.destroy())


def test_resources_written_by_one_replica_are_served_by_the_other(start_replicas) -> None:
    first, second = (server.client() for server in start_replicas())
    config = first.create_logging_configuration(destinationConfiguration={"s3": {"bucketName": "logs"}})
    room = first.create_room(name="shared", loggingConfigurationIdentifiers=[config["arn"]], tags={"a": "b"})
    fetched = second.get_room(identifier=room["arn"])
    assert fetched["loggingConfigurationIdentifiers"] == [config["arn"]]
    assert fetched["tags"] == {"a": "b"}
    second.update_room(identifier=room["arn"], maximumMessageLength=7)
    assert first.get_room(identifier=room["arn"])["maximumMessageLength"] == 7
    with pytest.raises(second.exceptions.ConflictException):
        second.delete_logging_configuration(identifier=config["arn"])


def test_pagination_and_filters_on_redis(start_replicas) -> None:
    first_api, second_api = start_replicas()
    ivs = first_api.client()
    wanted = set()
    for i in range(9):
        room = ivs.create_room(name="wanted" if i % 3 == 0 else f"x{i}")
        if room["name"] == "wanted":
            wanted.add(room["arn"])
    first = ivs.list_rooms(name="wanted", maxResults=2)
    assert len(first["rooms"]) == 2
    second = second_api.client().list_rooms(name="wanted", maxResults=2, nextToken=first["nextToken"])
    assert "nextToken" not in second
    assert {r["arn"] for r in first["rooms"] + second["rooms"]} == wanted


def _wait_for_next_window() -> None:
    time.sleep(1 - time.time() % 1 + 0.01)


def test_throttling_is_account_wide_across_replicas(start_replicas) -> None:
    a, b = (server.client() for server in start_replicas(api_throttling=True))
    for _ in range(3):  # retry only if the four calls happened to straddle a window boundary
        _wait_for_next_window()
        window = int(time.time())
        for _ in range(3):  # the whole 3 TPS budget, spent on replica a
            a.list_logging_configurations()
        try:
            b.list_logging_configurations()
            outcome = "allowed"
        except b.exceptions.ThrottlingException:
            outcome = "throttled"
        if int(time.time()) == window:
            break
    # Replica b never saw a call before, so only the shared Redis count can refuse this one.
    assert outcome == "throttled"
