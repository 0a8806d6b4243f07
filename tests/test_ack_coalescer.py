"""The AMQP bus's ack coalescer without a broker: what reaches the channel, and when.

Its seam is the aiormq channel (``basic_ack``), faked here; the real-broker behaviour (acked
actions never come back, unacked ones do) is in tests/test_engine_actions.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from shared.engine.amqp.acks import AckCoalescer


@dataclass(eq=False)  # hashed by identity, like a real channel
class FakeChannel:
    is_closed: bool = False
    sent: list[tuple[int, bool]] = field(default_factory=list)

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        self.sent.append((delivery_tag, multiple))


@dataclass
class FakeMessage:
    channel: FakeChannel
    delivery_tag: int


async def _turn() -> None:
    for _ in range(3):  # the flush, then the ack tasks it starts
        await asyncio.sleep(0)


async def test_done_prefix_goes_as_one_multiple_ack_and_stragglers_singly() -> None:
    channel = FakeChannel()
    acks = AckCoalescer("test")
    handles = {tag: acks.register(FakeMessage(channel, tag)) for tag in range(1, 7)}  # type: ignore[arg-type]
    for tag in (1, 2, 3, 5):
        await handles[tag]()
    await _turn()
    assert channel.sent == [(3, True), (5, False)]  # 4 is still being handled: 5 must not wait for it
    await handles[4]()
    await handles[6]()
    await _turn()
    assert channel.sent[2:] == [(6, True)]  # 4 and 6 done; 5 was acked already, the broker ignores it
    await handles[6]()  # a second ack of the same delivery sends nothing
    await _turn()
    assert len(channel.sent) == 3


async def test_nothing_is_sent_after_close_or_on_a_closed_channel() -> None:
    open_channel, dead_channel = FakeChannel(), FakeChannel(is_closed=True)
    acks = AckCoalescer("test")
    first = acks.register(FakeMessage(open_channel, 1))  # type: ignore[arg-type]
    second = acks.register(FakeMessage(open_channel, 2))  # type: ignore[arg-type]
    on_dead = acks.register(FakeMessage(dead_channel, 1))  # type: ignore[arg-type]
    await first()
    await on_dead()
    acks.close()  # flushes what is done, then stops: frames after the broker's close-ok kill the connection
    await second()
    await _turn()
    assert open_channel.sent == [(1, True)]
    assert dead_channel.sent == []
