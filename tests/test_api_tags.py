"""Tag operations, including the %2F-encoded ARN in the path."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]


def test_tag_list_untag_room(ivs) -> None:
    room = ivs.create_room(tags={"keep": "1", "drop": "2"})
    assert (
        ivs.tag_resource(resourceArn=room["arn"], tags={"new key": "v", "keep": "overwritten"})["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 200
    )
    assert ivs.list_tags_for_resource(resourceArn=room["arn"])["tags"] == {
        "keep": "overwritten",
        "drop": "2",
        "new key": "v",
    }
    ivs.untag_resource(resourceArn=room["arn"], tagKeys=["drop", "new key", "absent"])
    assert ivs.list_tags_for_resource(resourceArn=room["arn"])["tags"] == {"keep": "overwritten"}
    assert ivs.get_room(identifier=room["arn"])["tags"] == {"keep": "overwritten"}


def test_tagging_does_not_bump_update_time(ivs) -> None:
    room = ivs.create_room()
    ivs.tag_resource(resourceArn=room["arn"], tags={"a": "b"})
    assert ivs.get_room(identifier=room["arn"])["updateTime"] == room["updateTime"]


def test_tags_on_logging_configuration(ivs) -> None:
    config = ivs.create_logging_configuration(destinationConfiguration={"s3": {"bucketName": "b-1"}})
    ivs.tag_resource(resourceArn=config["arn"], tags={"env": "prod"})
    assert ivs.list_tags_for_resource(resourceArn=config["arn"])["tags"] == {"env": "prod"}
    assert ivs.get_logging_configuration(identifier=config["arn"])["tags"] == {"env": "prod"}


def test_arn_arrives_with_encoded_slash(api: ApiServer, ivs) -> None:
    room = ivs.create_room(tags={"a": "b"})
    path = api.tags_path(room["arn"])
    assert "%2F" in path and "%3A" in path
    status, _, body = api.raw("GET", path)
    assert status == 200
    assert body == {"tags": {"a": "b"}}
    status, _, body = api.raw("POST", path, json.dumps({"tags": {"c": "d"}}).encode())
    assert (status, body) == (200, {})
    status, _, _ = api.raw("DELETE", path + "?tagKeys=a&tagKeys=c")
    assert status == 200
    assert ivs.list_tags_for_resource(resourceArn=room["arn"])["tags"] == {}


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:ivschat:us-east-1:123456789012:room/abcDEF123456",
        "arn:aws:ivschat:us-east-1:123456789012:logging-configuration/abcDEF123456",
    ],
)
def test_unknown_resource(ivs, arn: str) -> None:
    with pytest.raises(ivs.exceptions.ResourceNotFoundException) as caught:
        ivs.list_tags_for_resource(resourceArn=arn)
    assert caught.value.response["resourceId"] == "abcDEF123456"
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.tag_resource(resourceArn=arn, tags={"a": "b"})
    with pytest.raises(ivs.exceptions.ResourceNotFoundException):
        ivs.untag_resource(resourceArn=arn, tagKeys=["a"])


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:ivschat:us-east-1:123456789012:channel/abcDEF123456",
        "arn:aws:ivs:us-east-1:123456789012:room/abcDEF123456",
        "not-an-arn",
    ],
)
def test_malformed_resource_arn(ivs, arn: str) -> None:
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.list_tags_for_resource(resourceArn=arn)
    assert caught.value.response["fieldList"][0]["name"] == "resourceArn"


def test_reserved_prefix_rejected(ivs) -> None:
    room = ivs.create_room()
    with pytest.raises(ivs.exceptions.ValidationException):
        ivs.tag_resource(resourceArn=room["arn"], tags={"aws:owner": "x"})
    with pytest.raises(ivs.exceptions.ValidationException):
        ivs.create_room(tags={"aws:owner": "x"})
    assert ivs.list_tags_for_resource(resourceArn=room["arn"])["tags"] == {}


def test_at_most_50_tags(ivs) -> None:
    room = ivs.create_room(tags={f"k{i}": "v" for i in range(40)})
    with pytest.raises(ivs.exceptions.ValidationException) as caught:
        ivs.tag_resource(resourceArn=room["arn"], tags={f"n{i}": "v" for i in range(11)})
    assert caught.value.response["fieldList"][0]["name"] == "tags"
    ivs.tag_resource(resourceArn=room["arn"], tags={f"n{i}": "v" for i in range(10)})
    assert len(ivs.list_tags_for_resource(resourceArn=room["arn"])["tags"]) == 50
    with pytest.raises(ivs.exceptions.ValidationException):
        ivs.create_room(tags={f"k{i}": "v" for i in range(51)})


@pytest.mark.parametrize("tags", [{"k" * 129: "v"}, {"k": "v" * 257}])
def test_tag_length_limits(ivs, tags) -> None:
    room = ivs.create_room()
    with pytest.raises(ivs.exceptions.ValidationException):
        ivs.tag_resource(resourceArn=room["arn"], tags=tags)
