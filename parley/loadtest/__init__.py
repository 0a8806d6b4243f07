"""``parley loadtest``: drive simulated chat clients through real gateways and report what came back.

It creates rooms and chat tokens through the control plane (SigV4-signed with botocore, keys
from ``PARLEY_ACCESS_KEY_ID`` / ``PARLEY_SECRET_ACCESS_KEY`` or ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``), opens ``--clients`` WebSockets spread over ``--rooms`` rooms and
the ``--gateway`` URLs, then sends SEND_MESSAGE at ``--rate`` messages/s in total for
``--duration`` seconds from the sending clients, and counts every MESSAGE every client gets.

Each message carries its client send time, so latency is measured client to client (send →
receive through gateway, bus, router, bus, gateway). Every client of a room, the sender
included, must get every accepted message of the room; what did not arrive after a drain
period is reported as lost. Errors are counted by ErrorCode (a rejected message is not lost).

``--procs N`` splits the clients and the senders with their share of the rate over N spawned
worker processes, each with its own event loop (uvloop); this process keeps the control plane
and merges their reports.

Only loopback targets unless ``--allow-remote``; the run is bounded (``--duration`` at most
``MAX_DURATION_S``, plus bounded setup and drain). One progress line per second on stderr; a
final report on stdout, as JSON with ``--json``.

The modules, one job each: :mod:`~parley.loadtest.options` (flags), :mod:`~parley.loadtest.targets`
(loopback only), :mod:`~parley.loadtest.control_plane` (SigV4 client), :mod:`~parley.loadtest.coordinator`
(rooms, tokens, drain), :mod:`~parley.loadtest.pool` (worker processes), :mod:`~parley.loadtest.channel`
(what workers report), :mod:`~parley.loadtest.worker` (connections, send and receive paths),
:mod:`~parley.loadtest.wsclient` (the lean WebSocket client), :mod:`~parley.loadtest.histogram`,
:mod:`~parley.loadtest.stats`, :mod:`~parley.loadtest.progress` and :mod:`~parley.loadtest.report`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from parley.loadtest.control_plane import ApiError, IvsChatApi
from parley.loadtest.coordinator import LoadTest
from parley.loadtest.histogram import LatencyHistogram
from parley.loadtest.options import MAX_DURATION_S, SETUP_TIMEOUT_S, Options, add_arguments, options_from_args
from parley.loadtest.pool import raise_nofile
from parley.loadtest.report import format_report
from parley.loadtest.targets import check_targets

__all__ = [
    "MAX_DURATION_S",
    "ApiError",
    "IvsChatApi",
    "LatencyHistogram",
    "Options",
    "add_arguments",
    "check_targets",
    "format_report",
    "main",
    "options_from_args",
    "run",
]


async def run(options: Options) -> dict[str, Any]:
    """One bounded load test run; the report :func:`format_report` prints."""
    check_targets([options.api, *options.gateways], options.allow_remote)
    raise_nofile(options.clients + 256)
    hard_cap = min(options.duration, MAX_DURATION_S) + SETUP_TIMEOUT_S + options.drain + 60
    async with asyncio.timeout(hard_cap):
        return await LoadTest(options).run()


def main(args: argparse.Namespace) -> None:
    """``parley loadtest``: the report on stdout, as one JSON object with ``--json``."""
    from parley.runtime import run as run_loop

    options = options_from_args(args)
    result: dict[str, Any] = {}

    async def go() -> None:
        result.update(await run(options))

    run_loop(go())
    print(json.dumps(result) if args.json else format_report(result), flush=True)
