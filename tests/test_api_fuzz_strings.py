"""Any Unicode in any string of any control-plane operation: an error in IVS's shape, never a 5xx.

The string positions come from the service models (ivschat's and parley's own ``parleychat``), so a
new operation or member is fuzzed without touching this file: every string member, map key, map
value and list item of every input shape, wherever the model puts it (JSON body, URI, query string).
Each example takes one operation's minimally valid request (real room and logging-configuration
ARNs), puts one generated string in one position, and sends it SigV4-signed to the real app. Strings
include lone surrogates, written as JSON ``\\u`` escapes, as raw CESU-8 bytes, or percent-encoded
in the URI; afterwards the listings must still answer, so nothing unencodable was stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.operations import OPERATIONS
from api.validation import operation_model

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]  # also the `server` fixture: each test on memory and on Redis

# Steps into a map or list; any other step is a structure member's name.
KEY, VALUE, ITEM = "{key}", "{value}", "[]"
Slot = tuple[str, tuple[str, ...]]  # (operation, steps from the input shape to one string)


def _string_steps(shape: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Every path from ``shape`` to a string the model walk visits."""
    kind = shape.type_name
    if kind == "string":
        yield prefix
    elif kind == "structure":
        for name, member in shape.members.items():
            yield from _string_steps(member, (*prefix, name))
    elif kind == "list":
        yield from _string_steps(shape.member, (*prefix, ITEM))
    elif kind == "map":
        yield (*prefix, KEY)
        yield from _string_steps(shape.value, (*prefix, VALUE))


SLOTS: list[Slot] = [
    (name, steps) for name in OPERATIONS for steps in _string_steps(operation_model(name).input_shape, ())
]


def _placeholder(shape: Any) -> Any:
    """Some value of the right JSON type (it need not pass validation)."""
    return {"string": "v", "integer": 1, "long": 1, "boolean": False, "list": []}.get(shape.type_name, {})


def _place(shape: Any, current: Any, steps: tuple[str, ...], text: str) -> Any:
    """``current`` with ``text`` at ``steps`` (containers on the way created or replaced)."""
    if not steps:
        return text
    step, rest = steps[0], steps[1:]
    if step == KEY:
        return {text: _placeholder(shape.value)}
    if step == VALUE:
        return {"k": _place(shape.value, None, rest, text)}
    if step == ITEM:
        return [_place(shape.member, None, rest, text)]
    # A tagged union must keep exactly one member: the one being fuzzed.
    value = {} if shape.is_tagged_union or not isinstance(current, dict) else dict(current)
    value[step] = _place(shape.members[step], value.get(step), rest, text)
    return value


def _base_request(operation: str, room: str, config: str) -> dict[str, Any]:
    """The operation's required members, with values that resolve (so deeper code runs too)."""
    identifier = config if "LoggingConfiguration" in operation else room
    known: dict[str, Any] = {
        "identifier": identifier,
        "roomIdentifier": room,
        "resourceArn": room,
        "roomIdentifiers": [room],
        "userId": "user-1",
        "userIds": ["user-1"],
        "eventName": "event",
        "id": "messageId01",
        "connectionId": "connection-1",
        "durationSeconds": 60,
        "tags": {"k": "v"},
        "tagKeys": ["k"],
        "destinationConfiguration": {"s3": {"bucketName": "logs"}},
        "username": "fuzz-user",  # CreateUser (parleychat)
        "password": "fuzz-password",
    }
    # A KeyError here means a new operation has a required member this table lacks: add it.
    return {name: known[name] for name in operation_model(operation).input_shape.required_members}


