"""GET_HISTORY (a parley extension): a connection reads its room's recent messages.

With ``After`` (the last message Id the client saw, e.g. after a reconnect) it gets everything
since, oldest first; without it, the newest ``Limit`` messages. The connection is already
subscribed to the room, and the router writes history before it publishes, so anything missing
from the history read arrives live — while the read is in flight those live frames are held
back and then written, minus the ones the HISTORY frame already carried; a live frame that trails
its history entry past the read (published after the read saw it) is skipped for a few seconds
afterwards (``RoomFanout.release``): no gap, no repeat.
"""

from __future__ import annotations

from websockets.asyncio.server import ServerConnection

from gateway.fanout import RoomFanout
from gateway.ports import GatewayStore
from gateway.wire import send_frame
from shared.engine.records import RecordKind
from shared.protocol import frames
from shared.protocol.frames import ClientRequest, ErrorCode, FrameError
from shared.protocol.ids import new_id
from shared.protocol.models import Room


async def answer_history(
    store: GatewayStore, fanout: RoomFanout, ws: ServerConnection, room_id: str, request: ClientRequest
) -> None:
    record = await store.records.get(RecordKind.ROOM, room_id)
    if record is None:
        raise FrameError(ErrorCode.NOT_FOUND, "Room not found", request.request_id)
    room = Room.from_record(record)
    max_age_ms = room.history_max_age_seconds * 1000
    fanout.hold(ws)
    sent: set[str] = set()
    try:
        if request.after:
            rows, found = await store.history.after(room_id, request.after, request.limit, max_age_ms)
            gap = not found
        else:
            rows = list(reversed(await store.history.latest(room_id, request.limit, max_age_ms)))
            gap = False
        sent = {message_id for message_id, _ in rows}
        frame = frames.history_frame(
            frame_id=new_id(), request_id=request.request_id, messages=[frame for _, frame in rows], gap=gap
        )
        send_frame(ws, frame, fanout.max_send_buffer)
    finally:
        fanout.release(ws, sent)
