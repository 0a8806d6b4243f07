"""Auth, protocol-level errors, throttling and internal errors: what boto3 sees for each."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import TYPE_CHECKING

import pytest

from shared.engine.memory import MemoryStore
from shared.engine.memory.records import MemoryRecords
from shared.engine.records import RecordKind

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]


def _error(status_headers_body: tuple) -> tuple[int, str, dict]:
    status, headers, body = status_headers_body
    assert headers.get("x-amzn-requestid"), "every response carries a request id"
    assert headers["content-type"].startswith("application/json")
    return status, headers["x-amzn-errortype"], body


# --- SigV4 ---------------------------------------------------------------------------------------


def test_wrong_secret_is_access_denied(api: ApiServer) -> None:
    ivs = api.client(aws_secret_access_key="not-the-secret")
    with pytest.raises(ivs.exceptions.AccessDeniedException) as caught:
        ivs.list_rooms()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "not-the-secret" not in caught.value.response["Error"]["Message"]


def test_wrong_access_key_is_access_denied(api: ApiServer) -> None:
    ivs = api.client(aws_access_key_id="AKIDSOMEONEELSE")
    with pytest.raises(ivs.exceptions.AccessDeniedException):
        ivs.create_room()
    assert api.run(api.store.records.count(RecordKind.ROOM)) == 0


def test_right_credentials_wrong_region_is_access_denied(api: ApiServer) -> None:
    ivs = api.client(region_name="eu-west-1")
    with pytest.raises(ivs.exceptions.AccessDeniedException):
        ivs.list_rooms()


def test_signed_request_passes(api: ApiServer) -> None:
    status, _, body = api.raw("POST", "/ListRooms", b"{}")
    assert (status, body) == (200, {"rooms": []})


def test_tampered_body_is_access_denied(api: ApiServer) -> None:
    def tamper(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        return headers, b'{"name":"evil"}'

    status, code, body = _error(api.raw("POST", "/CreateRoom", b'{"name":"good"}', after_signing=tamper))
    assert (status, code) == (403, "AccessDeniedException")
    assert "signature" in body["message"]
    assert api.run(api.store.records.count(RecordKind.ROOM)) == 0


def test_tampered_signature_is_access_denied(api: ApiServer) -> None:
    def flip(headers: dict[str, str], body: bytes) -> tuple[dict[str, str], bytes]:
        auth = headers["Authorization"]
        last = "0" if auth[-1] != "0" else "1"
        return {**headers, "Authorization": auth[:-1] + last}, body

    assert _error(api.raw("POST", "/ListRooms", b"{}", after_signing=flip))[:2] == (403, "AccessDeniedException")


def test_tampered_path_is_access_denied(api: ApiServer) -> None:
    # Signed for one path, sent to another: the canonical request differs.
    headers = api.signed_headers("POST", "/ListRooms", b"{}")
    status, code, _ = _error(api.raw("POST", "/CreateRoom", b"{}", after_signing=lambda h, b: (headers, b)))
    assert (status, code) == (403, "AccessDeniedException")


def test_unsigned_request_is_access_denied(api: ApiServer) -> None:
    status, code, body = _error(api.raw("POST", "/ListRooms", b"{}", sign=False))
    assert (status, code) == (403, "AccessDeniedException")
    assert body == {"message": "Missing Authentication Token"}


def test_other_service_scope_is_access_denied(api: ApiServer) -> None:
    status, code, body = _error(api.raw("POST", "/ListRooms", b"{}", service="ivs"))
    assert (status, code) == (403, "AccessDeniedException")
    assert "ivschat" in body["message"]


@pytest.mark.parametrize("minutes", [-20, 20])
def test_skewed_date_is_access_denied(api: ApiServer, minutes: int) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    status, code, body = _error(api.raw("POST", "/ListRooms", b"{}", when=when))
    assert (status, code) == (403, "AccessDeniedException")
    assert "15 minutes" in body["message"]


def test_date_within_15_minutes_accepted(api: ApiServer) -> None:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
    assert api.raw("POST", "/ListRooms", b"{}", when=when)[0] == 200


def test_mismatched_content_sha256_is_access_denied(api: ApiServer) -> None:
    # botocore trusts a signed X-Amz-Content-SHA256 instead of hashing the body; we must not.
    lie = hashlib.sha256(b"{}").hexdigest()
    headers = api.signed_headers("POST", "/CreateRoom", b'{"name":"x"}', {"X-Amz-Content-SHA256": lie})
    status, code, _ = _error(api.raw("POST", "/CreateRoom", b'{"name":"x"}', after_signing=lambda h, b: (headers, b)))
    assert (status, code) == (403, "AccessDeniedException")


def test_healthz_needs_no_auth(api: ApiServer) -> None:
    status, headers, body = api.raw("GET", "/healthz", sign=False)
    assert status == 200
    assert body == {"status": "ok"}
    assert headers["x-amzn-requestid"]


# --- protocol ------------------------------------------------------------------------------------


def test_unknown_operation(api: ApiServer) -> None:
    status, code, body = _error(api.raw("POST", "/CreateChannel", b"{}"))
    assert (status, code) == (400, "ValidationException")
    assert body["reason"] == "UNKNOWN_OPERATION"
    _, _, body = _error(api.raw("GET", "/GetRoom"))
    assert body["reason"] == "UNKNOWN_OPERATION"


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'"room"'])
def test_body_must_be_a_json_object(api: ApiServer, payload: bytes) -> None:
    status, code, body = _error(api.raw("POST", "/CreateRoom", payload))
    assert (status, code) == (400, "ValidationException")
    assert body["reason"] == "OTHER"
    assert "fieldList" not in body


def test_oversized_body(api: ApiServer) -> None:
    status, code, body = _error(api.raw("POST", "/CreateRoom", b'{"name":"' + b"x" * (2 << 20) + b'"}'))
    assert (status, code) == (400, "ValidationException")
    assert body["reason"] == "OTHER"


def test_wrong_json_types_are_field_errors(api: ApiServer) -> None:
    payload = {
        "name": 5,
        "maximumMessageLength": "10",
        "tags": ["a"],
        "messageReviewHandler": "x",
        "maximumMessageRatePerSecond": True,
        "unknownMember": {"ignored": True},
    }
    status, code, body = _error(api.raw("POST", "/CreateRoom", json.dumps(payload).encode()))
    assert (status, code) == (400, "ValidationException")
    assert body["reason"] == "FIELD_VALIDATION_FAILED"
    assert {f["name"] for f in body["fieldList"]} == {
        "name",
        "maximumMessageLength",
        "tags",
        "messageReviewHandler",
        "maximumMessageRatePerSecond",
    }
    assert body["message"].startswith("5 validation errors detected")


def test_missing_required_member(api: ApiServer) -> None:
    _, _, body = _error(api.raw("POST", "/GetRoom", b"{}"))
    assert body["fieldList"] == [{"name": "identifier", "message": "Member must not be null"}]


def test_model_constraints_botocore_does_not_check(api: ApiServer, ivs) -> None:
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.create_room(
            name="n" * 129,
            maximumMessageRatePerSecond=101,
            maximumMessageLength=501,
            messageReviewHandler={"fallbackResult": "MAYBE"},
        )
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["reason"] == "FIELD_VALIDATION_FAILED"
    assert {f["name"]: f["message"] for f in error["fieldList"]} == {
        "name": "Member must have length less than or equal to 128",
        "maximumMessageRatePerSecond": "Member must have value less than or equal to 100",
        "maximumMessageLength": "Member must have value less than or equal to 500",
        "messageReviewHandler.fallbackResult": "Member must satisfy enum value set: [ALLOW, DENY]",
    }
    assert api.run(api.store.records.count(RecordKind.ROOM)) == 0


def test_room_identifier_must_be_a_room_arn(ivs) -> None:
    config = ivs.create_logging_configuration(destinationConfiguration={"s3": {"bucketName": "abc"}})
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.get_room(identifier=config["arn"])
    assert caught.value.response["fieldList"][0]["name"] == "identifier"


# --- throttling, internal errors -----------------------------------------------------------------


def test_throttling(settings, start_api) -> None:
    ivs = start_api(settings.with_(api_throttling=True)).client()
    with pytest.raises(ivs.exceptions.ThrottlingException) as caught:
        # 3 TPS in fixed one-second windows: 50 calls overflow some window unless they take
        # more than 16 s (a loaded machine must not make this flaky).
        for _ in range(50):
            ivs.list_logging_configurations()
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["limit"] == 3
    assert error["resourceType"] == "ROOM"
    assert error["resourceId"] == "ListLoggingConfigurations"


def test_throttling_counts_per_operation(settings, start_api) -> None:
    ivs = start_api(settings.with_(api_throttling=True)).client()
    room = ivs.create_room()
    # 40 SendEvents stay under SendEvent's 100 TPS, and do not count against GetRoom's 5.
    for _ in range(40):
        ivs.send_event(roomIdentifier=room["arn"], eventName="e")
    ivs.get_room(identifier=room["arn"])
    with pytest.raises(ivs.exceptions.ThrottlingException) as caught:
        for _ in range(60):
            ivs.get_room(identifier=room["arn"])
    assert caught.value.response["limit"] == 5
    assert caught.value.response["resourceId"] == room["id"]


def test_no_throttling_when_disabled(api: ApiServer, ivs) -> None:
    for _ in range(20):
        ivs.list_logging_configurations()


class _BrokenRecords(MemoryRecords):
    async def page(self, kind, after, limit):
        raise RuntimeError("database password is hunter2")


def _broken_store() -> MemoryStore:
    store = MemoryStore()
    store.records = _BrokenRecords()
    return store


def test_unexpected_error_is_internal_server_exception(settings, start_api) -> None:
    server = start_api(settings, _broken_store)
    ivs = server.client()
    with pytest.raises(ivs.exceptions.InternalServerException) as caught:
        ivs.list_rooms()
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "hunter2" not in error["Error"]["Message"]
    assert error["ResponseMetadata"]["RequestId"]
    status, code, body = _error(server.raw("POST", "/ListRooms", b"{}"))
    assert (status, code) == (500, "InternalServerException")
    assert set(body) == {"message"}
