"""The router's reviewer in every mode: a :class:`~shared.protocol.review.Reviewer` that sends a room
batch's reviews as ONE request over the Bus to whichever reviewer process takes it, and waits for
its verdicts (one reply). Each request carries the deadline at which the router stops waiting.

If no verdict comes within the timeout (no reviewer running, one killed mid-review, the broker
slow), the room's fallback applies here. The router still holds the action unacked meanwhile, so
nothing accepted is lost: it is delivered (fallback ALLOW) or answered with 406 (fallback DENY).
"""

from __future__ import annotations

import time

import structlog

from reviewer.ports import ReviewerBus
from reviewer.protocol import redact_uri
from shared import metrics
from shared.protocol.envelope import ActionEnvelope
from shared.protocol.models import Room
from shared.protocol.review import Reviewer, ReviewRequest, Verdict, decode_verdicts, encode_requests, fallback

log = structlog.get_logger("reviewer.remote")

WARN_EVERY_S = 10.0


class RemoteReviewer(Reviewer):
    def __init__(self, bus: ReviewerBus, timeout: float) -> None:
        self.bus = bus
        self.timeout = timeout
        self._warned_at = -WARN_EVERY_S

    async def review(self, room: Room, action: ActionEnvelope) -> Verdict:
        return (await self.review_many(room, [action]))[0]

    async def review_many(self, room: Room, actions: list[ActionEnvelope]) -> list[Verdict]:
        if not actions:
            return []
        verdicts: list[Verdict | None] = [None] * len(actions)
        try:
            deadline = time.time() + self.timeout
            data = encode_requests([ReviewRequest.of(room, action, deadline) for action in actions])
            reply = await self.bus.reviews.request(data, self.timeout)
            if reply is not None:
                answered = decode_verdicts(reply)
                if len(answered) == len(actions):
                    verdicts = answered
                else:
                    log.warning("review reply does not match its request", sent=len(actions), got=len(answered))
        except Exception:  # noqa: BLE001 - never raise into the router: it would retry the batch
            log.exception("review transport failed", room_id=room.id)
        missing = sum(verdict is None for verdict in verdicts)
        if missing:
            # The handler was not reached through us: an invocation error from the room's point of view.
            metrics.INVOCATION_ERRORS.labels(redact_uri(room.review_uri)).inc(missing)
            now = time.monotonic()
            if now - self._warned_at >= WARN_EVERY_S:
                self._warned_at = now
                log.warning("no verdict from any reviewer in time; fallback applied", timeout_s=self.timeout)
        return [
            fallback(room, action, "review handler unavailable") if verdict is None else verdict
            for action, verdict in zip(actions, verdicts, strict=True)
        ]
