"""When a shard's done-marks generation may be dropped: the rotation rules of router/dedupe.py
(the engines' own tests are ``tests/test_engine_done_marks.py``)."""

from __future__ import annotations

import pytest

from router.dedupe import ShardDedupe


# --- when a generation may go (router/dedupe.py) --------------------------------------------
async def _ack() -> None:
    return None


def _dedupe(window_ms: int = 1000) -> ShardDedupe:
    dedupe = ShardDedupe(0, window_ms)
    dedupe.loaded(5, now_ms=0)
    return dedupe


def test_no_rotation_before_a_first_delivery_however_long_the_shard_waits() -> None:
    """No consumer receiving, no rotation: marks outlive an outage of any length."""
    dedupe = _dedupe()
    assert not any(dedupe.rotation_due(t) for t in range(0, 3_600_000, 1000))


def test_rotation_after_a_window_of_deliveries_and_two_clear_checks() -> None:
    dedupe = _dedupe(window_ms=1000)
    dedupe.delivered(False, _ack, now_ms=100)
    assert not dedupe.rotation_due(1050)  # first clear check: must hold again one check later
    assert dedupe.rotation_due(1150)
    fresh = _dedupe(window_ms=1000)
    fresh.delivered(False, _ack, now_ms=100)
    assert not fresh.rotation_due(500) and not fresh.rotation_due(900)  # clear, but within the window
    assert fresh.rotation_due(1100)
    dedupe.rotated(6, now_ms=1200)
    assert not dedupe.rotation_due(1300) and not dedupe.rotation_due(2100)  # a generation lives a window
    assert dedupe.rotation_due(2300)


async def test_an_unacked_redelivered_action_blocks_rotation_until_acked() -> None:
    """A previous owner's actions come back first; until each is checked and acked, nothing goes."""
    dedupe = _dedupe()
    ack = dedupe.delivered(True, _ack, now_ms=0)
    assert not any(dedupe.rotation_due(t) for t in range(0, 10_000, 500))
    await ack()
    assert not dedupe.rotation_due(10_000)  # the ack leaves on the next turn: one more check
    assert dedupe.rotation_due(10_500)


async def test_unacked_marks_in_the_oldest_generation_block_rotation() -> None:
    dedupe = _dedupe()
    ack = dedupe.delivered(False, _ack, now_ms=0)
    ack.marked(4)  # marked in generation 4 = current - 1, the one the next rotation drops
    assert not any(dedupe.rotation_due(t) for t in range(0, 10_000, 500))
    ack.marked(5)  # a retried batch marked it anew in the current generation
    assert not dedupe.rotation_due(10_000) and dedupe.rotation_due(10_500)
    dedupe.rotated(6, now_ms=10_500)
    assert not any(dedupe.rotation_due(t) for t in range(11_000, 20_000, 500))  # 5 is now the oldest
    await ack()
    assert not dedupe.rotation_due(20_000) and dedupe.rotation_due(20_500)


async def test_a_failed_ack_keeps_blocking() -> None:
    """An ack that raised never reached the broker: the action comes back, its mark must stay."""

    async def broken() -> None:
        raise ConnectionError("channel closed")

    dedupe = _dedupe()
    ack = dedupe.delivered(True, broken, now_ms=0)
    with pytest.raises(ConnectionError):
        await ack()
    assert not any(dedupe.rotation_due(t) for t in range(0, 10_000, 500))
