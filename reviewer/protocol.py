"""The IVS review contract (spec §8), pure: the request a handler receives, and the rules its
response must satisfy. No I/O, no clock; ``service`` does the invoking."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shared.protocol.frames import MAX_ATTRIBUTES_BYTES, MAX_REASON_LENGTH
from shared.protocol.review import ReviewRequest, Verdict

REVIEW_BUDGET_S = 0.2  # IVS's handler timeout, a fixed (not adjustable) quota
MAX_RESPONSE_BYTES = 64 * 1024  # a valid response is far smaller (Content ≤ 500, Attributes ≤ 1 KB)
RESULTS = ("ALLOW", "DENY")


class InvocationError(Exception):
    """The handler could not be invoked (timeout, refused, non-2xx, unknown URI): InvocationErrors."""


class HandlerRefused(InvocationError):
    """The handler's address is one parley never calls, or not in PARLEY_REVIEW_ALLOWED_NETWORKS
    (``shared.address_policy``): not invoked, so an invocation error too."""


class InvalidResponse(Exception):
    """The handler answered, but not a valid review response: ResponseValidationErrors."""


def handler_request(request: ReviewRequest) -> dict[str, Any]:
    """The JSON body a handler receives (field names as IVS sends them to a Lambda)."""
    return {
        "Content": request.content,
        "MessageId": request.message_id,
        "RoomArn": request.room_arn,
        "Attributes": dict(request.attributes or {}),
        "Sender": {
            "UserId": request.user_id,
            "Ip": request.ip,
            "Attributes": dict(request.user_attributes or {}),
        },
    }


def parse_response(body: bytes) -> Any:
    """Decode a handler's HTTP body; anything but JSON is an invalid response."""
    if len(body) > MAX_RESPONSE_BYTES:
        raise InvalidResponse(f"response over {MAX_RESPONSE_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:  # also UnicodeDecodeError
        raise InvalidResponse("response is not JSON") from exc


def validate_response(response: Any, request: ReviewRequest) -> Verdict:
    """Turn a handler's decoded response into a verdict, or raise :class:`InvalidResponse`.

    ALLOW needs Content of 1..maximumMessageLength code points; missing or null Attributes keep
    the message's own. DENY takes Attributes.Reason for the sender's ERROR 406; its Content is not
    delivered, so only its type is checked (a DENY is honoured even without Content).
    """
    if not isinstance(response, dict):
        raise InvalidResponse("response is not a JSON object")
    result = response.get("ReviewResult")
    if result not in RESULTS:
        raise InvalidResponse("ReviewResult must be ALLOW or DENY")
    attributes = _attributes(response.get("Attributes"))
    content = response.get("Content")
    if result == "DENY":
        if content is not None and not isinstance(content, str):
            raise InvalidResponse("Content must be a string")
        reason = (attributes or {}).get("Reason", "")
        return Verdict(False, request.content, request.attributes, reason[:MAX_REASON_LENGTH])
    if not isinstance(content, str) or not 1 <= len(content) <= request.maximum_message_length:
        raise InvalidResponse(f"Content must be a string of 1 to {request.maximum_message_length} characters")
    if not _utf8(content):
        raise InvalidResponse("Content is not valid Unicode")
    return Verdict(True, content, request.attributes if attributes is None else attributes)


def _attributes(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidResponse("Attributes must be a map of strings")
    # Lone surrogates (legal in JSON escapes) would make the router's frame encoding fail forever.
    if not all(_utf8(k) and _utf8(v) for k, v in value.items()):
        raise InvalidResponse("Attributes are not valid Unicode")
    if sum(len(k.encode()) + len(v.encode()) for k, v in value.items()) > MAX_ATTRIBUTES_BYTES:
        raise InvalidResponse(f"Attributes over {MAX_ATTRIBUTES_BYTES} bytes")
    return value


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def redact_uri(uri: str) -> str:
    """A handler URI fit for logs and metric labels: http(s) URLs lose credentials, query and
    fragment (where webhook secrets live); ARNs and ``parley:`` URIs are configuration, kept."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return uri
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
