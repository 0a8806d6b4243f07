"""One review, start to verdict: resolve the handler, invoke it within the budget, validate,
and fall back on anything else. Counts the IVS error metrics and the review latency.

Runs wherever reviews are served (``parley reviewer``, ``parley dev``); bounded by a semaphore so
a flood of reviews queues here instead of opening unbounded sockets. Waiting for a slot counts
against the 200 ms budget: the sender waits for the verdict either way.

A request carries its router's deadline: one already past it when dequeued, or when a slot frees
up, is dropped without calling the handler (``parley_review_expired_total``) and gets no verdict,
so an overloaded reviewer spends its time on reviews someone still waits for. The handler gets
the budget or the time left, whichever is shorter.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from aiohttp.abc import AbstractResolver

from reviewer import builtin
from reviewer.config import ReviewConfig
from reviewer.protocol import (
    REVIEW_BUDGET_S,
    HandlerRefused,
    InvalidResponse,
    InvocationError,
    handler_request,
    parse_response,
    redact_uri,
    validate_response,
)
from reviewer.webhook import Webhook
from shared import metrics
from shared.protocol.review import ReviewRequest, Verdict, decode_requests, encode_verdicts

log = structlog.get_logger("reviewer")

LAMBDA_PREFIX = "arn:aws:lambda:"
WARN_EVERY_S = 10.0  # per handler URI: a handler that is down must not flood the log


class _Expired(Exception):
    """The request's deadline passed before its handler was called."""


class ReviewService:
    def __init__(
        self, config: ReviewConfig, *, budget: float = REVIEW_BUDGET_S, resolver: AbstractResolver | None = None
    ) -> None:
        """``resolver``: the DNS seam (tests); rooms' URLs are still judged on what it answers."""
        self.config = config
        self.budget = budget
        self._slots = asyncio.Semaphore(config.concurrency)
        # Rooms' URLs come from API callers: only addresses the policy accepts.
        self._webhook = Webhook(config.concurrency, config.allowed_networks, resolver=resolver)
        # PARLEY_REVIEW_LAMBDA_MAP targets come from the operator, who may point them anywhere.
        self._mapped = Webhook(config.concurrency, None, resolver=resolver)
        self._warned: dict[str, float] = {}

    async def close(self) -> None:
        await self._webhook.close()
        await self._mapped.close()

    async def handle(self, data: bytes) -> bytes | None:
        """The bus-facing entry: a room batch of requests in, its verdicts out in one reply (a single
        ``ReviewRequest`` gets a single ``Verdict``); None (no reply) when every one expired."""
        try:
            requests, batched = decode_requests(data)
        except Exception:  # noqa: BLE001 - no request, no fallback to give: the caller times out
            log.warning("undecodable review request dropped", size=len(data))
            return None
        if not batched:
            verdict = await self.review(requests[0])
            return None if verdict is None else verdict.encode()
        verdicts = await asyncio.gather(*(self.review(request) for request in requests))
        if all(verdict is None for verdict in verdicts):
            return None
        return encode_verdicts(verdicts)

    async def review(self, request: ReviewRequest) -> Verdict | None:
        """The handler's verdict, or the room's fallback; None (dropped, handler not called) when
        the request's deadline passed first. Never raises."""
        started = time.perf_counter()
        budget = self.budget
        if request.deadline:
            left = request.deadline - time.time()
            if left <= 0:
                metrics.REVIEWS_EXPIRED.labels("dequeued").inc()
                return None
            budget = min(budget, left)
        outcome = "fallback"
        invoked = False
        try:
            async with asyncio.timeout(budget):
                async with self._slots:
                    if request.deadline and time.time() >= request.deadline:
                        raise _Expired
                    invoked = True
                    response = await self._invoke(request.uri, handler_request(request))
            verdict = validate_response(response, request)
            outcome = "allow" if verdict.allow else "deny"
        except _Expired:
            metrics.REVIEWS_EXPIRED.labels("slot").inc()
            return None
        except TimeoutError as exc:
            if not invoked and request.deadline and time.time() >= request.deadline:
                # Still waiting for a slot when the router gave up on it.
                metrics.REVIEWS_EXPIRED.labels("slot").inc()
                return None
            metrics.INVOCATION_ERRORS.labels(redact_uri(request.uri)).inc()
            self._warn("review handler not invoked; fallback applied", request, str(exc) or "timeout")
            verdict = request.fallback("review handler unavailable")
        except InvalidResponse as exc:
            metrics.RESPONSE_VALIDATION_ERRORS.labels(redact_uri(request.uri)).inc()
            self._warn("review handler response invalid; fallback applied", request, str(exc))
            verdict = request.fallback("invalid review response")
        except HandlerRefused as exc:
            metrics.INVOCATION_ERRORS.labels(redact_uri(request.uri)).inc()
            self._warn("review handler address refused; fallback applied", request, str(exc))
            verdict = request.fallback("review handler unavailable")
        except InvocationError as exc:
            metrics.INVOCATION_ERRORS.labels(redact_uri(request.uri)).inc()
            self._warn("review handler not invoked; fallback applied", request, str(exc) or "timeout")
            verdict = request.fallback("review handler unavailable")
        except Exception as exc:  # noqa: BLE001 - a bug must cost one fallback, not the reviewer
            metrics.INVOCATION_ERRORS.labels(redact_uri(request.uri)).inc()
            log.exception("review failed; fallback applied", uri=redact_uri(request.uri), error_type=type(exc).__name__)
            verdict = request.fallback("review handler unavailable")
        metrics.REVIEW_SECONDS.labels(outcome).observe(time.perf_counter() - started)
        return verdict

    async def _invoke(self, uri: str, payload: dict[str, Any]) -> Any:
        """The handler's decoded response (raising ``InvocationError`` / ``InvalidResponse``)."""
        webhook = self._webhook
        if uri.startswith(LAMBDA_PREFIX):
            # No Lambda runtime here: an ARN works only if the operator mapped it to a handler.
            target = self.config.lambda_map.get(uri)
            if target is None or target.startswith(LAMBDA_PREFIX):
                raise InvocationError("no executor for this Lambda ARN (see PARLEY_REVIEW_LAMBDA_MAP)")
            uri, webhook = target, self._mapped
        if uri.startswith(builtin.SCHEME + ":"):
            try:
                handler = builtin.resolve(uri)
            except builtin.BuiltinError as exc:
                raise InvocationError(str(exc)) from exc
            return handler(payload)
        if uri.startswith(("http://", "https://")):
            return parse_response(await webhook.post(uri, payload, self.budget))
        raise InvocationError("unsupported handler URI")

    def _warn(self, event: str, request: ReviewRequest, error: str) -> None:
        """Warn once per URI per interval; every occurrence is in the metrics and at debug."""
        uri = redact_uri(request.uri)
        now = time.monotonic()
        if now - self._warned.get(uri, -WARN_EVERY_S) >= WARN_EVERY_S:
            self._warned[uri] = now
            log.warning(event, uri=uri, room_arn=request.room_arn, error=error)
        else:
            log.debug(event, uri=uri, message_id=request.message_id, error=error)
