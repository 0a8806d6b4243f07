"""The load test's report: the workers' finals merged into one dict, and its text form.

Counts and errors are summed, latency histograms merged, connects/s and sent/s taken over the
slowest worker. The dict's keys and their order are ``parley loadtest --json``'s output."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from parley.loadtest.channel import Connected, Final
from parley.loadtest.histogram import LatencyHistogram
from parley.loadtest.options import Options
from parley.loadtest.stats import merge_counts


def build_report(
    options: Options,
    finals: list[Final],
    connected: Collection[Connected],
    token_seconds: float,
    drain_seconds: float,
) -> dict[str, Any]:
    rooms = options.rooms
    room_sent = [sum(f["room_sent"][r] for f in finals) for r in range(rooms)]
    room_rejected = [sum(f["room_rejected"][r] for f in finals) for r in range(rooms)]
    expected = lost = 0
    for f in finals:
        for room, received in f["received"]:
            want = room_sent[room] - room_rejected[room]
            expected += want
            lost += max(want - received, 0)
    latency = LatencyHistogram()
    connect_failures: dict[str, int] = {}
    errors_by_code: dict[str, int] = {}
    disconnects: dict[str, int] = {}
    for f in finals:
        latency.merge(LatencyHistogram.from_state(f["latency"]))
        merge_counts(connect_failures, f["connect_failures"])
        merge_counts(errors_by_code, f["errors_by_code"])
        merge_counts(disconnects, f["disconnects"])
    connections = sum(f["connections"] for f in finals)
    connect_seconds = max(c["connect_seconds"] for c in connected)
    send_seconds = max(f["send_seconds"] for f in finals)
    sent = sum(f["sent"] for f in finals)
    return {
        "clients": options.clients,
        "rooms": rooms,
        "gateways": len(options.gateways),
        "procs": len(finals),
        "senders": sum(f["senders"] for f in finals),
        "connections": connections,
        "connections_open_at_end": sum(f["open_at_end"] for f in finals),
        "connect_failures": connect_failures,
        "token_seconds": round(token_seconds, 3),
        "connect_seconds": round(connect_seconds, 3),
        "connects_per_s": round(connections / connect_seconds, 1) if connect_seconds else None,
        "duration_s": round(send_seconds, 3),
        "target_rate": options.rate,
        "sent": sent,
        "sent_per_s": round(sent / send_seconds, 1) if send_seconds else 0,
        "accepted": sum(room_sent) - sum(room_rejected),
        "deliveries": sum(f["delivered"] for f in finals),
        "deliveries_expected": expected,
        "deliveries_per_s": (
            round(sum(f["delivered_in_window"] for f in finals) / send_seconds, 1) if send_seconds else 0
        ),
        "drain_s": round(drain_seconds, 3),
        "latency_ms": {
            "samples": latency.total,
            "p50": latency.percentile(50),
            "p95": latency.percentile(95),
            "p99": latency.percentile(99),
            "max": round(latency.max_ms, 2) if latency.total else None,
        },
        "errors_by_code": errors_by_code,
        "disconnects": disconnects,
        "lost": lost,
    }


def format_report(report: dict[str, Any]) -> str:
    lat = report["latency_ms"]
    lines = [
        f"connections   {report['connections']}/{report['clients']} over {report['rooms']} rooms, "
        f"{report['gateways']} gateway(s); connect {report['connect_seconds']} s ({report['connects_per_s']}/s)",
        f"sent          {report['sent']} in {report['duration_s']} s "
        f"({report['sent_per_s']}/s, target {report['target_rate']})",
        f"deliveries    {report['deliveries']} of {report['deliveries_expected']} expected "
        f"({report['deliveries_per_s']}/s during sending)",
        f"latency ms    p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}  "
        f"({lat['samples']} samples)",
        f"errors        {report['errors_by_code'] or 'none'}; connect failures {report['connect_failures'] or 'none'}; "
        f"disconnects {report['disconnects'] or 'none'}",
        f"lost          {report['lost']}",
    ]
    return "\n".join(lines)