def _wire(value: str) -> str:
    # Lone surrogates become CESU-8 bytes, percent-encoded: what a client can put in a URI.
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _http_request(operation: str, params: dict[str, Any], cesu8_body: bool) -> tuple[str, str, bytes]:
    """Method, raw path and body of ``params`` laid out where the model says."""
    model = operation_model(operation)
    path, _, fixed_query = model.http["requestUri"].partition("?")
    query = [fixed_query] if fixed_query else []
    body: dict[str, Any] = {}
    for name, value in params.items():
        member = model.input_shape.members[name]
        location, wire_name = member.serialization.get("location"), member.serialization.get("name", name)
        if location == "uri":
            path = path.replace(f"{{{wire_name}}}", _wire(value)).replace(f"{{{wire_name}+}}", _wire(value))
        elif location == "querystring":
            query += [f"{wire_name}={_wire(item)}" for item in (value if isinstance(value, list) else [value])]
        else:
            body[name] = value
    if cesu8_body:  # raw bytes: json.loads decodes them with surrogatepass
        data = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    else:  # \uXXXX escapes, as any JSON encoder writes them
        data = json.dumps(body).encode()
    return model.http["method"], path + ("?" + "&".join(query) if query else ""), data


ANY_CODE_POINT = st.characters(codec=None, categories=None, exclude_categories=())  # surrogates included
LONE_SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
fuzz_text = st.text(ANY_CODE_POINT, max_size=80) | st.builds(
    lambda before, lone, after: before + lone + after,
    st.text(ANY_CODE_POINT, max_size=20),
    LONE_SURROGATE,
    st.text(ANY_CODE_POINT, max_size=20),
)


def test_every_string_position_is_enumerated() -> None:
    """The walk reaches URI, query, nested, map and list positions, not just top-level members."""
    positions = set(SLOTS)
    for expected in [
        ("CreateRoom", ("tags", KEY)),
        ("CreateRoom", ("tags", VALUE)),
        ("CreateRoom", ("loggingConfigurationIdentifiers", ITEM)),
        ("CreateRoom", ("messageReviewHandler", "uri")),
        ("CreateChatToken", ("attributes", KEY)),
        ("CreateChatToken", ("capabilities", ITEM)),
        ("CreateLoggingConfiguration", ("destinationConfiguration", "s3", "bucketName")),
        ("UntagResource", ("resourceArn",)),
        ("UntagResource", ("tagKeys", ITEM)),
        ("SendEvent", ("eventName",)),
        ("AddRoomMembers", ("userIds", ITEM)),  # parleychat
    ]:
        assert expected in positions, expected
    assert {operation for operation, _ in SLOTS} == set(OPERATIONS)  # each has at least one string


@pytest.fixture
def resources(server: ApiServer) -> tuple[str, str]:
    """A real room and logging configuration, so identifiers in the base requests resolve."""
    ivs = server.client()
    config = ivs.create_logging_configuration(destinationConfiguration={"s3": {"bucketName": "logs"}})["arn"]
    return ivs.create_room(name="fuzz")["arn"], config


def _assert_answered_in_ivs_shape(response: tuple[int, dict[str, str], Any], what: object) -> None:
    status, headers, body = response
    assert status < 500, (what, status, body)
    if status >= 400:
        assert headers.get("x-amzn-errortype") and isinstance(body["message"], str), (what, body)


# The server (and its Store) is shared by all examples on purpose: what one request stored must
# not break a later one. No example database: several helpers share this working tree.
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slot=st.sampled_from(SLOTS), text=fuzz_text, cesu8_body=st.booleans())
def test_no_string_anywhere_gets_a_5xx(
    server: ApiServer, resources: tuple[str, str], slot: Slot, text: str, cesu8_body: bool
) -> None:
    operation, steps = slot
    model = operation_model(operation)
    params = _place(model.input_shape, _base_request(operation, *resources), steps, text)
    method, path, data = _http_request(operation, params, cesu8_body)
    _assert_answered_in_ivs_shape(server.raw(method, path, data), (operation, steps))
    for listing in ("ListRooms", "ListLoggingConfigurations"):
        status, _, body = server.raw("POST", f"/{listing}", b"{}")
        assert status == 200, (operation, steps, listing, body)
