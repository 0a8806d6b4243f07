"""Marks conformance: the same tests against the memory and the Redis engine (``engine_store``)."""

from __future__ import annotations

import asyncio

import pytest

from shared.engine.marks import Marks
from shared.engine.store import Store


@pytest.fixture
def marks(engine_store: Store) -> Marks:
    return engine_store.marks


async def test_claim_is_single_use_until_expiry(marks: Marks) -> None:
    assert await marks.claim("tok:1", 150) is True
    assert await marks.claim("tok:1", 150) is False
    assert await marks.claim("tok:2", 150) is True
    await asyncio.sleep(0.25)
    assert await marks.claim("tok:1", 150) is True


async def test_release_lifts_a_mark_early(marks: Marks) -> None:
    await marks.claim_many(["ban:r:u"], 60_000)
    assert await marks.release("ban:r:u") is True
    assert await marks.claimed(["ban:r:u"]) == [False]
    assert await marks.release("ban:r:u") is False
    assert await marks.claim("ban:r:u", 1000) is True


async def test_concurrent_claims_have_one_winner(marks: Marks) -> None:
    results = await asyncio.gather(*(marks.claim("tok:race", 5000) for _ in range(25)))
    assert results.count(True) == 1


async def test_claimed_and_claim_many(marks: Marks) -> None:
    assert await marks.claimed([]) == []
    await marks.claim_many([], 1000)
    assert await marks.claimed(["a", "b", "c"]) == [False, False, False]
    await marks.claim_many(["a", "b"], 150)
    await marks.claim("c", 5000)
    assert await marks.claimed(["a", "b", "c", "d"]) == [True, True, True, False]
    assert await marks.claim("a", 1000) is False  # claim_many marks like claim does
    await asyncio.sleep(0.25)
    assert await marks.claimed(["a", "b", "c"]) == [False, False, True]
