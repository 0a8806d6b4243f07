"""The operation table: IVS operation name → handler.

A handler takes the validated request members and returns the response members, or None for
the operations that answer 204 with no body. HTTP method, path and status come from the
botocore model (``api.app``), so this table is the only list of what parley implements.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from api import (
    accounts,
    approval,
    bans,
    chat_tokens,
    history,
    logging_configurations,
    members,
    moderation,
    presence,
    rooms,
    tags,
)
from api.context import ApiContext

Handler = Callable[[ApiContext, dict[str, Any]], Awaitable[dict[str, Any] | None]]

OPERATIONS: dict[str, Handler] = {
    "CreateChatToken": chat_tokens.create_chat_token,
    "CreateRoom": rooms.create_room,
    "GetRoom": rooms.get_room,
    "UpdateRoom": rooms.update_room,
    "DeleteRoom": rooms.delete_room,
    "ListRooms": rooms.list_rooms,
    "CreateLoggingConfiguration": logging_configurations.create_logging_configuration,
    "GetLoggingConfiguration": logging_configurations.get_logging_configuration,
    "UpdateLoggingConfiguration": logging_configurations.update_logging_configuration,
    "DeleteLoggingConfiguration": logging_configurations.delete_logging_configuration,
    "ListLoggingConfigurations": logging_configurations.list_logging_configurations,
    "SendEvent": moderation.send_event,
    "DeleteMessage": moderation.delete_message,
    "DisconnectUser": moderation.disconnect_user,
    "ListTagsForResource": tags.list_tags_for_resource,
    "TagResource": tags.tag_resource,
    "UntagResource": tags.untag_resource,
    # parley extensions (api/botocore_data/parleychat): same auth, errors and validation
    "BanUser": bans.ban_user,
    "UnbanUser": bans.unban_user,
    "GetRoomExtensions": history.get_room_extensions,
    "UpdateRoomExtensions": history.update_room_extensions,
    "ListRoomMessages": history.list_room_messages,
    "GetLastMessages": history.get_last_messages,
    "GetRoomPresence": presence.get_room_presence,
    "AddRoomMembers": members.add_room_members,
    "RemoveRoomMembers": members.remove_room_members,
    "ListRoomMembers": members.list_room_members,
    "ApproveConnection": approval.approve_connection,
    "CreateUser": accounts.create_user,
}
