"""One chat connection's protocol logic, without the socket: frame in → action or error.

Checks done here are the ones a gateway can decide alone: frame size, shape, the connection's
rate (10 requests/s), and the token's capabilities. Room-dependent limits are the router's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared import frames
from shared.envelope import ActionEnvelope, Kind
from shared.frames import Action, ClientRequest, ErrorCode, FrameError
from shared.ids import new_id
from shared.ratelimit import SlidingWindow
from shared.tokens import ChatToken

_KIND = {
    Action.SEND_MESSAGE: Kind.SEND_MESSAGE,
    Action.DELETE_MESSAGE: Kind.DELETE_MESSAGE,
    Action.DISCONNECT_USER: Kind.DISCONNECT_USER,
}


@dataclass(slots=True)
class ChatSession:
    token: ChatToken
    connection_id: str
    gateway_id: str
    ip: str
    max_frame_bytes: int = 8192
    rate: SlidingWindow = field(default_factory=lambda: SlidingWindow(10))

    def request(self, data: str | bytes, now_ms: int) -> ActionEnvelope | ClientRequest:
        """Turn one client frame into an action for the router, a request the gateway answers
        itself (GET_HISTORY), or raise :class:`FrameError`."""
        if _too_large(data, self.max_frame_bytes):
            raise FrameError(ErrorCode.TOO_LARGE, f"Frames must be at most {self.max_frame_bytes} bytes")
        allowed = self.rate.allow(now_ms)  # every frame counts, valid or not
        try:
            request = frames.parse_client_frame(data)
        except FrameError as error:
            if not allowed:
                error.code, error.message = ErrorCode.TOO_MANY_REQUESTS, self._rate_message()
            raise
        if not allowed:
            raise FrameError(ErrorCode.TOO_MANY_REQUESTS, self._rate_message(), request.request_id)
        if request.action is Action.GET_HISTORY:
            return request  # reading is always allowed, like receiving
        if request.action.value not in self.token.capabilities:
            raise FrameError(
                ErrorCode.FORBIDDEN, f"The chat token lacks the {request.action.value} capability", request.request_id
            )
        action = ActionEnvelope(
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
        )
        if request.action is Action.SEND_MESSAGE:
            action.content = request.content
            action.attributes = request.attributes
        elif request.action is Action.DELETE_MESSAGE:
            action.target, action.reason = request.message_id, request.reason
        else:
            action.target, action.reason = request.user_id, request.reason
        return action

    def _rate_message(self) -> str:
        return f"Too many requests: at most {self.rate.limit} messaging requests per second per connection"


def _too_large(data: str | bytes, limit: int) -> bool:
    if len(data) > limit:
        return True
    # A str is counted in characters; only encode when it could exceed the limit in bytes.
    return isinstance(data, str) and len(data) * 4 > limit and len(data.encode()) > limit
