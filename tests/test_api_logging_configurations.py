"""Logging-configuration operations through the real boto3 ivschat client."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]

S3 = {"s3": {"bucketName": "chat-logs"}}
CLOUDWATCH = {"cloudWatchLogs": {"logGroupName": "/ivs/chat#1"}}
FIREHOSE = {"firehose": {"deliveryStreamName": "stream_1.a"}}


@pytest.mark.parametrize("destination", [S3, CLOUDWATCH, FIREHOSE])
def test_create_and_get(ivs, destination) -> None:
    created = ivs.create_logging_configuration(name="logs-1", destinationConfiguration=destination, tags={"a": "b"})
    assert re.fullmatch(r"arn:aws:ivschat:us-east-1:123456789012:logging-configuration/[A-Za-z0-9]{12}", created["arn"])
    assert created["arn"].endswith("/" + created["id"])
    assert created["state"] == "ACTIVE"
    assert created["destinationConfiguration"] == destination
    assert created["tags"] == {"a": "b"}
    assert created["name"] == "logs-1"
    assert created["createTime"] == created["updateTime"]
    fetched = ivs.get_logging_configuration(identifier=created["arn"])
    for key in ("arn", "id", "name", "destinationConfiguration", "state", "tags", "createTime", "updateTime"):
        assert fetched[key] == created[key], key


def test_update_changes_only_given_fields(ivs) -> None:
    created = ivs.create_logging_configuration(name="before", destinationConfiguration=S3)
    renamed = ivs.update_logging_configuration(identifier=created["arn"], name="after")
    assert renamed["name"] == "after"
    assert renamed["destinationConfiguration"] == S3
    assert renamed["state"] == "ACTIVE"
    assert renamed["updateTime"] > created["updateTime"]
    moved = ivs.update_logging_configuration(identifier=created["arn"], destinationConfiguration=FIREHOSE)
    assert moved["destinationConfiguration"] == FIREHOSE
    assert moved["name"] == "after"
    assert ivs.get_logging_configuration(identifier=created["arn"])["destinationConfiguration"] == FIREHOSE


def test_delete_then_not_found(ivs) -> None:
    created = ivs.create_logging_configuration(destinationConfiguration=CLOUDWATCH)
    response = ivs.delete_logging_configuration(identifier=created["arn"])
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ivs.exceptions.ResourceNotFoundException) as caught:
        ivs.get_logging_configuration(identifier=created["arn"])
    assert caught.value.response["resourceId"] == created["id"]
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.delete_logging_configuration(identifier=created["arn"])


def test_delete_while_referenced_is_conflict(ivs) -> None:
    config = ivs.create_logging_configuration(destinationConfiguration=S3)
    room = ivs.create_room(loggingConfigurationIdentifiers=[config["arn"]])
    with pytest.raises(ivs.exceptions.ConflictException) as caught:
        ivs.delete_logging_configuration(identifier=config["arn"])
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert error["resourceId"] == config["id"]
    assert error["resourceType"]
    assert ivs.get_logging_configuration(identifier=config["arn"])["id"] == config["id"]
    ivs.update_room(identifier=room["arn"], loggingConfigurationIdentifiers=[])
    ivs.delete_logging_configuration(identifier=config["arn"])


def test_list_pages(ivs) -> None:
    arns = {ivs.create_logging_configuration(destinationConfiguration=S3)["arn"] for _ in range(3)}
    first = ivs.list_logging_configurations(maxResults=2)
    assert len(first["loggingConfigurations"]) == 2
    second = ivs.list_logging_configurations(maxResults=2, nextToken=first["nextToken"])
    assert len(second["loggingConfigurations"]) == 1
    assert "nextToken" not in second
    listed = first["loggingConfigurations"] + second["loggingConfigurations"]
    assert {c["arn"] for c in listed} == arns
    assert all(c["state"] == "ACTIVE" and c["destinationConfiguration"] == S3 for c in listed)


def test_quota(settings, start_api) -> None:
    ivs = start_api(settings.with_(max_logging_configurations=1)).client()
    ivs.create_logging_configuration(destinationConfiguration=S3)
    with pytest.raises(ivs.exceptions.ServiceQuotaExceededException) as caught:
        ivs.create_logging_configuration(destinationConfiguration=S3)
    assert caught.value.response["limit"] == 1
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 402


def test_room_may_reference_at_most_three(ivs) -> None:
    arns = [ivs.create_logging_configuration(destinationConfiguration=S3)["arn"] for _ in range(4)]
    assert ivs.create_room(loggingConfigurationIdentifiers=arns[:3])["loggingConfigurationIdentifiers"] == arns[:3]
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.create_room(loggingConfigurationIdentifiers=arns)
    assert caught.value.response["fieldList"][0]["name"] == "loggingConfigurationIdentifiers"
    with pytest.raises(ivs.exceptions.ValidationException):
        ivs.create_room(loggingConfigurationIdentifiers=[arns[0], arns[0]])


@pytest.mark.parametrize(
    ("destination", "field"),
    [
        ({"s3": {"bucketName": "Upper_Case"}}, "destinationConfiguration.s3.bucketName"),
        ({"s3": {"bucketName": "x" * 64}}, "destinationConfiguration.s3.bucketName"),
        ({"cloudWatchLogs": {"logGroupName": "bad name"}}, "destinationConfiguration.cloudWatchLogs.logGroupName"),
        ({"firehose": {"deliveryStreamName": "a/b"}}, "destinationConfiguration.firehose.deliveryStreamName"),
    ],
)
def test_destination_values_validated(ivs, destination, field: str) -> None:
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.create_logging_configuration(destinationConfiguration=destination)
    assert [f["name"] for f in caught.value.response["fieldList"]] == [field]


@pytest.mark.parametrize("destination", [{**S3, **FIREHOSE}, {}])
def test_destination_must_have_exactly_one_member(api: ApiServer, destination) -> None:
    # botocore refuses these client-side, so send them by hand.
    status, headers, body = api.raw(
        "POST", "/CreateLoggingConfiguration", json.dumps({"destinationConfiguration": destination}).encode()
    )
    assert status == 400
    assert headers["x-amzn-errortype"] == "ValidationException"
    assert body["reason"] == "FIELD_VALIDATION_FAILED"
    assert body["fieldList"][0]["name"] == "destinationConfiguration"
