"""logger_sink's pure parts: record shape, IVS key layout, path safety, batching and acks."""

from __future__ import annotations

import gzip
import json
import re

import pytest

from logger_sink import layout
from logger_sink.batching import Batch, BatchLimits, Countdown
from logger_sink.readback import merge
from logger_sink.records import parse_record, record_line, records_from_delivery
from shared.protocol.envelope import DeliveryItem, Kind, RoomDelivery

FRAME = (
    b'{"Type":"MESSAGE","Id":"50PsDdX18qcJ","RequestId":"r1","Content":"h\\u00e9llo \\"q\\"","Attributes":{},'
    b'"SendTime":"2022-10-14T17:40:12.345Z","Sender":{"UserId":"user1","Attributes":{}}}'
)
RECEIVED_MS = 1665769212345  # 2022-10-14T17:40:12.345Z


def test_record_embeds_the_frame_bytes_and_the_receive_time() -> None:
    record = record_line(DeliveryItem(Kind.SEND_MESSAGE, FRAME, "MESSAGE", received_ms=RECEIVED_MS))
    assert record is not None and record.event_ms == RECEIVED_MS
    assert record.line.endswith(b"}\n") and record.line.count(b"\n") == 1
    assert FRAME in record.line  # byte for byte, escapes included
    parsed = json.loads(record.line)
    assert list(parsed) == ["event_timestamp", "type", "version", "payload"]
    assert parsed["event_timestamp"] == "2022-10-14T17:40:12.345Z"
    assert (parsed["type"], parsed["version"]) == ("MESSAGE", "1.0")
    assert parsed["payload"] == json.loads(FRAME)


def test_events_are_logged_and_errors_are_not() -> None:
    event = b'{"Type":"EVENT","Id":"e1","EventName":"aws:DELETE_MESSAGE","SendTime":"2022-10-14T17:40:12.345Z"}'
    error = b'{"Type":"ERROR","Id":"x","ErrorCode":400,"ErrorMessage":"bad"}'
    data = RoomDelivery(
        "room1",
        [
            DeliveryItem(Kind.DELETE_MESSAGE, event, "EVENT"),  # no received_ms: falls back to SendTime
            DeliveryItem(Kind.SEND_MESSAGE, error, "MESSAGE", received_ms=1),
            DeliveryItem(Kind.SEND_MESSAGE, b"not json", "MESSAGE", received_ms=1),
        ],
    ).encode()
    room_id, records = records_from_delivery(data)
    assert room_id == "room1" and len(records) == 1
    parsed = parse_record(records[0].line)
    assert parsed is not None and parsed["type"] == "EVENT" and parsed["event_timestamp"] == "2022-10-14T17:40:12.345Z"
    assert parse_record(b'{"event_timestamp":"2022') is None  # a torn line


def test_s3_key_has_the_ivs_layout() -> None:
    key = layout.s3_key("123456789012", "us-west-2", "abc123DEF456", RECEIVED_MS, layout.object_hash(b"x"))
    assert re.fullmatch(
        r"AWSLogs/123456789012/IVSChatLogs/1\.0/us-west-2/room_abc123DEF456/2022/10/14/17/"
        r"123456789012_IVSChatLogs_1\.0_us-west-2_room_abc123DEF456_20221014T1740Z_[0-9a-f]{8}\.log\.gz",
        key,
    ), key
    assert key.startswith(layout.s3_room_prefix("123456789012", "us-west-2", "abc123DEF456"))
    assert layout.s3_key_minute_ms(key) == RECEIVED_MS - 12_345
    assert layout.object_hash(b"x") == layout.object_hash(b"x") != layout.object_hash(b"y")


@pytest.mark.parametrize("name", ["..", ".", "/ivs/chat#1", "a/../../b", "%2F"])
def test_destination_names_cannot_escape_the_log_dir(tmp_path, name: str) -> None:
    component = layout.safe_component(name)
    assert "/" not in component and component not in (".", "..", "")
    path = layout.cloudwatch_path(tmp_path, name, "room1")
    assert path.resolve().is_relative_to(tmp_path / "cloudwatch")
    assert path.as_posix().endswith("/aws/IVSChatLogs/1.0/room_room1.log")
    assert layout.firehose_path(tmp_path, name).resolve().parent == (tmp_path / "firehose").resolve()
    assert layout.safe_component("a") != layout.safe_component("b")


async def test_countdown_acks_once_after_every_part() -> None:
    acks: list[int] = []

    async def ack() -> None:
        acks.append(1)

    countdown = Countdown(ack)
    countdown.add()
    countdown.add()
    await countdown.done()
    await countdown.seal()
    assert acks == []
    await countdown.done()
    assert acks == [1]
    nothing = Countdown(ack)
    await nothing.seal()  # a delivery with nothing to write is acked at once
    assert acks == [1, 1]


def test_batch_is_due_by_records_bytes_or_age() -> None:
    limits = BatchLimits(seconds=1.0, records=3, bytes=10_000)
    record = record_line(DeliveryItem(Kind.SEND_MESSAGE, FRAME, "MESSAGE", received_ms=RECEIVED_MS))
    assert record is not None
    batch = Batch(opened=10.0)
    assert not batch.due(limits, 100.0)  # empty: never
    batch.add([record], Countdown(_noop))
    assert not batch.due(limits, 10.5) and batch.due(limits, 11.0)
    assert batch.full(BatchLimits(records=1)) and batch.full(BatchLimits(bytes=len(record.line)))
    batch.add([record, record], Countdown(_noop))
    assert batch.full(limits) and batch.due(limits, 10.0)
    assert gzip.decompress(gzip.compress(batch.body)).count(b"\n") == 3


async def _noop() -> None:
    return None


def test_merge_sorts_stably_filters_and_dedupes() -> None:
    def rec(ts: str, ident: str) -> tuple[bytes, dict]:
        record = {"event_timestamp": ts, "type": "MESSAGE", "version": "1.0", "payload": {"Id": ident}}
        return json.dumps(record).encode(), record

    rows = [
        rec("2024-01-01T00:00:02.000Z", "b"),
        rec("2024-01-01T00:00:01.000Z", "a"),
        rec("2024-01-01T00:00:02.000Z", "c"),
    ]
    rows.append(rows[0])
    ids = [json.loads(line)["payload"]["Id"] for line in merge(rows)]
    assert ids == ["a", "b", "c", "b"]
    assert [json.loads(line)["payload"]["Id"] for line in merge(rows, unique=True)] == ["a", "b", "c"]
    since = 1704067202000  # 00:00:02
    assert [json.loads(line)["payload"]["Id"] for line in merge(rows, since_ms=since, unique=True)] == ["b", "c"]
    assert [json.loads(line)["payload"]["Id"] for line in merge(rows, until_ms=since - 1)] == ["a"]
