"""The per-user writes the router makes for a decided batch (``shared.features.inbox.plan``), and
the user-log entry shape: pure, no Store."""

from __future__ import annotations

from shared.features import inbox
from shared.protocol.envelope import ActionEnvelope, Kind
from shared.protocol.models import Room

BOUNDS = inbox.LogBounds(max_events=500, max_age_ms=60_000, max_members=3)


def send(frame_id: str, user: str, recipient: str = "") -> tuple[ActionEnvelope, bytes]:
    action = ActionEnvelope(Kind.SEND_MESSAGE, frame_id, "R1", 0, user_id=user, recipient=recipient)
    return action, f"frame-{frame_id}".encode()


def delete(frame_id: str, message_id: str) -> tuple[ActionEnvelope, bytes]:
    return ActionEnvelope(Kind.DELETE_MESSAGE, frame_id, "R1", 0, user_id="mod", message_id=message_id), b"deleted"


def typing(frame_id: str) -> tuple[ActionEnvelope, bytes]:
    return ActionEnvelope(Kind.SEND_EVENT, frame_id, "R1", 0, user_id="a", event_name="parley:TYPING_START"), b"t"


def entry(frame_id: str) -> tuple[str, bytes]:
    return frame_id, inbox.log_entry("R1", f"frame-{frame_id}".encode())


def test_a_member_log_room_keeps_each_message_for_every_other_member_in_order() -> None:
    room = Room("R1", "arn", member_log=True)
    batch = [send("M1", "a"), typing("E1"), send("M2", "b"), send("M3", "a", recipient="c")]
    writes = inbox.plan(room, batch, ["a", "b", "c"], BOUNDS)
    assert writes == [
        inbox.Append("user-log:b", [entry("M1")], 500, 60_000),
        inbox.Append("user-log:c", [entry("M1"), entry("M2"), entry("M3")], 500, 60_000),  # M3: direct, to c only
        inbox.Append("user-log:a", [entry("M2")], 500, 60_000),
    ]
    # a deleted message leaves every member's log; appends keep their order around the removals
    writes = inbox.plan(room, [send("M4", "a"), delete("E2", "M4"), send("M5", "b")], ["a", "b"], BOUNDS)
    assert writes == [
        inbox.Append("user-log:b", [entry("M4")], 500, 60_000),
        inbox.Remove("user-log:a", "M4"),
        inbox.Remove("user-log:b", "M4"),
        inbox.Append("user-log:a", [entry("M5")], 500, 60_000),
    ]


def test_member_log_bounds_and_who_is_left_out() -> None:
    room = Room("R1", "arn", member_log=True)
    # at most max_members members; a direct message to a non-member, or to oneself, is kept for nobody
    writes = inbox.plan(room, [send("M1", "a")], ["a", "b", "c", "d", "e"], BOUNDS)
    assert [write.key for write in writes] == ["user-log:b", "user-log:c"]
    assert inbox.plan(room, [send("M2", "a", recipient="z"), send("M3", "a", recipient="a")], ["a", "b"], BOUNDS) == []
    assert inbox.needs_members(room, [send("M1", "a")[0]])
    assert not inbox.needs_members(room, [typing("E1")[0]])
    assert not inbox.needs_members(Room("R2", "arn"), [send("M1", "a")[0]])


def test_an_inbox_room_keeps_direct_messages_for_their_recipient_only() -> None:
    room = Room("R1", "arn", inbox_per_user=True, history_max_messages=20, history_max_age_seconds=60)
    batch = [send("M1", "a"), send("M2", "a", recipient="b"), send("M3", "c", recipient="b"), delete("E1", "M2")]
    assert inbox.plan(room, batch, [], BOUNDS) == [
        inbox.Append("R1:inbox:b", [("M2", b"frame-M2"), ("M3", b"frame-M3")], 20, 60_000)
    ]
    off = Room("R1", "arn", inbox_per_user=True, history_max_messages=0)
    assert inbox.plan(off, batch, [], BOUNDS) == []
    assert inbox.plan(Room("R1", "arn"), batch, ["a", "b", "c"], BOUNDS) == []


def test_user_log_entries_carry_their_room() -> None:
    raw = inbox.log_entry("ROOM1", b'{"Type":"MESSAGE"}')
    assert inbox.read_log_entry(raw) == ("ROOM1", b'{"Type":"MESSAGE"}')
    assert inbox.read_log_entry(b'{"type":70}') == ("", b'{"type":70}')  # an untagged entry
    assert inbox.user_log_key("u1") != inbox.inbox_key("u1", "u1")
