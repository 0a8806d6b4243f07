"""ListTagsForResource, TagResource, UntagResource, for room and logging-configuration ARNs.

Tags are part of the resource's record. Tagging does not bump ``updateTime`` (it is not a
configuration change), so the record keeps its place in the List order.
"""

from __future__ import annotations

from typing import Any

from api.context import ApiContext, arn_id, load_logging_configuration, load_room
from api.errors import LOGGING_CONFIGURATION as LOGGING_CONFIGURATION_TYPE
from api.errors import ROOM as ROOM_TYPE
from api.errors import ResourceNotFoundException, ValidationException
from api.validation import MAX_TAGS
from shared.engine.records import RecordKind
from shared.protocol.ids import parse_arn
from shared.protocol.models import LoggingConfiguration, Room

Resource = Room | LoggingConfiguration


async def _load(ctx: ApiContext, arn: str) -> Resource:
    # Validation already guaranteed a room or logging-configuration ARN.
    if parse_arn(arn) == ("room", arn_id(arn)):
        return await load_room(ctx, arn)
    return await load_logging_configuration(ctx, arn)


async def _save(ctx: ApiContext, resource: Resource) -> None:
    kind = RecordKind.ROOM if isinstance(resource, Room) else RecordKind.LOGGING_CONFIGURATION
    if not await ctx.store.records.put(kind, resource.id, resource.to_record(), resource.update_ms):
        resource_type = ROOM_TYPE if kind == RecordKind.ROOM else LOGGING_CONFIGURATION_TYPE
        raise ResourceNotFoundException(f"Resource not found: {resource.arn}", resource.id, resource_type)


async def list_tags_for_resource(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    resource = await _load(ctx, params["resourceArn"])
    return {"tags": dict(resource.tags)}


async def tag_resource(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    resource = await _load(ctx, params["resourceArn"])
    merged = {**resource.tags, **params["tags"]}
    if len(merged) > MAX_TAGS:
        raise ValidationException.field("tags", f"A resource can have at most {MAX_TAGS} tags")
    resource.tags = merged
    await _save(ctx, resource)
    return {}


async def untag_resource(ctx: ApiContext, params: dict[str, Any]) -> dict[str, Any]:
    resource = await _load(ctx, params["resourceArn"])
    resource.tags = {key: value for key, value in resource.tags.items() if key not in set(params["tagKeys"])}
    await _save(ctx, resource)
    return {}
