"""The reviewer side of the transport: serve review requests from the Bus with a ReviewService.

Any number of these (``parley reviewer`` processes, or the one inside ``parley dev``) compete for
requests; each takes at most ``concurrency`` at a time.
"""

from __future__ import annotations

import structlog

from reviewer.config import ReviewConfig
from reviewer.ports import ReviewerBus
from reviewer.service import ReviewService
from shared.engine.review_rpc import ReviewServer

log = structlog.get_logger("reviewer")


class ReviewerServer:
    def __init__(self, bus: ReviewerBus, config: ReviewConfig, service: ReviewService | None = None) -> None:
        self.bus = bus
        self.config = config
        self.service = service or ReviewService(config)
        self._serving: ReviewServer | None = None

    async def start(self) -> None:
        self._serving = await self.bus.reviews.serve(self.service.handle, self.config.concurrency)
        log.info("reviewer started", concurrency=self.config.concurrency, lambda_mappings=len(self.config.lambda_map))

    async def stop(self) -> None:
        if self._serving is not None:
            await self._serving.stop()  # lets reviews in flight answer first
            self._serving = None
        await self.service.close()
