"""Control-plane strings that are not valid Unicode text: a 400 naming the field, never a 500.

JSON lets a client escape a lone UTF-16 surrogate (``"\\ud800"``), and ``json.loads`` on bytes even
decodes CESU-8 (``b"\\xed\\xa0\\x80"``) into one. No UTF-8 encoder accepts such a string, so before
validation refused them a tag value was stored and then broke every ListRooms reply (memory Store),
and a userId or event attribute failed mid-request. Percent-encoded URI and query members that are
not UTF-8 are refused the same way. Both Stores are covered: the bug looked different on each.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]  # also the `server` fixture: each test on memory and on Redis

LONE = "\ud800"


def _post(api: ApiServer, operation: str, body: dict[str, Any] | bytes) -> tuple[int, dict[str, str], Any]:
    # json.dumps escapes a lone surrogate as \ud800, which is what a client on the wire sends.
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.raw("POST", f"/{operation}", raw)


def _assert_field_error(response: tuple[int, dict[str, str], Any], field: str) -> None:
    status, headers, body = response
    assert status == 400, body
    assert headers["x-amzn-errortype"] == "ValidationException"
    assert body["reason"] == "FIELD_VALIDATION_FAILED"
    assert [error["name"] for error in body["fieldList"]] == [field]
    assert "Unicode" in body["fieldList"][0]["message"]


def _tag(api: ApiServer, arn: str, tags: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    return api.raw("POST", api.tags_path(arn), json.dumps({"tags": tags}).encode())


def _room_arn(api: ApiServer) -> str:
    status, _, body = _post(api, "CreateRoom", {})
    assert status == 200
    return body["arn"]


def test_a_lone_surrogate_tag_value_is_refused_and_listing_rooms_still_works(server: ApiServer) -> None:
    _assert_field_error(_post(server, "CreateRoom", {"tags": {"k": LONE}}), "tags.k")
    status, _, body = _post(server, "ListRooms", {})
    assert status == 200 and body["rooms"] == []  # nothing was stored


def test_tag_keys_and_cesu8_bytes_are_refused_without_echoing_the_key(server: ApiServer) -> None:
    _assert_field_error(_post(server, "CreateRoom", {"tags": {LONE: "v"}}), "tags key")
    _assert_field_error(_post(server, "CreateRoom", b'{"tags": {"k": "\xed\xa0\x80"}}'), "tags.k")
    _assert_field_error(_post(server, "CreateRoom", {"name": "a\udfffb"}), "name")
    config = {"destinationConfiguration": {"s3": {"bucketName": "logs"}}, "tags": {"k": "x" + LONE}}
    _assert_field_error(_post(server, "CreateLoggingConfiguration", config), "tags.k")
    arn = _room_arn(server)
    _assert_field_error(_tag(server, arn, {"k": LONE}), "tags.k")
    assert _post(server, "ListRooms", {})[0] == 200
    assert server.client().list_tags_for_resource(resourceArn=arn)["tags"] == {}


def test_chat_token_user_id_and_attributes(server: ApiServer) -> None:
    arn = _room_arn(server)
    _assert_field_error(_post(server, "CreateChatToken", {"roomIdentifier": arn, "userId": LONE}), "userId")
    # A sensitive map: neither its keys nor its values appear in the error.
    for attributes, field in (({"a": LONE}, "attributes"), ({LONE: "a"}, "attributes key")):
        response = _post(server, "CreateChatToken", {"roomIdentifier": arn, "userId": "u", "attributes": attributes})
        _assert_field_error(response, field)
    status, _, body = _post(
        server, "CreateChatToken", {"roomIdentifier": arn, "userId": "u", "attributes": {"a": "😀"}}
    )
    assert status == 200 and body["token"]


def test_send_event_name_and_attributes(server: ApiServer) -> None:
    arn = _room_arn(server)
    _assert_field_error(_post(server, "SendEvent", {"roomIdentifier": arn, "eventName": LONE}), "eventName")
    response = _post(server, "SendEvent", {"roomIdentifier": arn, "eventName": "e", "attributes": {"a": LONE}})
    _assert_field_error(response, "attributes.a")  # not a sensitive map in the model: keys are named
    assert _post(server, "SendEvent", {"roomIdentifier": arn, "eventName": "e", "attributes": {"a": "é"}})[0] == 200


def test_an_unknown_member_with_a_lone_surrogate_is_refused_too(server: ApiServer) -> None:
    # Unknown members are ignored, but no string a UTF-8 encoder refuses gets past validation.
    _assert_field_error(_post(server, "CreateRoom", {"x" + LONE: 1}), "body")
    _assert_field_error(_post(server, "CreateRoom", {"extra": [{"k": LONE}]}), "body")
    status, _, body = _post(server, "ListRooms", {})
    assert status == 200 and body["rooms"] == []


def test_uri_and_query_members_that_are_not_utf8(server: ApiServer) -> None:
    _assert_field_error(server.raw("GET", "/tags/%ED%A0%80"), "resourceArn")
    arn = _room_arn(server)
    _assert_field_error(server.raw("DELETE", server.tags_path(arn) + "?tagKeys=ok&tagKeys=%FF"), "tagKeys[1]")


def test_valid_text_beyond_ascii_is_kept(server: ApiServer) -> None:
    tags = {"naïve": "😀 日本", "k": "\u2028"}
    status, _, body = _post(server, "CreateRoom", {"tags": tags})
    assert status == 200 and body["tags"] == tags
    assert _post(server, "ListRooms", {})[0] == 200
