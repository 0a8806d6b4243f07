"""BanUser / UnbanUser: parley extension operations called through boto3 with parley's model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from parley.testing.cluster import parleychat_client
from shared.clock import now_ms
from shared.protocol.envelope import Kind

if TYPE_CHECKING:
    from tests.api_helpers import ApiServer

pytest_plugins = ["api_helpers"]


def parley_client(api: ApiServer, secret: str | None = None) -> Any:
    return parleychat_client(api.url, api.settings, secret)


def test_ban_disconnects_and_refuses_tokens_until_unbanned(api: ApiServer, ivs: Any) -> None:
    room = ivs.create_room(name="banroom")
    parley = parley_client(api)
    before = now_ms()
    answer = parley.ban_user(roomIdentifier=room["arn"], userId="bob", durationSeconds=600, reason="spam")
    expires = int(answer["banExpirationTime"].timestamp() * 1000)
    assert before + 600_000 - 1000 <= expires <= now_ms() + 600_000 + 1000
    action = api.next_action()
    assert (action.kind, action.disconnect_user_id, action.reason, action.room_id) == (
        Kind.DISCONNECT_USER,
        "bob",
        "spam",
        room["id"],
    )

    with pytest.raises(ivs.exceptions.AccessDeniedException):
        ivs.create_chat_token(roomIdentifier=room["arn"], userId="bob")
    ivs.create_chat_token(roomIdentifier=room["arn"], userId="alice")  # others are unaffected
    other = ivs.create_room(name="elsewhere")
    ivs.create_chat_token(roomIdentifier=other["arn"], userId="bob")  # bans are per room

    assert parley.unban_user(roomIdentifier=room["arn"], userId="bob")["banned"] is True
    ivs.create_chat_token(roomIdentifier=room["arn"], userId="bob")
    assert parley.unban_user(roomIdentifier=room["arn"], userId="bob")["banned"] is False


def test_ban_validation_and_missing_room(api: ApiServer, ivs: Any) -> None:
    parley = parley_client(api)
    room = ivs.create_room(name="r")
    with pytest.raises(parley.exceptions.ValidationException):
        parley.ban_user(roomIdentifier=room["arn"], userId="bob", durationSeconds=10**9)  # over 1 year
    with pytest.raises(parley.exceptions.ValidationException):
        parley.ban_user(roomIdentifier="arn:aws:ivschat:us-east-1:1:channel/x", userId="bob", durationSeconds=5)
    missing = room["arn"][:-12] + "abcdefABCDEF"
    with pytest.raises(parley.exceptions.ResourceNotFoundException):
        parley.ban_user(roomIdentifier=missing, userId="bob", durationSeconds=5)
    forged = parley_client(api, secret="nope")
    with pytest.raises(forged.exceptions.AccessDeniedException):
        forged.ban_user(roomIdentifier=room["arn"], userId="bob", durationSeconds=5)
