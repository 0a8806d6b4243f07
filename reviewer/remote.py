"""The router's reviewer in every mode: a :class:`~shared.review.Reviewer` that sends each review
over the Bus to whichever reviewer process takes it, and waits for the verdict.

If no verdict comes within the timeout (no reviewer running, one killed mid-review, the broker
slow), the room's fallback applies here. The router still holds the action unacked meanwhile, so
nothing accepted is lost: it is delivered (fallback ALLOW) or answered with 406 (fallback DENY).
"""

from __future__ import annotations

import time

import structlog

from reviewer.protocol import redact_uri
from shared import metrics
from shared.bus import Bus
from shared.envelope import ActionEnvelope
from shared.models import Room
from shared.review import Reviewer, ReviewRequest, Verdict, fallback

log = structlog.get_logger("reviewer.remote")

WARN_EVERY_S = 10.0


class RemoteReviewer(Reviewer):
    def __init__(self, bus: Bus, timeout: float) -> None:
        self.bus = bus
        self.timeout = timeout
        self._warned_at = -WARN_EVERY_S

    async def review(self, room: Room, action: ActionEnvelope) -> Verdict:
        try:
            request = ReviewRequest.of(room, action)
            data = await self.bus.request_review(request.encode(), self.timeout)
            if data is not None:
                return Verdict.decode(data)
        except Exception:  # noqa: BLE001 - never raise into the router: it would retry the batch
            log.exception("review transport failed", room_id=room.id)
        # The handler was not reached through us: an invocation error from the room's point of view.
        metrics.INVOCATION_ERRORS.labels(redact_uri(room.review_uri)).inc()
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            log.warning("no verdict from any reviewer in time; fallback applied", timeout_s=self.timeout)
        return fallback(room, action, "review handler unavailable")
