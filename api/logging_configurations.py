"""Logging-configuration operations: Create, Get, Update, Delete, List.

Records are ``shared.protocol.models.LoggingConfiguration``; parley creates them ACTIVE at once (there is
no destination to provision). A configuration still referenced by a room cannot be deleted.
"""

from __future__ import annotations

from typing import Any

from api.context import ApiContext, list_page, load_logging_configuration, member
from api.errors import LOGGING_CONFIGURATION as LOGGING_CONFIGURATION_TYPE
from api.errors import (
    ConflictException,
    ResourceNotFoundException,
    ServiceQuotaExceededException,
)
from shared.clock import now_ms
from shared.engine.records import QuotaExceeded, RecordKind
from shared.protocol.envelope import ControlNotice, ControlTopic
from shared.protocol.ids import logging_configuration_arn, new_id
from shared.protocol.models import LoggingConfiguration, Room

_SCAN_BATCH = 500


def _destination(value: dict[str, Any]) -> dict[str, dict[str, str]]:
    # Validation guarantees exactly one member; keep only that one (nulls are absent).
    return {kind: dict(config) for kind, config in value.items() if config is not None}


def _not_found(config: LoggingConfiguration) -> ResourceNotFoundException:
    return ResourceNotFoundException(
        f"Logging configuration not found: {config.arn}", config.id, LOGGING_CONFIGURATION_TYPE
    )


async def create_logging_configuration(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    now = now_ms()
    config_id = new_id()
    config = LoggingConfiguration(
        id=config_id,
        arn=logging_configuration_arn(ctx.settings.region, ctx.settings.account_id, config_id),
        name=member(params, "name", ""),
        create_ms=now,
        update_ms=now,
        destination=_destination(params["destinationConfiguration"]),
        state="ACTIVE",
        tags=dict(member(params, "tags", {})),
    )
    try:
        await ctx.store.records.create(
            RecordKind.LOGGING_CONFIGURATION,
            config_id,
            config.to_record(),
            now,
            ctx.settings.max_logging_configurations,
        )
    except QuotaExceeded as exc:
        raise ServiceQuotaExceededException(
            f"Logging configuration quota of {exc.limit} reached", config_id, LOGGING_CONFIGURATION_TYPE, exc.limit
        ) from None
    return config.to_api()


async def get_logging_configuration(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    return (await load_logging_configuration(ctx, params["identifier"])).to_api()


async def update_logging_configuration(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    config = await load_logging_configuration(ctx, params["identifier"])
    if params.get("name") is not None:
        config.name = params["name"]
    if params.get("destinationConfiguration") is not None:
        config.destination = _destination(params["destinationConfiguration"])
    config.update_ms = max(now_ms(), config.update_ms + 1)
    if not await ctx.store.records.put(
        RecordKind.LOGGING_CONFIGURATION, config.id, config.to_record(), config.update_ms
    ):
        raise _not_found(config)
    await _config_changed(ctx, config)
    return config.to_api()


async def _config_changed(ctx: ApiContext, config: LoggingConfiguration) -> None:
    # Logger sinks cache configurations; this makes a new destination apply at once.
    await ctx.bus.fanout.publish_control(ControlNotice(ControlTopic.LOGGING_CONFIGURATION_CHANGED, config.id).encode())


async def _first_room_using(ctx: ApiContext, arn: str) -> Room | None:
    after: tuple[int, str] | None = None
    while True:
        rows = await ctx.store.records.page(RecordKind.ROOM, after, _SCAN_BATCH)
        for _, _, record in rows:
            room = Room.from_record(record)
            if arn in room.logging_configuration_identifiers:
                return room
        if len(rows) < _SCAN_BATCH:
            return None
        after = (rows[-1][0], rows[-1][1])


async def delete_logging_configuration(ctx: ApiContext, params: dict[str, Any]) -> None:
    config = await load_logging_configuration(ctx, params["identifier"])
    user = await _first_room_using(ctx, config.arn)
    if user is not None:
        raise ConflictException(
            f"Logging configuration {config.arn} is in use by room {user.arn}",
            config.id,
            LOGGING_CONFIGURATION_TYPE,
        )
    if not await ctx.store.records.delete(RecordKind.LOGGING_CONFIGURATION, config.id):
        raise _not_found(config)
    await _config_changed(ctx, config)


async def list_logging_configurations(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    records, token = await list_page(
        ctx, RecordKind.LOGGING_CONFIGURATION, params.get("nextToken"), params.get("maxResults")
    )
    # LoggingConfigurationSummary has the same members as LoggingConfiguration.
    response: dict[str, Any] = {
        "loggingConfigurations": [LoggingConfiguration.from_record(record).to_api() for record in records]
    }
    if token is not None:
        response["nextToken"] = token
    return response
