"""Room operations: CreateRoom, GetRoom, UpdateRoom, DeleteRoom, ListRooms.

Rooms are ``shared.protocol.models.Room`` records in the Store. After a change that the data plane
caches (update, delete) a ``ControlTopic.ROOM_CHANGED`` tells every process to reload.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.context import (
    ApiContext,
    list_page,
    load_logging_configuration,
    load_room,
    member,
)
from api.errors import ROOM as ROOM_TYPE
from api.errors import ResourceNotFoundException, ServiceQuotaExceededException
from api.validation import check_review_handler_uri
from shared.clock import now_ms
from shared.engine.records import QuotaExceeded, Record, RecordKind
from shared.protocol.envelope import ControlNotice, ControlTopic
from shared.protocol.ids import new_id, room_arn
from shared.protocol.models import (
    DEFAULT_FALLBACK_RESULT,
    DEFAULT_MAX_MESSAGE_LENGTH,
    DEFAULT_MAX_MESSAGE_RATE,
    Room,
)


async def _check_logging_configurations(ctx: ApiContext, arns: list[str]) -> None:
    for arn in arns:
        await load_logging_configuration(ctx, arn)  # raises ResourceNotFoundException


def _apply_handler(ctx: ApiContext, room: Room, handler: dict[str, Any] | None) -> None:
    if handler is None:
        return
    if handler.get("uri") is not None:
        # The reviewer will POST there from inside our network: refuse what it would refuse.
        check_review_handler_uri(handler["uri"], ctx.settings.review_allowed_networks)
        room.review_uri = handler["uri"]  # "" detaches the handler
    if handler.get("fallbackResult") is not None:
        room.review_fallback = handler["fallbackResult"]


async def save_room(ctx: ApiContext, room: Room) -> None:
    """Store an updated room. Its updateTime moves strictly later than before, so the room moves
    to the top of ListRooms even within one ms; a room deleted meanwhile is not resurrected."""
    room.update_ms = max(now_ms(), room.update_ms + 1)
    if not await ctx.store.records.put(RecordKind.ROOM, room.id, room.to_record(), room.update_ms):
        raise ResourceNotFoundException(f"Room not found: {room.arn}", room.id, ROOM_TYPE)


async def publish_room_changed(ctx: ApiContext, room_id: str) -> None:
    await ctx.bus.fanout.publish_control(ControlNotice(ControlTopic.ROOM_CHANGED, room_id).encode())


async def create_room(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    logging_arns = member(params, "loggingConfigurationIdentifiers", [])
    await _check_logging_configurations(ctx, logging_arns)
    now = now_ms()
    room_id = new_id()
    room = Room(
        id=room_id,
        arn=room_arn(ctx.settings.region, ctx.settings.account_id, room_id),
        name=member(params, "name", ""),
        create_ms=now,
        update_ms=now,
        maximum_message_rate_per_second=member(params, "maximumMessageRatePerSecond", DEFAULT_MAX_MESSAGE_RATE),
        maximum_message_length=member(params, "maximumMessageLength", DEFAULT_MAX_MESSAGE_LENGTH),
        review_fallback=DEFAULT_FALLBACK_RESULT,
        tags=dict(member(params, "tags", {})),
        logging_configuration_identifiers=list(logging_arns),
    )
    _apply_handler(ctx, room, params.get("messageReviewHandler"))
    try:
        await ctx.store.records.create(RecordKind.ROOM, room_id, room.to_record(), now, ctx.settings.max_rooms)
    except QuotaExceeded as exc:
        raise ServiceQuotaExceededException(
            f"Room quota of {exc.limit} reached", room_id, ROOM_TYPE, exc.limit
        ) from None
    return room.to_api()


async def get_room(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    return (await load_room(ctx, params["identifier"])).to_api()


async def update_room(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    room = await load_room(ctx, params["identifier"])
    if params.get("name") is not None:
        room.name = params["name"]
    if params.get("maximumMessageRatePerSecond") is not None:
        room.maximum_message_rate_per_second = params["maximumMessageRatePerSecond"]
    if params.get("maximumMessageLength") is not None:
        room.maximum_message_length = params["maximumMessageLength"]
    _apply_handler(ctx, room, params.get("messageReviewHandler"))
    if params.get("loggingConfigurationIdentifiers") is not None:
        await _check_logging_configurations(ctx, params["loggingConfigurationIdentifiers"])
        room.logging_configuration_identifiers = list(params["loggingConfigurationIdentifiers"])
    await save_room(ctx, room)
    await publish_room_changed(ctx, room.id)
    return room.to_api()


async def delete_room(ctx: ApiContext, params: dict[str, Any]) -> None:
    room = await load_room(ctx, params["identifier"])
    if not await ctx.store.records.delete(RecordKind.ROOM, room.id):
        raise ResourceNotFoundException(f"Room not found: {room.arn}", room.id, ROOM_TYPE)
    await ctx.store.history.clear(room.id)
    await ctx.store.members.clear(room.id)  # parley extension: a new room never inherits members
    # Live connections stay (spec §1.3); the notice only drops cached configuration.
    await publish_room_changed(ctx, room.id)


def _room_filter(params: dict[str, Any]) -> Callable[[Record], bool]:
    name = params.get("name")
    uri = params.get("messageReviewHandlerUri")
    logging_arn = params.get("loggingConfigurationIdentifier")

    def keep(record: Record) -> bool:
        room = Room.from_record(record)
        return (
            (name is None or room.name == name)
            and (uri is None or room.review_uri == uri)
            and (logging_arn is None or logging_arn in room.logging_configuration_identifiers)
        )

    return keep


async def list_rooms(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    records, token = await list_page(
        ctx, RecordKind.ROOM, params.get("nextToken"), params.get("maxResults"), _room_filter(params)
    )
    response: dict[str, Any] = {"rooms": [Room.from_record(record).summary() for record in records]}
    if token is not None:
        response["nextToken"] = token
    return response
