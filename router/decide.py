"""Per-room rules, pure: given a room's config and state, turn one action into frames.

No I/O and no clock (time is the action's acceptance time); the worker does the publishing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from router.account import AccountRates
from shared.features.presence import event_attributes as presence_attributes
from shared.features.ratelimit import SlidingWindow
from shared.protocol import frames
from shared.protocol.envelope import NOT_LOGGED, ActionEnvelope, ConnectionNotice, DeliveryItem, Kind
from shared.protocol.models import Room
from shared.protocol.review import Verdict


@dataclass(slots=True)
class Outcome:
    """What one action produced: frames for the room, or an error for the requester."""

    delivery: DeliveryItem | None = None
    error: ConnectionNotice | None = None
    gateway_id: str = ""  # where ``error`` goes
    needs_review: bool = False  # passed the room's rules; the reviewer decides, then ``reviewed``


@dataclass(slots=True)
class RoomState:
    """What the router remembers about a room it owns (lost on failover; only rate history)."""

    room: Room | None
    rate: SlidingWindow = field(default_factory=lambda: SlidingWindow(10))

    def configure(self, room: Room | None) -> None:
        self.room = room
        if room is not None:
            self.rate.limit = room.maximum_message_rate_per_second


def reject(action: ActionEnvelope, code: int, message: str) -> Outcome:
    if not action.gateway_id:  # control-plane actions were validated before publishing
        return Outcome()
    frame = frames.error_frame(frame_id=action.frame_id, request_id=action.request_id, code=code, message=message)
    return Outcome(error=ConnectionNotice(action.connection_id, frame), gateway_id=action.gateway_id)


def _over_account_rate(action: ActionEnvelope, account: AccountRates | None) -> Outcome | None:
    """ERROR 429 if the account-wide rate refuses ``action``; asking counts it when allowed."""
    refusal = None if account is None else account.refusal(action)
    return None if refusal is None else reject(action, frames.ErrorCode.TOO_MANY_REQUESTS, refusal)


def decide(action: ActionEnvelope, state: RoomState, account: AccountRates | None = None) -> Outcome:
    room = state.room
    if room is None:
        return reject(action, frames.ErrorCode.NOT_FOUND, "Room not found")
    # the account-wide rate counts only what passed the room's own rules (SendMessage's below)
    if action.kind != Kind.SEND_MESSAGE and (over := _over_account_rate(action, account)) is not None:
        return over

    if action.kind == Kind.SEND_MESSAGE:
        if not action.content or len(action.content) > room.maximum_message_length:
            return reject(
                action,
                frames.ErrorCode.BAD_REQUEST,
                f"Messages must be 1 to {room.maximum_message_length} characters",
            )
        # Measured at acceptance, not decision, time: a backlog after a router failover is
        # not the clients' burst and must not be refused for it.
        if not state.rate.allow(action.received_ms):
            return reject(
                action,
                frames.ErrorCode.TOO_MANY_REQUESTS,
                f"Room message rate of {room.maximum_message_rate_per_second}/s exceeded",
            )
        if (over := _over_account_rate(action, account)) is not None:
            return over
        if room.review_uri:
            return Outcome(needs_review=True)
        return _message(action, action.content, action.attributes)

    if action.kind == Kind.DELETE_MESSAGE:
        attributes = frames.delete_message_attributes(action.message_id, action.reason)
        return Outcome(_event(action, frames.EVENT_DELETE_MESSAGE, attributes))

    if action.kind == Kind.DISCONNECT_USER:
        attributes = frames.disconnect_user_attributes(action.disconnect_user_id, action.reason)
        return Outcome(
            _event(
                action,
                frames.EVENT_DISCONNECT_USER,
                attributes,
                close_user_id=action.disconnect_user_id,
                close_reason="Disconnected by moderator",
            )
        )

    if action.kind == Kind.SEND_EVENT:
        if action.gateway_id:  # parley extension: a client's SEND_EVENT (typing, receipts, app:*)
            return Outcome(_client_event(action))
        return Outcome(_event(action, action.event_name, action.attributes))

    if action.kind == Kind.PRESENCE:  # parley extension: parley:USER_JOINED / parley:USER_LEFT
        if not room.presence_events:
            return Outcome()
        return Outcome(_event(action, action.event_name, presence_attributes(action.user_id, action.user_attributes)))

    if action.kind == Kind.MEMBERSHIP:  # parley extension: parley:MEMBER_ADDED / parley:MEMBER_REMOVED
        return Outcome(_event(action, action.event_name, action.attributes))

    return reject(action, frames.ErrorCode.BAD_REQUEST, "Unknown action")


def reviewed(action: ActionEnvelope, verdict: Verdict) -> Outcome:
    """The outcome of a SendMessage once its review is in: delivered as reviewed, or 406."""
    if not verdict.allow:
        reason = f": {verdict.reason}" if verdict.reason else ""
        return reject(action, frames.ErrorCode.REJECTED, f"Message rejected by review{reason}")
    return _message(action, verdict.content, verdict.attributes)


def _message(action: ActionEnvelope, content: str, attributes: dict[str, str] | None) -> Outcome:
    frame = frames.message_frame(
        frame_id=action.frame_id,
        request_id=action.request_id,
        content=content,
        attributes=attributes,
        send_ms=action.received_ms,
        sender_user_id=action.user_id,
        sender_attributes=action.user_attributes,
        recipient=action.recipient,
    )
    return Outcome(
        DeliveryItem(
            action.kind,
            frame,
            "MESSAGE",
            received_ms=action.received_ms,
            frame_id=action.frame_id,
            only_users=_direct_parties(action),
        )
    )


def _direct_parties(action: ActionEnvelope) -> list[str] | None:
    """A direct message or event goes to every connection of its two parties and nobody else."""
    return [action.user_id, action.recipient] if action.recipient else None


def _client_event(action: ActionEnvelope) -> DeliveryItem:
    """Ephemeral: not reviewed, never in history, not logged (``log_type`` empty)."""
    frame = frames.event_frame(
        frame_id=action.frame_id,
        event_name=action.event_name,
        attributes=action.attributes,
        send_ms=action.received_ms,
        request_id=action.request_id,
        sender_user_id=action.user_id,
        sender_attributes=action.user_attributes,
        recipient=action.recipient,
    )
    return DeliveryItem(
        action.kind,
        frame,
        NOT_LOGGED,
        received_ms=action.received_ms,
        frame_id=action.frame_id,
        only_users=_direct_parties(action),
    )


def _event(
    action: ActionEnvelope,
    name: str,
    attributes: dict[str, str] | None,
    close_user_id: str = "",
    close_reason: str = "",
) -> DeliveryItem:
    frame = frames.event_frame(
        frame_id=action.frame_id,
        event_name=name,
        attributes=attributes,
        send_ms=action.received_ms,
        request_id=action.request_id,
    )
    return DeliveryItem(
        action.kind,
        frame,
        "EVENT",
        close_user_id=close_user_id,
        close_reason=close_reason,
        received_ms=action.received_ms,
        frame_id=action.frame_id,
    )
