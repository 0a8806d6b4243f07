"""Message review without sockets: response validation (spec §8), built-in handlers, the wire
codec, configuration and the service's budget/fallback/metrics rules."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from reviewer import builtin
from reviewer.config import ReviewConfig, parse_lambda_map
from reviewer.protocol import (
    InvalidResponse,
    handler_request,
    parse_response,
    redact_uri,
    validate_response,
)
from reviewer.service import ReviewService
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.models import Room
from shared.protocol.review import ReviewRequest, Verdict


def _request(uri: str = "parley:allow", fallback: str = "ALLOW", max_length: int = 10, **kw: Any) -> ReviewRequest:
    fields: dict[str, Any] = {
        "content": "hello",
        "attributes": {"k": "v"},
        "user_id": "alice",
        "user_attributes": {"displayName": "Alice"},
        "ip": "203.0.113.7",
    }
    fields.update(kw)
    return ReviewRequest(uri, fallback, max_length, "MsgId123abcd", "arn:aws:ivschat:us-east-1:1:room/r", **fields)


def _count(metric: str, uri: str) -> float:
    return REGISTRY.get_sample_value(f"{metric}_total", {"Uri": uri}) or 0.0


# --- the request a handler receives --------------------------------------------------------------
def test_handler_request_has_the_ivs_shape() -> None:
    assert handler_request(_request()) == {
        "Content": "hello",
        "MessageId": "MsgId123abcd",
        "RoomArn": "arn:aws:ivschat:us-east-1:1:room/r",
        "Attributes": {"k": "v"},
        "Sender": {"UserId": "alice", "Ip": "203.0.113.7", "Attributes": {"displayName": "Alice"}},
    }
    bare = handler_request(_request(attributes=None, user_attributes=None))
    assert bare["Attributes"] == {} and bare["Sender"]["Attributes"] == {}


def test_request_and_verdict_round_trip_the_wire() -> None:
    room = Room(id="r", arn="arn:r", maximum_message_length=42, review_uri="parley:allow", review_fallback="DENY")
    action = ActionEnvelope(Kind.SEND_MESSAGE, "Id0000000001", "r", 1, content="hi", user_id="u", ip="1.2.3.4")
    request = ReviewRequest.decode(ReviewRequest.of(room, action).encode())
    assert (request.uri, request.fallback_result, request.maximum_message_length) == ("parley:allow", "DENY", 42)
    assert (request.message_id, request.content, request.ip) == ("Id0000000001", "hi", "1.2.3.4")
    assert request.fallback("why") == Verdict(False, "hi", None, "why")
    verdict = Verdict(True, "edited", {"a": "b"}, "")
    assert Verdict.decode(verdict.encode()) == verdict


# --- response validation ---------------------------------------------------------------------------
def test_allow_replaces_content_and_attributes() -> None:
    verdict = validate_response({"ReviewResult": "ALLOW", "Content": "edited", "Attributes": {"x": "y"}}, _request())
    assert verdict == Verdict(True, "edited", {"x": "y"})


@pytest.mark.parametrize(
    "response",
    [{"ReviewResult": "ALLOW", "Content": "hi"}, {"ReviewResult": "ALLOW", "Content": "hi", "Attributes": None}],
)
def test_missing_or_null_attributes_keep_the_original(response: dict[str, Any]) -> None:
    assert validate_response(response, _request()) == Verdict(True, "hi", {"k": "v"})


def test_empty_attributes_replace_the_original() -> None:
    assert validate_response({"ReviewResult": "ALLOW", "Content": "hi", "Attributes": {}}, _request()).attributes == {}


def test_content_length_counts_code_points() -> None:
    emoji = "😀" * 10  # 10 code points, 40 UTF-8 bytes, 20 UTF-16 units
    assert validate_response({"ReviewResult": "ALLOW", "Content": emoji}, _request(max_length=10)).content == emoji
    with pytest.raises(InvalidResponse):
        validate_response({"ReviewResult": "ALLOW", "Content": emoji + "x"}, _request(max_length=10))


def test_deny_carries_the_reason_and_keeps_the_original() -> None:
    verdict = validate_response(
        {"ReviewResult": "DENY", "Content": "whatever", "Attributes": {"Reason": "denied for moderation"}}, _request()
    )
    assert verdict == Verdict(False, "hello", {"k": "v"}, "denied for moderation")
    # DENY's Content is not delivered, so its length does not matter, and a DENY without one counts.
    assert not validate_response({"ReviewResult": "DENY", "Content": "x" * 100}, _request()).allow
    assert validate_response({"ReviewResult": "DENY"}, _request()).reason == ""


@pytest.mark.parametrize(
    "response",
    [
        [],
        "ALLOW",
        None,
        {},
        {"ReviewResult": "MAYBE", "Content": "hi"},
        {"ReviewResult": "allow", "Content": "hi"},
        {"ReviewResult": "ALLOW"},
        {"ReviewResult": "ALLOW", "Content": ""},
        {"ReviewResult": "ALLOW", "Content": "x" * 11},
        {"ReviewResult": "ALLOW", "Content": 5},
        {"ReviewResult": "ALLOW", "Content": "\ud800"},
        {"ReviewResult": "ALLOW", "Content": "hi", "Attributes": {"k": "v" * 1024}},
        {"ReviewResult": "ALLOW", "Content": "hi", "Attributes": {"k": 1}},
        {"ReviewResult": "ALLOW", "Content": "hi", "Attributes": ["k"]},
        {"ReviewResult": "ALLOW", "Content": "hi", "Attributes": {"k": "\udc00"}},
        {"ReviewResult": "DENY", "Content": 1},
        {"ReviewResult": "DENY", "Attributes": {"Reason": "r" * 1100}},
    ],
)
def test_invalid_responses_are_refused(response: Any) -> None:
    with pytest.raises(InvalidResponse):
        validate_response(response, _request())


def test_attributes_limit_is_utf8_bytes_of_keys_and_values() -> None:
    fits = {"k": "é" * 511}  # 1 + 1022 bytes
    assert validate_response({"ReviewResult": "ALLOW", "Content": "hi", "Attributes": fits}, _request()).attributes
    with pytest.raises(InvalidResponse):
        validate_response({"ReviewResult": "ALLOW", "Content": "hi", "Attributes": {"kk": "é" * 512}}, _request())


def test_parse_response_refuses_non_json() -> None:
    assert parse_response(b'{"ReviewResult":"ALLOW"}') == {"ReviewResult": "ALLOW"}
    for body in (b"{not json", b"", b"\xff\xfe", b" " * 70_000):
        with pytest.raises(InvalidResponse):
            parse_response(body)


def test_redact_uri_drops_secrets_only_from_urls() -> None:
    assert redact_uri("https://user:pw@hooks.example.com:8443/review?token=s3cret#x") == (
        "https://hooks.example.com:8443/review"
    )
    assert redact_uri("parley:blocklist?words=a") == "parley:blocklist?words=a"
    assert redact_uri("arn:aws:lambda:us-east-1:123456789012:function:f") == (
        "arn:aws:lambda:us-east-1:123456789012:function:f"
    )


# --- built-in handlers -----------------------------------------------------------------------------
def _run(uri: str, content: str) -> dict[str, Any]:
    return builtin.resolve(uri)({"Content": content})


def test_blocklist_denies_whole_words_case_insensitively() -> None:
    uri = "parley:blocklist?words=darn,bad+word&reason=Be+nice"
    assert _run(uri, "well DARN it") == {
        "ReviewResult": "DENY",
        "Content": "well DARN it",
        "Attributes": {"Reason": "Be nice"},
    }
    assert _run(uri, "a Bad Word")["ReviewResult"] == "DENY"
    assert _run(uri, "darnit is fine, so are bad words") == {
        "ReviewResult": "ALLOW",
        "Content": "darnit is fine, so are bad words",
    }


def test_blocklist_masks_keeping_the_length() -> None:
    assert _run("parley:blocklist?words=darn&action=mask&mask=%23", "darn, Darn!")["Content"] == "####, ####!"
    assert _run("parley:blocklist?pattern=fo%2Bo%7Cba%5Br%5D&action=mask", "foooo bar baz") == {
        "ReviewResult": "ALLOW",
        "Content": "***** *** baz",
    }


def test_links_filter_denies_or_masks_foreign_links() -> None:
    uri = "parley:links?allow=example.com"
    for text in ("go to https://evil.io/x", "www.spam.net now", "visit cheap.shop/deal"):
        assert _run(uri, text)["ReviewResult"] == "DENY", text
    for text in ("see https://docs.example.com/a", "example.com is ok", "no link here, e.g. this"):
        assert _run(uri, text) == {"ReviewResult": "ALLOW", "Content": text}, text
    masked = _run("parley:links?allow=example.com&action=mask", "a http://x.io/p b example.com c")
    assert masked == {"ReviewResult": "ALLOW", "Content": "a " + "*" * len("http://x.io/p") + " b example.com c"}
    assert _run("parley:links", "http://x.io")["Attributes"] == {"Reason": "Links are not allowed"}


def test_allow_and_deny_builtins() -> None:
    assert _run("parley:allow", "hi") == {"ReviewResult": "ALLOW", "Content": "hi"}
    assert _run("parley:deny?reason=read+only", "hi")["Attributes"] == {"Reason": "read only"}


@pytest.mark.parametrize(
    "uri",
    [
        "parley:nope",
        "parley:blocklist",
        "parley:blocklist?words=a&action=shout",
        "parley:blocklist?words=a&mask=ab",
        "parley:blocklist?pattern=%28",
        "parley:blocklist?word=a",
        "parley:allow?x=1",
        "parley:links?deny=x.com",
    ],
)
def test_unusable_builtin_uris_are_refused(uri: str) -> None:
    with pytest.raises(builtin.BuiltinError):
        builtin.resolve(uri)


def test_a_new_builtin_registers_by_name() -> None:
    @builtin.builtin("test-shout")
    def _shout(params: builtin.Params) -> builtin.Handler:
        return lambda request: {"ReviewResult": "ALLOW", "Content": request["Content"].upper()}

    assert "test-shout" in builtin.names()
    assert _run("parley:test-shout", "hi") == {"ReviewResult": "ALLOW", "Content": "HI"}


# --- configuration ---------------------------------------------------------------------------------
def test_config_from_env() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:mod"
    config = ReviewConfig.from_env(
        {
            "PARLEY_REVIEW_CONCURRENCY": "8",
            "PARLEY_REVIEW_ROUTER_TIMEOUT_MS": "250",
            "PARLEY_REVIEW_LAMBDA_MAP": f'{{"{arn}": "http://127.0.0.1:9/x"}}',
        }
    )
    assert (config.concurrency, config.router_timeout, dict(config.lambda_map)) == (
        8,
        0.25,
        {arn: "http://127.0.0.1:9/x"},
    )
    assert ReviewConfig.from_env({}) == ReviewConfig()
    with pytest.raises(ValueError):
        parse_lambda_map('["not", "a", "map"]')


# --- the service: budget, fallback, metrics ----------------------------------------------------------
async def test_service_applies_builtins_and_mapped_lambdas() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:function:unit-mapped"
    service = ReviewService(ReviewConfig(lambda_map={arn: "parley:deny?reason=mapped"}))
    assert await service.review(_request("parley:blocklist?words=hello&action=mask")) == Verdict(
        True, "*****", {"k": "v"}
    )
    assert await service.review(_request(arn, fallback="ALLOW")) == Verdict(False, "hello", {"k": "v"}, "mapped")
    assert _count("InvocationErrors", arn) == 0


@pytest.mark.parametrize(
    "uri", ["arn:aws:lambda:us-east-1:123456789012:function:unit-unmapped", "parley:unit-missing", "ftp://x/y"]
)
async def test_service_counts_uninvocable_handlers_and_falls_back(uri: str) -> None:
    service = ReviewService(ReviewConfig())
    before = _count("InvocationErrors", uri)
    assert await service.review(_request(uri, fallback="DENY")) == Verdict(
        False, "hello", {"k": "v"}, "review handler unavailable"
    )
    assert await service.review(_request(uri, fallback="ALLOW")) == Verdict(
        True, "hello", {"k": "v"}, "review handler unavailable"
    )
    assert _count("InvocationErrors", uri) == before + 2


async def test_service_counts_invalid_responses_and_falls_back() -> None:
    uri = "parley:test-too-long"

    @builtin.builtin("test-too-long")
    def _long(params: builtin.Params) -> builtin.Handler:
        return lambda request: {"ReviewResult": "ALLOW", "Content": request["Content"] * 100}

    before = _count("ResponseValidationErrors", uri)
    verdict = await ReviewService(ReviewConfig()).review(_request(uri, fallback="DENY"))
    assert verdict == Verdict(False, "hello", {"k": "v"}, "invalid review response")
    assert _count("ResponseValidationErrors", uri) == before + 1
    assert _count("InvocationErrors", uri) == 0


async def test_waiting_for_a_slot_counts_against_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one slot and a 150 ms handler, the second of two concurrent reviews cannot finish in
    200 ms: it falls back (as an invocation error) instead of waiting past the budget."""
    service = ReviewService(ReviewConfig(concurrency=1))

    async def slow(uri: str, payload: dict[str, Any]) -> Any:
        await asyncio.sleep(0.15)
        return {"ReviewResult": "ALLOW", "Content": "slow ok"}

    monkeypatch.setattr(service, "_invoke", slow)
    uri = "parley:unit-slot"
    before = _count("InvocationErrors", uri)
    started = asyncio.get_running_loop().time()
    first, second = await asyncio.gather(*(service.review(_request(uri, fallback="DENY")) for _ in range(2)))
    elapsed = asyncio.get_running_loop().time() - started
    assert first == Verdict(True, "slow ok", {"k": "v"})
    assert second is not None and not second.allow and second.reason == "review handler unavailable"
    assert _count("InvocationErrors", uri) == before + 1
    assert elapsed > 0.19  # it waited for the budget; the fallback above shows it did not wait longer
