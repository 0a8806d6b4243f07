"""The groups-chat delivered cursor and its save schedule (``gateway.fronts.groupschat.cursor``): pure."""

from __future__ import annotations

from gateway.fronts.groupschat.cursor import MAX_IDS, SLACK_MS, Cursor, SaveSchedule, cursor_of


def test_a_cursor_covers_older_events_and_the_ids_it_names_in_its_slack() -> None:
    sent = {"old": 1_000, "a": 50_000, "b": 52_000, "late": 49_000}
    cursor = cursor_of(sent, 52_000)
    assert cursor.ms == 52_000 and cursor.floor == 52_000 - SLACK_MS
    assert cursor.ids == {"a": 50_000, "b": 52_000, "late": 49_000}  # "old" is under the floor
    assert Cursor.from_record(cursor.to_record()) == cursor
    assert Cursor.from_record(None) == Cursor() and Cursor().floor == 0
    assert Cursor.from_record({"ms": 7}) == Cursor(7)  # a cursor saved before ids were kept
    many = cursor_of({f"e{i}": 100_000 + i for i in range(MAX_IDS + 10)}, 100_000 + MAX_IDS + 9)
    assert len(many.ids) == MAX_IDS and "e0" not in many.ids  # the newest are kept


def test_saves_are_due_every_n_events_or_t_ms_after_the_first_unsaved() -> None:
    schedule = SaveSchedule(every_events=3, every_ms=1000)
    assert not schedule.due(0)  # nothing to save
    schedule.delivered(1, 10_000)
    schedule.delivered(1, 10_400)
    assert not schedule.due(10_500) and schedule.wait_ms(10_500) == 500
    assert schedule.due(11_000)  # T after the first unsaved one
    schedule.delivered(1, 10_600)
    assert schedule.due(10_600) and schedule.wait_ms(10_600) == 0  # the Nth event
    schedule.saved()
    assert schedule.unsaved == 0 and not schedule.due(20_000)
    schedule.delivered(0, 20_000)
    assert not schedule.due(30_000)
    schedule.delivered(2, 30_000)
    assert schedule.wait_ms(30_100) == 900
