"""The line front's codec (seed 000), without sockets; and the accounts and inbox cores it uses."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.fronts.line import codec
from gateway.fronts.line.codec import Bad, Command, LineSplitter, Name, TooLong
from shared.engine.memory import MemoryStore
from shared.features import accounts, inbox
from shared.features.accounts import LoginResult, UsernameTaken
from shared.protocol import frames


def test_lines_end_with_lf_or_crlf_and_may_come_in_pieces() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"auth messi sura") == []
    assert splitter.feed(b"baya\r\ninbox\nsh") == [b"auth messi surabaya", b"inbox"]
    assert splitter.feed(b"ow\r") == []
    assert splitter.feed(b"\n") == [b"show"]


def test_a_too_long_line_is_reported_once_and_skipped_with_bounded_memory() -> None:
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"x" * 10 + b"\r\n") == [b"x" * 10]  # exactly the limit is fine
    assert splitter.feed(b"y" * 11 + b"\n") == [TooLong()]
    assert splitter.feed(b"z" * 30) == [TooLong()]
    assert splitter.feed(b"z" * 30) == []  # still the same line: not reported again, not kept
    assert len(splitter._buffer) == 0
    assert splitter.feed(b"zz\ninbox\n") == [b"inbox"]


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (b"auth messi surabaya", Command(Name.AUTH, ("messi", "surabaya"))),
        (b"AUTH messi surabaya", Command(Name.AUTH, ("messi", "surabaya"))),
        (b"send henderson hello gimana kabarnya son", Command(Name.SEND, ("henderson", "hello gimana kabarnya son"))),
        (b"send  henderson   two  spaces ", Command(Name.SEND, ("henderson", "two  spaces"))),
        (b"inbox", Command(Name.INBOX)),
        (b"show extra", Command(Name.SHOW)),
        (b"logout", Command(Name.LOGOUT)),
        (b"", None),
        (b"   ", None),
        (b"dance", Bad("Protocol Tidak Benar")),
        (b"auth messi", Bad("usage: auth [username] [password]")),
        (b"auth a b c", Bad("usage: auth [username] [password]")),
        (b"send henderson", Bad("usage: send [username_to] [messages]")),
        (b"\xff", Bad("lines must be UTF-8")),
    ],
)
def test_parse(line: bytes, parsed: Command | Bad | None) -> None:
    assert codec.parse(line) == parsed


def test_replies_are_the_seeds_texts_each_ending_with_an_empty_line() -> None:
    token = "8cab384c-10cf-417e-befd-b17a1074e5e9"
    assert codec.logged_in("messi", token) == f"username messi logged in, token {token}\r\n\r\n".encode()
    assert codec.reply(codec.NO_SUCH_USER) == b"Error, User Tidak Ada\r\n\r\n"
    assert codec.reply(codec.WRONG_PASSWORD) == b"Error, Password Salah\r\n\r\n"
    assert codec.reply(codec.NOT_AUTHORIZED) == b"Error, not authorized\r\n\r\n"
    assert codec.reply(codec.RECIPIENT_NOT_FOUND) == b"Error, User Tidak Ditemukan\r\n\r\n"
    assert codec.message_sent("henderson") == b"message sent to henderson\r\n\r\n"
    assert codec.logged_out(token) == f"Logout berhasil dilakukan dengan session id :\n{token}\r\n\r\n".encode()
    assert codec.error("x") == b"Error, x\r\n\r\n"


def _frame(user_id: str, attributes: dict[str, str], content: str) -> bytes:
    return frames.message_frame(
        frame_id="f" * 12,
        request_id=None,
        content=content,
        attributes=None,
        send_ms=0,
        sender_user_id=user_id,
        sender_attributes=attributes,
        recipient="r",
    )


def test_inbox_is_the_seeds_json_grouped_by_sender() -> None:
    messi = {"username": "messi", "nama": "Lionel Messi"}
    entries = [
        codec.received(_frame("u1", messi, "hello gimana kabarnya son")),
        codec.received(_frame("u2", {"username": "kane"}, "hi")),
        codec.received(_frame("u1", messi, "woi")),
    ]
    assert None not in entries
    raw = codec.inbox([e for e in entries if e is not None], "Jordan Henderson")
    assert raw.endswith(b"}\r\n\r\n")
    assert json.loads(raw) == {
        "messi": [
            {"msg_from": "Lionel Messi", "msg_to": "Jordan Henderson", "msg": " hello gimana kabarnya son \r\n"},
            {"msg_from": "Lionel Messi", "msg_to": "Jordan Henderson", "msg": " woi \r\n"},
        ],
        "kane": [{"msg_from": "kane", "msg_to": "Jordan Henderson", "msg": " hi \r\n"}],
    }
    assert codec.inbox([], "x") == b"{}\r\n\r\n"
    assert codec.received(b"not json") is None
    assert codec.received(frames.error_frame(frame_id="e" * 12, request_id=None, code=400, message="m")) is None


def test_show_is_a_table_of_tokens_usernames_and_details() -> None:
    long_detail = {"nama": "Lionel Messi", "negara": "Argentina", "club": "Inter Miami"}
    raw = codec.show([codec.Online("t-1", "messi", long_detail), codec.Online("t-2", "kane", {})])
    text = raw.decode()
    assert text.endswith("\r\n\r\n")
    title, header, usernames, details = text[:-4].split("\n")
    assert title == "Daftar User Online"
    assert header.split() == ["t-1", "t-2"]
    assert usernames.split() == ["username", "messi", "kane"]
    cut = "{'nama': 'Lionel Messi', 'negara': 'Argentina',..."  # cut at 50, as pandas (the seed's table)
    assert cut in details and len(cut) == codec.USERDETAIL_WIDTH
    assert details.endswith("{}")
    assert len({line.index(cell) + len(cell) for line, cell in ((header, "t-1"), (usernames, "messi"))}) == 1


async def test_accounts_are_unique_hashed_and_checked() -> None:
    store = MemoryStore()
    created = await accounts.create_account(store, "messi", "surabaya", "m@example.com", {"nama": "Lionel Messi"})
    with pytest.raises(UsernameTaken):
        await accounts.create_account(store, "messi", "other")
    with pytest.raises(accounts.AccountError):
        await accounts.create_account(store, "has space", "x")
    record = await store.records.get(accounts.RecordKind.ACCOUNT, "messi")
    assert record is not None and "surabaya" not in json.dumps(record)
    assert record["password"].startswith("scrypt$16384$8$1$")
    found = await accounts.get_account(store.records, "messi")
    assert found == created and found.display_name == "Lionel Messi"
    assert await accounts.get_account(store.records, "nobody") is None
    login = accounts.login
    assert await login(store, "messi", "surabaya", "1.2.3.4", per_user=3, per_address=10) == (LoginResult.OK, created)
    assert (await login(store, "messi", "nope", "1.2.3.4", per_user=3, per_address=10))[0] is LoginResult.BAD_PASSWORD
    assert (await login(store, "nobody", "x", "1.2.3.4", per_user=3, per_address=10))[0] is LoginResult.NO_USER
    assert (await login(store, "messi", "surabaya", "5.6.7.8", per_user=3, per_address=10))[0] is LoginResult.OK
    assert (await login(store, "messi", "surabaya", "5.6.7.8", per_user=3, per_address=10))[0] is LoginResult.THROTTLED
    assert (await login(store, "other", "x", "1.2.3.4", per_user=3, per_address=3))[0] is LoginResult.THROTTLED


def test_password_hashes_are_salted_and_verified_in_constant_time() -> None:
    first, second = accounts.hash_password("pw"), accounts.hash_password("pw")
    assert first != second
    assert accounts.verify_password("pw", first) and not accounts.verify_password("px", first)
    assert not accounts.verify_password("pw", "garbage") and not accounts.verify_password("pw", "md5$x$y$z$a$b")


async def test_two_takers_of_one_inbox_never_both_get_a_message() -> None:
    store = MemoryStore()
    key = inbox.inbox_key("room", "bob")
    items = [(f"m{index:03}", f"frame {index}".encode()) for index in range(50)]
    await store.history.append(key, items, 100, 60_000)
    first, second = await asyncio.gather(
        inbox.take(store.history, "room", "bob", 100, 60_000), inbox.take(store.history, "room", "bob", 100, 60_000)
    )
    assert sorted(first + second) == items
    assert first == sorted(first) and second == sorted(second)  # each in arrival order
    assert await inbox.take(store.history, "room", "bob", 100, 60_000) == []
