"""One chat connection's protocol logic, without the socket: frame in → action or error.

Checks done here are the ones a gateway can decide alone: frame size, shape, the connection's
rate (10 requests/s), and the token's capabilities. Room-dependent limits are the router's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.features.ratelimit import SlidingWindow
from shared.protocol import frames
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.frames import Action, ClientRequest, ErrorCode, FrameError
from shared.protocol.ids import new_id
from shared.protocol.tokens import ChatToken

_KIND = {
    Action.SEND_MESSAGE: Kind.SEND_MESSAGE,
    Action.DELETE_MESSAGE: Kind.DELETE_MESSAGE,
    Action.DISCONNECT_USER: Kind.DISCONNECT_USER,
    Action.SEND_EVENT: Kind.SEND_EVENT,
}
# parley extensions answered by the gateway itself, and the capability each needs (None: any token)
_LOCAL: dict[Action, str | None] = {
    Action.GET_HISTORY: None,
    Action.GET_PRESENCE: None,
    Action.PING: None,
    Action.APPROVE_CONNECTION: "DISCONNECT_USER",  # moderators approve
}


@dataclass(slots=True)
class ChatSession:
    token: ChatToken
    connection_id: str
    gateway_id: str
    ip: str
    max_frame_bytes: int = 8192
    rate: SlidingWindow = field(default_factory=lambda: SlidingWindow(10))
    # parley extensions: SEND_EVENT and PING have their own window, apart from the messaging quota
    event_rate: SlidingWindow = field(default_factory=lambda: SlidingWindow(5))
    pending: bool = False  # awaiting a moderator's approval: only PING is served

    def request(self, data: str | bytes, now_ms: int) -> ActionEnvelope | ClientRequest:
        """Turn one client frame into an action for the router, a request the gateway answers
        itself (GET_HISTORY, PING, APPROVE_CONNECTION), or raise :class:`FrameError`."""
        if _too_large(data, self.max_frame_bytes):
            raise FrameError(ErrorCode.TOO_LARGE, f"Frames must be at most {self.max_frame_bytes} bytes")
        try:
            request = frames.parse_client_frame(data)
        except FrameError as error:
            if not self.rate.allow(now_ms):  # every frame counts, valid or not
                error.code, error.message = ErrorCode.TOO_MANY_REQUESTS, self._rate_message()
            raise
        if request.action in (Action.SEND_EVENT, Action.PING):
            if not self.event_rate.allow(now_ms):
                raise FrameError(
                    ErrorCode.TOO_MANY_REQUESTS,
                    f"Too many requests: at most {self.event_rate.limit} events and pings per second per connection",
                    request.request_id,
                )
        elif not self.rate.allow(now_ms):
            raise FrameError(ErrorCode.TOO_MANY_REQUESTS, self._rate_message(), request.request_id)
        if self.pending and request.action is not Action.PING:
            raise FrameError(
                ErrorCode.FORBIDDEN, "The connection awaits a moderator's approval; only PING", request.request_id
            )
        if request.action in _LOCAL:
            needed = _LOCAL[request.action]
            if needed is not None and needed not in self.token.capabilities:
                raise FrameError(
                    ErrorCode.FORBIDDEN, f"The chat token lacks the {needed} capability", request.request_id
                )
            return request  # reading (GET_HISTORY) is always allowed, like receiving
        if request.action.value not in self.token.capabilities:
            raise FrameError(
                ErrorCode.FORBIDDEN, f"The chat token lacks the {request.action.value} capability", request.request_id
            )
        return ActionEnvelope(
            kind=_KIND[request.action],
            frame_id=new_id(),
            room_id=self.token.room_id,
            received_ms=now_ms,
            request_id=request.request_id,
            gateway_id=self.gateway_id,
            connection_id=self.connection_id,
            user_id=self.token.user_id,
            user_attributes=self.token.attributes,
            ip=self.ip,
            content=request.content,
            attributes=request.attributes,
            event_name=request.event_name,
            message_id=request.message_id,
            disconnect_user_id=request.disconnect_user_id,
            reason=request.reason,
            recipient=request.recipient,
        )

    def _rate_message(self) -> str:
        return f"Too many requests: at most {self.rate.limit} messaging requests per second per connection"


def _too_large(data: str | bytes, limit: int) -> bool:
    if len(data) > limit:
        return True
    # A str is counted in characters; only encode when it could exceed the limit in bytes.
    return isinstance(data, str) and len(data) * 4 > limit and len(data.encode()) > limit
