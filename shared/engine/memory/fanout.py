"""In-process :class:`~shared.engine.fanout.Fanout`: listeners are called while publishing.

A publish calls every listener of its channel before it returns, so "ordered at call time"
holds trivially; a listener that raises fails the publish (there is no connection to protect).
"""

from __future__ import annotations

from shared.engine.channels import HubSubscription
from shared.engine.fanout import DataListener, Fanout, ResubscribedListener, RoomListener, Subscription

CONTROL_CHANNEL = b"control"


def room_channel(room_id: str) -> bytes:
    return b"room:" + room_id.encode()


def gateway_channel(gateway_id: str) -> bytes:
    return b"gw:" + gateway_id.encode()


class _Channels:
    """Listeners by channel: the in-process twin of the Redis subscriber connection."""

    def __init__(self) -> None:
        self._listeners: dict[bytes, list[DataListener]] = {}

    async def add(self, channel: bytes, listener: DataListener) -> None:
        self._listeners.setdefault(channel, []).append(listener)

    async def remove(self, channel: bytes, listener: DataListener) -> None:
        listeners = self._listeners.get(channel)
        if listeners is None or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._listeners[channel]

    def publish(self, channel: bytes, data: bytes) -> None:
        for listener in list(self._listeners.get(channel, ())):
            listener(data)


class MemoryFanout(Fanout):
    def __init__(self) -> None:
        self._channels = _Channels()

    async def publish_rooms(self, deliveries: list[tuple[str, bytes]]) -> None:
        for room_id, data in deliveries:
            self._channels.publish(room_channel(room_id), data)

    async def publish_gateway(self, gateway_id: str, data: bytes) -> None:
        self._channels.publish(gateway_channel(gateway_id), data)

    async def publish_control(self, data: bytes) -> None:
        self._channels.publish(CONTROL_CHANNEL, data)

    async def subscribe(
        self,
        gateway_id: str,
        on_room: RoomListener | None,
        on_gateway: DataListener | None,
        on_control: DataListener | None = None,
        on_resubscribed: ResubscribedListener | None = None,  # never called: nothing is lost in-process
    ) -> Subscription:
        subscription = HubSubscription(self._channels, room_channel, on_room)
        if on_gateway is not None:
            await subscription.listen(gateway_channel(gateway_id), on_gateway)
        if on_control is not None:
            await subscription.listen(CONTROL_CHANNEL, on_control)
        return subscription
