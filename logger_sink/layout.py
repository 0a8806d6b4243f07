"""Where records go, pure: IVS's S3 key layout and the file layout of the local destinations.

S3 (spec §7)::

    AWSLogs/<account>/IVSChatLogs/1.0/<region>/room_<id>/YYYY/MM/DD/HH/
        <account>_IVSChatLogs_1.0_<region>_room_<id>_YYYYMMDDTHHMMZ_<hash>.log.gz

Files under ``PARLEY_LOG_DIR``::

    cloudwatch/<logGroupName>/aws/IVSChatLogs/1.0/room_<id>.log   one stream per room
    firehose/<deliveryStreamName>.log                             every room of the stream
    spool/s3/<configId>/<bucket>/<key>                            objects waiting for S3
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from pathlib import Path
from urllib.parse import quote

from logger_sink.records import VERSION

_KEY_TIME = re.compile(r"_(\d{8}T\d{4})Z_[0-9a-f]{8}\.log\.gz\Z")  # \Z: "$" also matches before a final "\n"


def object_hash(body: bytes) -> str:
    """8 lowercase hex digits. Derived from the content, so re-uploading the same batch after a
    crash overwrites the same object instead of adding a duplicate."""
    return hashlib.sha256(body).hexdigest()[:8]


def s3_room_prefix(account: str, region: str, room_id: str) -> str:
    return f"AWSLogs/{account}/IVSChatLogs/{VERSION}/{region}/room_{room_id}/"


def s3_key(account: str, region: str, room_id: str, epoch_ms: int, digest: str) -> str:
    moment = time.gmtime(epoch_ms // 1000)
    folder = time.strftime("%Y/%m/%d/%H", moment)
    stamp = time.strftime("%Y%m%dT%H%MZ", moment)
    name = f"{account}_IVSChatLogs_{VERSION}_{region}_room_{room_id}_{stamp}_{digest}.log.gz"
    return f"{s3_room_prefix(account, region, room_id)}{folder}/{name}"


def s3_key_minute_ms(key: str) -> int | None:
    """The minute a key's name carries (the batch's first record), as epoch ms."""
    match = _KEY_TIME.search(key)
    if match is None:
        return None
    return calendar.timegm(time.strptime(match.group(1), "%Y%m%dT%H%M")) * 1000


def safe_component(name: str) -> str:
    """One path component from a destination name: ``/`` and ``%`` escaped, and never ``.``/``..``
    (IVS's name patterns allow both), so a name cannot leave its directory."""
    escaped = quote(name, safe="-_.#")
    if escaped.startswith("."):
        escaped = "%2E" + escaped[1:]
    return escaped or "%00"


def cloudwatch_stream_name(room_id: str) -> str:
    return f"aws/IVSChatLogs/{VERSION}/room_{room_id}"


def cloudwatch_path(log_dir: str | Path, log_group: str, room_id: str) -> Path:
    stream_dir, stream = cloudwatch_stream_name(safe_component(room_id)).rsplit("/", 1)
    return Path(log_dir) / "cloudwatch" / safe_component(log_group) / stream_dir / f"{stream}.log"


def firehose_path(log_dir: str | Path, delivery_stream: str) -> Path:
    return Path(log_dir) / "firehose" / f"{safe_component(delivery_stream)}.log"


def spool_dir(log_dir: str | Path, config_id: str, bucket: str) -> Path:
    return Path(log_dir) / "spool" / "s3" / safe_component(config_id) / safe_component(bucket)
