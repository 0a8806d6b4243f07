"""Room operations through the real boto3 ivschat client."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from shared.protocol.envelope import ControlNotice, ControlTopic

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]

WIRE_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:review"


def _seconds_ago(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()


def test_create_room_fills_defaults_and_returns_room_shape(api: ApiServer, ivs) -> None:
    room = ivs.create_room()
    assert re.fullmatch(r"arn:aws:ivschat:us-east-1:123456789012:room/[A-Za-z0-9]{12}", room["arn"])
    assert room["arn"].endswith("/" + room["id"])
    assert room["name"] == ""
    assert room["maximumMessageRatePerSecond"] == 10
    assert room["maximumMessageLength"] == 500
    assert room["messageReviewHandler"] == {"uri": "", "fallbackResult": "ALLOW"}
    assert room["tags"] == {}
    assert room["loggingConfigurationIdentifiers"] == []
    assert room["createTime"] == room["updateTime"]
    assert 0 <= _seconds_ago(room["createTime"]) < 5


def test_times_are_iso_strings_with_milliseconds(api: ApiServer, ivs) -> None:
    room = ivs.create_room(name="wire")
    status, headers, body = api.raw("POST", "/GetRoom", f'{{"identifier":"{room["arn"]}"}}'.encode())
    assert status == 200
    assert headers["content-type"].startswith("application/json")
    assert headers["x-amzn-requestid"]
    assert WIRE_TIME_RE.match(body["createTime"]), body["createTime"]
    assert WIRE_TIME_RE.match(body["updateTime"])


def test_create_with_every_field_then_get(api: ApiServer, ivs) -> None:
    config = ivs.create_logging_configuration(destinationConfiguration={"s3": {"bucketName": "chat-logs"}})
    created = ivs.create_room(
        name="Lobby_1-a",
        maximumMessageRatePerSecond=100,
        maximumMessageLength=1,
        messageReviewHandler={"uri": LAMBDA_ARN, "fallbackResult": "DENY"},
        tags={"team": "chat", "empty": ""},
        loggingConfigurationIdentifiers=[config["arn"]],
    )
    fetched = ivs.get_room(identifier=created["arn"])
    for key in (
        "arn",
        "id",
        "name",
        "maximumMessageRatePerSecond",
        "maximumMessageLength",
        "messageReviewHandler",
        "tags",
        "loggingConfigurationIdentifiers",
        "createTime",
    ):
        assert fetched[key] == created[key], key
    assert fetched["maximumMessageRatePerSecond"] == 100
    assert fetched["maximumMessageLength"] == 1
    assert fetched["messageReviewHandler"] == {"uri": LAMBDA_ARN, "fallbackResult": "DENY"}
    assert fetched["loggingConfigurationIdentifiers"] == [config["arn"]]


@pytest.mark.parametrize(
    "uri", [LAMBDA_ARN, "https://review.example.com/hook", "http://127.0.0.1:9000/x", "parley:deny-all"]
)
def test_review_handler_uri_forms_accepted(ivs, uri: str) -> None:
    room = ivs.create_room(messageReviewHandler={"uri": uri})
    assert room["messageReviewHandler"] == {"uri": uri, "fallbackResult": "ALLOW"}


@pytest.mark.parametrize(
    "uri", ["ftp://example.com/x", "review-lambda", "https://", "arn:aws:lambda:us-east-1:123:function:x"]
)
def test_review_handler_uri_others_rejected(ivs, uri: str) -> None:
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.create_room(messageReviewHandler={"uri": uri})
    assert caught.value.response["fieldList"][0]["name"] == "messageReviewHandler.uri"


def test_update_changes_only_given_fields_and_notifies(api: ApiServer, ivs) -> None:
    room = ivs.create_room(
        name="before",
        maximumMessageLength=200,
        tags={"k": "v"},
        messageReviewHandler={"uri": LAMBDA_ARN, "fallbackResult": "DENY"},
    )
    updated = ivs.update_room(identifier=room["arn"], maximumMessageRatePerSecond=42)
    assert updated["maximumMessageRatePerSecond"] == 42
    assert updated["name"] == "before"
    assert updated["maximumMessageLength"] == 200
    assert updated["tags"] == {"k": "v"}
    assert updated["messageReviewHandler"] == {"uri": LAMBDA_ARN, "fallbackResult": "DENY"}
    assert updated["createTime"] == room["createTime"]
    assert updated["updateTime"] > room["updateTime"]
    assert ControlNotice(ControlTopic.ROOM_CHANGED, room["id"]) in api.notices
    assert ivs.get_room(identifier=room["arn"])["maximumMessageRatePerSecond"] == 42


def test_update_with_empty_uri_detaches_handler(ivs) -> None:
    room = ivs.create_room(messageReviewHandler={"uri": LAMBDA_ARN})
    updated = ivs.update_room(identifier=room["arn"], messageReviewHandler={"uri": ""})
    assert updated["messageReviewHandler"]["uri"] == ""
    assert ivs.get_room(identifier=room["arn"])["messageReviewHandler"]["uri"] == ""


def test_delete_room_then_not_found(api: ApiServer, ivs) -> None:
    room = ivs.create_room()
    response = ivs.delete_room(identifier=room["arn"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert ControlNotice(ControlTopic.ROOM_CHANGED, room["id"]) in api.notices
    with pytest.raises(ivs.exceptions.ResourceNotFoundException) as caught:
        ivs.get_room(identifier=room["arn"])
    assert caught.value.response["resourceId"] == room["id"]
    assert caught.value.response["resourceType"] == "ROOM"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


@pytest.mark.parametrize("operation", ["get_room", "delete_room", "update_room"])
def test_unknown_room_is_not_found(ivs, operation: str) -> None:
    with pytest.raises(ivs.exceptions.ResourceNotFoundException) as caught:
        getattr(ivs, operation)(identifier="arn:aws:ivschat:us-east-1:123456789012:room/abcDEF123456")
    assert caught.value.response["resourceId"] == "abcDEF123456"


def test_same_id_in_another_account_is_not_found(ivs) -> None:
    room = ivs.create_room()
    foreign = room["arn"].replace(":123456789012:", ":999999999999:")
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.get_room(identifier=foreign)


def test_unknown_logging_configuration_is_not_found(ivs) -> None:
    missing = "arn:aws:ivschat:us-east-1:123456789012:logging-configuration/ABcdef34ghIJ"
    with pytest.raises(ivs.exceptions.ResourceNotFoundException) as caught:
        ivs.create_room(loggingConfigurationIdentifiers=[missing])
    assert caught.value.response["resourceId"] == "ABcdef34ghIJ"
    room = ivs.create_room()
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.update_room(identifier=room["arn"], loggingConfigurationIdentifiers=[missing])


def test_room_quota(settings, start_api) -> None:
    ivs = start_api(settings.with_(max_rooms=2)).client()
    ivs.create_room()
    ivs.create_room()
    with pytest.raises(ivs.exceptions.ServiceQuotaExceededException) as caught:
        ivs.create_room()
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 402
    assert error["limit"] == 2
    assert error["resourceType"] == "ROOM"
    assert len(ivs.list_rooms()["rooms"]) == 2


def test_list_rooms_newest_update_first_with_summary_shape(ivs) -> None:
    arns = [ivs.create_room(name=f"r{i}")["arn"] for i in range(4)]
    ivs.update_room(identifier=arns[0], name="touched")
    rooms = ivs.list_rooms()["rooms"]
    assert rooms[0]["arn"] == arns[0]
    assert {room["arn"] for room in rooms} == set(arns)
    times = [room["updateTime"] for room in rooms]
    assert times == sorted(times, reverse=True)
    assert "maximumMessageLength" not in rooms[0]
    assert "maximumMessageRatePerSecond" not in rooms[0]
    assert rooms[0]["name"] == "touched"


def test_list_rooms_pages_with_next_token(ivs) -> None:
    created = {ivs.create_room(name=f"p{i}")["arn"] for i in range(5)}
    seen: list[str] = []
    pages = 0
    token = None
    while True:
        kwargs = {"maxResults": 2, **({"nextToken": token} if token else {})}
        page = ivs.list_rooms(**kwargs)
        pages += 1
        assert len(page["rooms"]) <= 2
        seen.extend(room["arn"] for room in page["rooms"])
        token = page.get("nextToken")
        if token is None:
            break
    assert pages == 3
    assert len(seen) == 5
    assert set(seen) == created


def test_list_rooms_filters_return_full_pages(ivs) -> None:
    config = ivs.create_logging_configuration(destinationConfiguration={"firehose": {"deliveryStreamName": "s"}})
    matching = []
    for i in range(30):
        if i in (3, 17, 29):
            matching.append(
                ivs.create_room(
                    name="wanted",
                    messageReviewHandler={"uri": "parley:allow"},
                    loggingConfigurationIdentifiers=[config["arn"]],
                )["arn"]
            )
        else:
            ivs.create_room(name=f"other{i}")
    for filters in (
        {"name": "wanted"},
        {"messageReviewHandlerUri": "parley:allow"},
        {"loggingConfigurationIdentifier": config["arn"]},
    ):
        first = ivs.list_rooms(maxResults=2, **filters)
        assert len(first["rooms"]) == 2, filters
        second = ivs.list_rooms(maxResults=2, nextToken=first["nextToken"], **filters)
        assert len(second["rooms"]) == 1
        assert "nextToken" not in second
        assert {r["arn"] for r in first["rooms"] + second["rooms"]} == set(matching)
    assert ivs.list_rooms(name="nobody")["rooms"] == []


def test_list_rooms_default_page_is_50(ivs) -> None:
    for _ in range(51):
        ivs.create_room()
    page = ivs.list_rooms()
    assert len(page["rooms"]) == 50
    assert len(ivs.list_rooms(nextToken=page["nextToken"])["rooms"]) == 1


@pytest.mark.parametrize("token", ["garbage!", "eyJ4IjoxfQ", "WyJsb2dnaW5nLWNvbmZpZ3VyYXRpb24iLDEsImEiXQ"])
def test_list_rooms_rejects_foreign_next_token(ivs, token: str) -> None:
    # The last one is a well-formed logging-configuration cursor: not valid for rooms.
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.list_rooms(nextToken=token)
    assert caught.value.response["fieldList"][0]["name"] == "nextToken"


def test_list_rooms_max_results_above_50_rejected(ivs) -> None:
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.list_rooms(maxResults=51)
    assert caught.value.response["fieldList"] == [
        {"name": "maxResults", "message": "Member must have value less than or equal to 50"}
    ]
