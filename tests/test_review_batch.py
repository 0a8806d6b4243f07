"""Batched reviews and deadlines, without sockets: the batch request/reply codec, the reviewer
dropping requests its router has given up on, and one bus request per room batch."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgpack
import pytest
from prometheus_client import REGISTRY

from reviewer.config import ReviewConfig
from reviewer.remote import RemoteReviewer
from reviewer.service import ReviewService
from shared.engine.memory import MemoryBus
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.models import Room
from shared.protocol.review import (
    FallbackReviewer,
    ReviewRequest,
    Verdict,
    decode_requests,
    decode_verdicts,
    encode_requests,
    encode_verdicts,
)


def _request(uri: str = "parley:allow", content: str = "hello", deadline: float = 0.0) -> ReviewRequest:
    return ReviewRequest(
        uri, "DENY", 100, "MsgId123abcd", "arn:r", content, {"k": "v"}, "alice", None, "203.0.113.7", deadline
    )


def _expired(stage: str) -> float:
    return REGISTRY.get_sample_value("parley_review_expired_total", {"stage": stage}) or 0.0


def _invocation_errors(uri: str) -> float:
    return REGISTRY.get_sample_value("InvocationErrors_total", {"Uri": uri}) or 0.0


def _room(uri: str = "parley:allow") -> Room:
    return Room(id="r", arn="arn:r", maximum_message_length=100, review_uri=uri, review_fallback="DENY")


def _action(n: int) -> ActionEnvelope:
    return ActionEnvelope(Kind.SEND_MESSAGE, f"Id{n:010d}", "r", n, content=f"m{n}", user_id="u", ip="1.2.3.4")


def _recording(service: ReviewService, delay: float = 0.0) -> list[str]:
    """Replace the handler with one answering ALLOW ``ok:<content>`` after ``delay``; returns the
    contents it was called with."""
    called: list[str] = []

    async def invoke(uri: str, payload: dict[str, Any]) -> Any:
        called.append(payload["Content"])
        await asyncio.sleep(delay)
        return {"ReviewResult": "ALLOW", "Content": "ok:" + payload["Content"]}

    service._invoke = invoke  # type: ignore[method-assign]
    return called


# --- codec ------------------------------------------------------------------------------------
def test_batch_codec_round_trips_requests_and_verdicts() -> None:
    requests = [_request(content="a", deadline=1234.5), _request(content="b", deadline=1234.5)]
    decoded, batched = decode_requests(encode_requests(requests))
    assert batched and decoded == requests
    assert decode_requests(encode_requests([])) == ([], True)
    verdicts = [Verdict(True, "x", {"a": "b"}), None, Verdict(False, "y", None, "why")]
    assert decode_verdicts(encode_verdicts(verdicts)) == verdicts


def test_a_single_request_is_still_understood() -> None:
    """A lone ReviewRequest (also the 10-field form, without a deadline) decodes as a non-batch."""
    single = _request(deadline=99.0)
    assert decode_requests(single.encode()) == ([single], False)
    legacy = msgpack.packb(["parley:allow", "ALLOW", 10, "Id", "arn:r", "hi", None, "u", None, "ip"])
    (request,), batched = decode_requests(legacy)
    assert not batched and request.deadline == 0.0 and request.content == "hi"


# --- deadlines in the reviewer ------------------------------------------------------------------
async def test_a_request_past_its_deadline_is_dropped_on_dequeue() -> None:
    service = ReviewService(ReviewConfig())
    called = _recording(service)
    before = _expired("dequeued")
    assert await service.review(_request(deadline=time.time() - 0.01)) is None
    assert called == [] and _expired("dequeued") == before + 1
    assert await service.review(_request(deadline=time.time() + 5)) == Verdict(True, "ok:hello", {"k": "v"})


async def test_a_request_expiring_while_waiting_for_a_slot_is_dropped() -> None:
    """One slot held by a 150 ms review: a request whose router gives up after 50 ms is dropped
    without its handler being called, after ~50 ms (not the 200 ms budget)."""
    service = ReviewService(ReviewConfig(concurrency=1))
    called = _recording(service, delay=0.15)
    uri = "parley:unit-expired-slot"
    before, errors = _expired("slot"), _invocation_errors(uri)
    loop = asyncio.get_running_loop()
    first = asyncio.create_task(service.review(_request(uri, "first")))
    await asyncio.sleep(0)
    started = loop.time()
    assert await service.review(_request(uri, "late", deadline=time.time() + 0.05)) is None
    assert loop.time() - started < 0.12
    assert await first == Verdict(True, "ok:first", {"k": "v"})
    assert called == ["first"]
    assert _expired("slot") == before + 1 and _invocation_errors(uri) == errors


async def test_the_handler_gets_only_the_time_left() -> None:
    """Deadline 80 ms away, handler needs 150 ms: the call is cut at ~80 ms, not at the 200 ms
    budget, and counts as an invocation error with the fallback verdict."""
    service = ReviewService(ReviewConfig())
    _recording(service, delay=0.15)
    uri = "parley:unit-time-left"
    before = _invocation_errors(uri)
    loop = asyncio.get_running_loop()
    started = loop.time()
    verdict = await service.review(_request(uri, deadline=time.time() + 0.08))
    assert 0.06 < loop.time() - started < 0.14
    assert verdict == Verdict(False, "hello", {"k": "v"}, "review handler unavailable")
    assert _invocation_errors(uri) == before + 1


async def test_handle_answers_a_batch_in_one_reply_with_expired_ones_empty() -> None:
    service = ReviewService(ReviewConfig())
    called = _recording(service)
    now = time.time()
    batch = [_request(content="a", deadline=now + 5), _request(content="b", deadline=now - 1)]
    reply = await service.handle(encode_requests(batch))
    assert reply is not None
    assert decode_verdicts(reply) == [Verdict(True, "ok:a", {"k": "v"}), None]
    assert called == ["a"]
    # Every one expired: no reply at all (nobody waits for it).
    assert await service.handle(encode_requests([_request(deadline=now - 1)] * 3)) is None
    # A single request gets a single Verdict.
    single = await service.handle(_request(content="c").encode())
    assert single is not None and Verdict.decode(single) == Verdict(True, "ok:c", {"k": "v"})


# --- one bus request per room batch -------------------------------------------------------------
async def test_remote_reviewer_sends_a_room_batch_as_one_request(monkeypatch: pytest.MonkeyPatch) -> None:
    bus = MemoryBus()
    service = ReviewService(ReviewConfig())
    _recording(service)
    await bus.reviews.serve(service.handle, 8)
    sent: list[bytes] = []
    request_review = bus.reviews.request

    async def counting(data: bytes, timeout: float) -> bytes | None:
        sent.append(data)
        return await request_review(data, timeout)

    monkeypatch.setattr(bus.reviews, "request", counting)
    reviewer = RemoteReviewer(bus, 0.3)
    actions = [_action(n) for n in range(5)]
    started = time.time()
    verdicts = await reviewer.review_many(_room(), actions)
    assert [v.content for v in verdicts] == [f"ok:m{n}" for n in range(5)]
    assert len(sent) == 1
    requests, batched = decode_requests(sent[0])
    assert batched and [r.message_id for r in requests] == [a.frame_id for a in actions]
    assert all(started + 0.29 < r.deadline < time.time() + 0.31 for r in requests)
    assert await reviewer.review_many(_room(), []) == []


async def test_missing_verdicts_fall_back_and_count_as_invocation_errors() -> None:
    uri = "parley:unit-missing-verdicts"
    bus = MemoryBus()

    async def half(data: bytes) -> bytes | None:  # answers every other message of the batch
        requests, _ = decode_requests(data)
        return encode_verdicts([Verdict(True, "ok", None) if i % 2 == 0 else None for i in range(len(requests))])

    reviewer = RemoteReviewer(bus, 0.2)
    before = _invocation_errors(uri)
    # No reviewer serving at all: every message falls back.
    verdicts = await reviewer.review_many(_room(uri), [_action(n) for n in range(3)])
    assert all(not v.allow and v.reason == "review handler unavailable" for v in verdicts)
    assert _invocation_errors(uri) == before + 3
    await bus.reviews.serve(half, 4)
    verdicts = await reviewer.review_many(_room(uri), [_action(n) for n in range(3)])
    assert [v.allow for v in verdicts] == [True, False, True]
    assert verdicts[1] == Verdict(False, "m1", None, "review handler unavailable")
    assert _invocation_errors(uri) == before + 4


async def test_the_default_review_many_reviews_each_in_order() -> None:
    verdicts = await FallbackReviewer().review_many(_room(), [_action(1), _action(2)])
    assert [v.content for v in verdicts] == ["m1", "m2"]
    assert all(not v.allow for v in verdicts)
