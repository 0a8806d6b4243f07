"""Account-wide messaging rates over all rooms (IVS quotas: SendMessage 1000/s, DeleteMessage
and DisconnectUser 100/s each, adjustable), enforced by the routers.

Every client action passes through exactly one router, so the quota needs no shared counter:
each of the N live routers allows ``ceil(limit / N)`` per second (N from the routers' membership,
which the router already reads every second). The price of not paying a Store round trip per
batch: with rooms unevenly spread over routers, one router can refuse while another has room —
the account then gets somewhat less than its full quota; more only by the rounding (N - 1 per
second) and, in the second after a router joins, until every router has read the new N.
Actions from the control plane (SendEvent/DeleteMessage/DisconnectUser API calls) are not
refused here: the API already answered them and limits them itself (its per-operation TPS).
"""

from __future__ import annotations

import math

from shared.features.ratelimit import SlidingWindow
from shared.protocol.envelope import ActionEnvelope, Kind


class AccountRates:
    def __init__(self, send_message: int, delete_message: int, disconnect_user: int) -> None:
        self._limits: dict[str, int] = {
            Kind.SEND_MESSAGE: send_message,
            Kind.DELETE_MESSAGE: delete_message,
            Kind.DISCONNECT_USER: disconnect_user,
        }
        self._windows: dict[str, SlidingWindow] = {kind: SlidingWindow(limit) for kind, limit in self._limits.items()}
        self.routers = 1

    def share(self, routers: int) -> None:
        """Split each quota over ``routers`` live routers."""
        self.routers = max(routers, 1)
        for kind, limit in self._limits.items():
            self._windows[kind].limit = max(math.ceil(limit / self.routers), 1)

    def refusal(self, action: ActionEnvelope) -> str | None:
        """None if ``action`` fits the account's rate (and is counted), else the error message."""
        window = self._windows.get(action.kind)
        if window is None or not action.gateway_id:
            return None
        if window.allow(action.received_ms):
            return None
        limit = self._limits[action.kind]
        return f"Account {action.kind} rate of {limit}/s over all rooms exceeded"  # kinds are IVS's names
