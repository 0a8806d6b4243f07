"""Generates dashboards/parley.json (run it after editing; tests/test_deploy.py checks it is current).

.venv/bin/python deploy/grafana/build_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
OUT = Path(__file__).parent / "dashboards" / "parley.json"
RATE = "$__rate_interval"

# (title, description, [(expr, legend)], unit, kind)
ROWS: list[tuple[str, list[tuple[str, str, list[tuple[str, str]], str, str]]]] = [
    (
        "IVS Chat metrics (AWS/IVSChat and AWS/Usage)",
        [
            (
                "ConcurrentChatConnections",
                "Open chat connections, summed over gateways (and per gateway)",
                [
                    ("sum(ConcurrentChatConnections)", "all gateways"),
                    ("sum by (instance) (ConcurrentChatConnections)", "{{instance}}"),
                ],
                "short",
                "timeseries",
            ),
            (
                "ResourceCount (ConcurrentChatConnections) vs quota",
                "AWS/Usage ResourceCount against PARLEY_MAX_CONNECTIONS",
                [
                    ('sum(ResourceCount{Service="IVS Chat",Resource="ConcurrentChatConnections"})', "ResourceCount"),
                    ("max(parley_connection_quota)", "quota"),
                ],
                "short",
                "timeseries",
            ),
            (
                "MessagingRequests /s",
                "Messaging requests decided by routers",
                [(f"sum(rate(MessagingRequests_total[{RATE}]))", "MessagingRequests")],
                "reqps",
                "timeseries",
            ),
            (
                "Requests /s by Action",
                "Requests{Action}",
                [(f"sum by (Action) (rate(Requests_total[{RATE}]))", "{{Action}}")],
                "reqps",
                "timeseries",
            ),
            (
                "MessagingDeliveries /s",
                "Frames written to connections, summed over gateways",
                [(f"sum(rate(MessagingDeliveries_total[{RATE}]))", "MessagingDeliveries")],
                "ops",
                "timeseries",
            ),
            (
                "Deliveries /s by Action",
                "Deliveries{Action}",
                [(f"sum by (Action) (rate(Deliveries_total[{RATE}]))", "{{Action}}")],
                "ops",
                "timeseries",
            ),
            (
                "InvocationErrors by Uri",
                "Review handler could not be invoked",
                [(f"sum by (Uri) (rate(InvocationErrors_total[{RATE}]))", "{{Uri}}")],
                "reqps",
                "timeseries",
            ),
            (
                "ResponseValidationErrors by Uri",
                "Review handler returned an invalid response",
                [(f"sum by (Uri) (rate(ResponseValidationErrors_total[{RATE}]))", "{{Uri}}")],
                "reqps",
                "timeseries",
            ),
            (
                "LogDestinationErrors by LoggingConfiguration",
                "All chat-log delivery failures",
                [
                    (
                        f"sum by (LoggingConfiguration) (rate(LogDestinationErrors_total[{RATE}]))",
                        "{{LoggingConfiguration}}",
                    )
                ],
                "reqps",
                "timeseries",
            ),
            (
                "LogDestinationAccessDeniedError",
                "Destination refused access",
                [
                    (
                        f"sum by (LoggingConfiguration) (rate(LogDestinationAccessDeniedError_total[{RATE}]))",
                        "{{LoggingConfiguration}}",
                    )
                ],
                "reqps",
                "timeseries",
            ),
            (
                "LogDestinationResourceNotFoundErrors",
                "Destination does not exist",
                [
                    (
                        f"sum by (LoggingConfiguration) (rate(LogDestinationResourceNotFoundErrors_total[{RATE}]))",
                        "{{LoggingConfiguration}}",
                    )
                ],
                "reqps",
                "timeseries",
            ),
        ],
    ),
    (
        "Latency and bus",
        [
            (
                "Send → deliver latency",
                "Gateway accepted the request → a gateway wrote the result",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate(parley_send_to_deliver_seconds_bucket[{RATE}])))",
                        f"p{p}",
                    )
                    for q, p in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))
                ],
                "s",
                "timeseries",
            ),
            (
                "Bus lag (action age when the router decides)",
                "now − accepted, at the router",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate(parley_router_action_age_seconds_bucket[{RATE}])))",
                        f"p{p}",
                    )
                    for q, p in (("0.5", "50"), ("0.99", "99"))
                ],
                "s",
                "timeseries",
            ),
            (
                "Router pending actions",
                "Received, not yet acked, per router",
                [("sum by (instance) (parley_router_pending_actions)", "{{instance}}")],
                "short",
                "timeseries",
            ),
            (
                "Shards per router",
                "Action shards each router consumes",
                [("sum by (instance) (parley_router_owned_shards)", "{{instance}}")],
                "short",
                "timeseries",
            ),
            (
                "Shard queue depth (RabbitMQ)",
                "Ready + unacked messages in the action shard queues",
                [('sum by (queue) (rabbitmq_queue_messages{queue=~".*shard.*"})', "{{queue}}")],
                "short",
                "timeseries",
            ),
            (
                "Router batch size",
                "Actions decided per room batch",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate(parley_router_batch_actions_bucket[{RATE}])))",
                        f"p{p}",
                    )
                    for q, p in (("0.5", "50"), ("0.99", "99"))
                ],
                "short",
                "timeseries",
            ),
            (
                "Actions per broker message",
                "How well gateways batch shard publishes: grows under load (fewer broker messages and fsyncs)",
                [
                    (
                        f"sum(rate(parley_bus_actions_per_publish_sum[{RATE}]))"
                        f" / sum(rate(parley_bus_actions_per_publish_count[{RATE}]))",
                        "mean",
                    )
                ],
                "short",
                "timeseries",
            ),
            (
                "Broker confirm latency",
                "Shard publish → RabbitMQ's confirm (persistent: after its fsync); a shard's next batch waits for it",
                [
                    (
                        f"histogram_quantile({q}, sum by (le) (rate(parley_bus_confirm_seconds_bucket[{RATE}])))",
                        f"p{p}",
                    )
                    for q, p in (("0.5", "50"), ("0.99", "99"))
                ],
                "s",
                "timeseries",
            ),
        ],
    ),
    (
        "Edges: connections, errors, review, api, logs",
        [
            (
                "Connect rejections by reason",
                "WebSocket upgrades refused (401 token, 404 room, 503 quota, ...)",
                [(f"sum by (reason) (rate(parley_connect_rejections_total[{RATE}]))", "{{reason}}")],
                "reqps",
                "timeseries",
            ),
            (
                "ERROR frames by code",
                "Errors sent to clients",
                [(f"sum by (code) (rate(parley_request_errors_total[{RATE}]))", "{{code}}")],
                "reqps",
                "timeseries",
            ),
            (
                "Fan-out gap fill after a lost pub/sub subscription",
                "Messages gateways refilled from room history after a Redis reconnect, and room "
                "catch-ups that may have left some out, by reason",
                [
                    (f"sum(rate(parley_fanout_gap_recovered_total[{RATE}]))", "recovered"),
                    (f"sum by (reason) (rate(parley_fanout_gap_unrecovered_total[{RATE}]))", "unrecovered: {{reason}}"),
                ],
                "ops",
                "timeseries",
            ),
            (
                "Review latency p99 by outcome",
                "Message review handler latency",
                [
                    (
                        f"histogram_quantile(0.99, sum by (le, outcome) (rate(parley_review_seconds_bucket[{RATE}])))",
                        "{{outcome}}",
                    )
                ],
                "s",
                "timeseries",
            ),
            (
                "API requests by operation and code",
                "Control-plane requests",
                [(f"sum by (operation, code) (rate(parley_api_requests_total[{RATE}]))", "{{operation}} {{code}}")],
                "reqps",
                "timeseries",
            ),
            (
                "API latency p99 by operation",
                "Control-plane request latency",
                [
                    (
                        "histogram_quantile(0.99, sum by (le, operation) "
                        f"(rate(parley_api_request_seconds_bucket[{RATE}])))",
                        "{{operation}}",
                    )
                ],
                "s",
                "timeseries",
            ),
            (
                "Chat-log records written / dropped",
                "Logger throughput and deliveries dropped at a full log queue",
                [
                    (
                        f"sum by (destination) (rate(parley_log_records_written_total[{RATE}]))",
                        "written {{destination}}",
                    ),
                    (f"sum(rate(parley_log_deliveries_dropped_total[{RATE}]))", "dropped"),
                ],
                "ops",
                "timeseries",
            ),
            (
                "Resident memory by process",
                "process_resident_memory_bytes",
                [('sum by (job, instance) (process_resident_memory_bytes{job=~"parley-.*"})', "{{job}} {{instance}}")],
                "bytes",
                "timeseries",
            ),
            (
                "CPU by process",
                "process_cpu_seconds_total",
                [
                    (
                        f'sum by (job, instance) (rate(process_cpu_seconds_total{{job=~"parley-.*"}}[{RATE}]))',
                        "{{job}} {{instance}}",
                    )
                ],
                "percentunit",
                "timeseries",
            ),
        ],
    ),
]


def build() -> dict:
    panels: list[dict] = []
    next_id = 1
    y = 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        for index, (title, description, targets, unit, kind) in enumerate(row_panels):
            x = (index % 3) * 8
            if index and index % 3 == 0:
                y += 8
            panels.append(
                {
                    "id": next_id,
                    "type": kind,
                    "title": title,
                    "description": description,
                    "datasource": DATASOURCE,
                    "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
                    "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                    "options": {
                        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"},
                    },
                    "targets": [
                        {
                            "refId": chr(ord("A") + n),
                            "datasource": DATASOURCE,
                            "expr": expr,
                            "legendFormat": legend,
                            "range": True,
                        }
                        for n, (expr, legend) in enumerate(targets)
                    ],
                }
            )
            next_id += 1
        y += 8
    return {
        "uid": "parley-overview",
        "title": "parley — IVS Chat metrics and operations",
        "description": "IVS-named metrics (AWS/IVSChat, AWS/Usage) summed across every parley process, "
        "plus latency, bus lag and edge errors. Generated by deploy/grafana/build_dashboard.py.",
        "tags": ["parley", "ivs-chat"],
        "timezone": "browser",
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
