"""Members conformance: the same tests against the memory and the Redis engine (``engine_store``)."""

from __future__ import annotations

import pytest

from shared.engine.members import Members
from shared.engine.store import Store


@pytest.fixture
def members(engine_store: Store) -> Members:
    return engine_store.members


async def test_members_add_remove_check_and_page(members: Members) -> None:
    assert await members.add("r", ["bob", "alice", "bob", "zoë"]) == ["bob", "alice", "zoë"]
    assert await members.add("r", ["alice", "carol"]) == ["carol"]
    assert await members.check("r", ["alice", "dave", "zoë"]) == [True, False, True]
    assert await members.check("other", ["alice"]) == [False]
    assert await members.page("r", None, 10) == ["alice", "bob", "carol", "zoë"]
    assert await members.page("r", None, 2) == ["alice", "bob"]
    assert await members.page("r", "bob", 2) == ["carol", "zoë"]
    assert await members.page("r", "zoë", 2) == []
    assert await members.remove("r", ["bob", "dave", "bob"]) == ["bob"]
    assert await members.page("r", None, 10) == ["alice", "carol", "zoë"]
    await members.clear("r")
    assert await members.page("r", None, 10) == []
    assert await members.check("r", ["alice"]) == [False]
