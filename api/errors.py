"""IVS Chat error shapes (spec §6), serialized so botocore raises the matching exception class.

Each shape is one :class:`ApiError` subclass whose constructor takes exactly the body members
the botocore model defines for it. The error code travels in ``x-amzn-ErrorType`` (the first
place botocore's RestJSONParser looks), the members in a JSON body.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from aiohttp import web

REQUEST_ID_HEADER = "x-amzn-RequestId"
ERROR_TYPE_HEADER = "x-amzn-ErrorType"

# ResourceType values. The model's enum only has ROOM; botocore does not check it, and naming the
# real kind is more useful to a caller than pretending a logging configuration is a room.
ROOM = "ROOM"
LOGGING_CONFIGURATION = "LOGGING_CONFIGURATION"

# ValidationException reasons (ValidationExceptionReason enum).
UNKNOWN_OPERATION = "UNKNOWN_OPERATION"
FIELD_VALIDATION_FAILED = "FIELD_VALIDATION_FAILED"
OTHER = "OTHER"


def json_response(
    status: int, body: Any | None, request_id: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A REST-JSON response; ``body=None`` gives an empty body (the 204 operations)."""
    all_headers = {REQUEST_ID_HEADER: request_id, **(headers or {})}
    if body is None:
        return web.Response(status=status, headers=all_headers)
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        content_type="application/json",
        headers=all_headers,
    )


class ApiError(Exception):
    """Base of every IVS error; ``code`` is the botocore shape name."""

    code: ClassVar[str] = "InternalServerException"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"message": self.message}

    def to_response(self, request_id: str) -> web.Response:
        return json_response(self.status, self.body(), request_id, {ERROR_TYPE_HEADER: self.code})


class AccessDeniedException(ApiError):
    code = "AccessDeniedException"
    status = 403


class PendingVerification(ApiError):
    code = "PendingVerification"
    status = 403


class InternalServerException(ApiError):
    code = "InternalServerException"
    status = 500


class _ResourceError(ApiError):
    def __init__(self, message: str, resource_id: str, resource_type: str = ROOM) -> None:
        super().__init__(message)
        self.resource_id = resource_id
        self.resource_type = resource_type

    def body(self) -> dict[str, Any]:
        return {"message": self.message, "resourceId": self.resource_id, "resourceType": self.resource_type}


class ConflictException(_ResourceError):
    code = "ConflictException"
    status = 409


class ResourceNotFoundException(_ResourceError):
    code = "ResourceNotFoundException"
    status = 404


class _LimitError(_ResourceError):
    def __init__(self, message: str, resource_id: str, resource_type: str, limit: int) -> None:
        super().__init__(message, resource_id, resource_type)
        self.limit = limit

    def body(self) -> dict[str, Any]:
        return {**super().body(), "limit": self.limit}


class ServiceQuotaExceededException(_LimitError):
    code = "ServiceQuotaExceededException"
    status = 402  # sic: the model says 402, and botocore only needs the header anyway


class ThrottlingException(_LimitError):
    code = "ThrottlingException"
    status = 429


class ValidationException(ApiError):
    code = "ValidationException"
    status = 400

    def __init__(
        self, message: str, reason: str = FIELD_VALIDATION_FAILED, fields: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.fields = list(fields or [])

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "reason": self.reason}
        if self.fields:
            body["fieldList"] = [{"name": name, "message": message} for name, message in self.fields]
        return body

    @classmethod
    def for_fields(cls, fields: list[tuple[str, str]]) -> ValidationException:
        """AWS's summary style: ``N validation error(s) detected: name: problem; ...``."""
        count = len(fields)
        detail = "; ".join(f"{name}: {message}" for name, message in fields)
        plural = "error" if count == 1 else "errors"
        return cls(f"{count} validation {plural} detected: {detail}", FIELD_VALIDATION_FAILED, fields)

    @classmethod
    def field(cls, name: str, message: str) -> ValidationException:
        return cls.for_fields([(name, message)])
