"""Prometheus metrics, named after IVS Chat's CloudWatch metrics (namespace AWS/IVSChat) with
IVS's dimensions as labels. Each process exposes its own; Prometheus sums across processes.

Counters get prometheus-client's ``_total`` suffix on the wire (``MessagingRequests_total``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.protocol.envelope import ClientProtocol

# --- IVS metrics ------------------------------------------------------------------------------
# Each also has a ``Protocol`` label (a ClientProtocol: ``ivs``, or the seed front that served the
# client): IVS's own dashboards sum over it; a front's share is one selector away.
CONCURRENT_CHAT_CONNECTIONS = Gauge(
    "ConcurrentChatConnections", "Open chat connections held by this gateway or front", ["Protocol"]
)
MESSAGING_REQUESTS = Counter("MessagingRequests", "Messaging requests decided (all actions)", ["Protocol"])
REQUESTS = Counter("Requests", "Messaging requests by action", ["Action", "Protocol"])
MESSAGING_DELIVERIES = Counter("MessagingDeliveries", "Frames delivered to connections", ["Protocol"])
DELIVERIES = Counter("Deliveries", "Frames delivered to connections, by action", ["Action", "Protocol"])
INVOCATION_ERRORS = Counter("InvocationErrors", "Review handler could not be invoked", ["Uri"])
RESPONSE_VALIDATION_ERRORS = Counter("ResponseValidationErrors", "Review handler returned an invalid response", ["Uri"])
REVIEW_SECONDS = Histogram(
    "parley_review_seconds",
    "Message review latency in the reviewer, by outcome (allow, deny, fallback)",
    ["outcome"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5),
)
REVIEWS_EXPIRED = Counter(
    "parley_review_expired",
    "Review requests a reviewer dropped unreviewed, past their router's deadline: on dequeue or waiting for a slot",
    ["stage"],
)

# --- operational ------------------------------------------------------------------------------
CONNECT_REJECTIONS = Counter("parley_connect_rejections", "WebSocket upgrades refused, by reason", ["reason"])
REQUEST_ERRORS = Counter("parley_request_errors", "ERROR frames sent to clients, by error code", ["code"])
SEND_TO_DELIVER_SECONDS = Histogram(
    "parley_send_to_deliver_seconds",
    "Time from a gateway accepting a request to another gateway writing the result",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FANOUT_GAP_RECOVERED = Counter(
    "parley_fanout_gap_recovered",
    "Messages a gateway delivered from room history after its lost pub/sub subscription came back",
)
FANOUT_GAP_UNRECOVERED = Counter(
    "parley_fanout_gap_unrecovered",
    "Room catch-ups after a lost pub/sub subscription that may have left messages out, by reason "
    "(trimmed, limit, no_history, error); events are never recovered",
    ["reason"],
)
ROUTER_BATCH_SIZE = Histogram(
    "parley_router_batch_actions", "Actions decided per room batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)

# --- operability: usage metric, bus lag, api --------------------------------
# AWS/Usage ResourceCount for ConcurrentChatConnections, with IVS's usage dimensions as labels;
# the gateway moves it together with ConcurrentChatConnections (one pre-bound child).
RESOURCE_COUNT = Gauge("ResourceCount", "AWS/Usage resource count", ["Service", "Class", "Type", "Resource"])
CONNECTIONS_RESOURCE_COUNT = RESOURCE_COUNT.labels("IVS Chat", "None", "Resource", "ConcurrentChatConnections")

# Pre-bound children for the hot paths (no label lookup per frame), by protocol then action.
_ACTIONS = ("SendMessage", "DeleteMessage", "DisconnectUser", "SendEvent", "Presence", "Membership")
_PROTOCOLS: tuple[str, ...] = tuple(ClientProtocol)
CONNECTIONS_BY_PROTOCOL: dict[str, Gauge] = {p: CONCURRENT_CHAT_CONNECTIONS.labels(p) for p in _PROTOCOLS}
_MESSAGING_REQUESTS: dict[str, Counter] = {p: MESSAGING_REQUESTS.labels(p) for p in _PROTOCOLS}
_REQUESTS: dict[str, dict[str, Counter]] = {p: {a: REQUESTS.labels(a, p) for a in _ACTIONS} for p in _PROTOCOLS}
_MESSAGING_DELIVERIES: dict[str, Counter] = {p: MESSAGING_DELIVERIES.labels(p) for p in _PROTOCOLS}
_DELIVERIES: dict[str, dict[str, Counter]] = {p: {a: DELIVERIES.labels(a, p) for a in _ACTIONS} for p in _PROTOCOLS}


def count_request(protocol: str, action: str) -> None:
    """One messaging request decided (router): ``MessagingRequests`` and ``Requests{Action}``."""
    _MESSAGING_REQUESTS[protocol].inc()
    _REQUESTS[protocol][action].inc()


def count_deliveries(protocol: str, action: str, frames: int) -> None:
    """``frames`` frames of one action written to connections: ``MessagingDeliveries`` and
    ``Deliveries{Action}``, under the protocol of the connections written to."""
    _MESSAGING_DELIVERIES[protocol].inc(frames)
    _DELIVERIES[protocol][action].inc(frames)


def connection_opened(protocol: str) -> None:
    """``ConcurrentChatConnections`` and the usage metric move together, for every protocol."""
    CONNECTIONS_BY_PROTOCOL[protocol].inc()
    CONNECTIONS_RESOURCE_COUNT.inc()


def connection_closed(protocol: str) -> None:
    CONNECTIONS_BY_PROTOCOL[protocol].dec()
    CONNECTIONS_RESOURCE_COUNT.dec()


BUS_ACTIONS_PER_PUBLISH = Histogram(
    "parley_bus_actions_per_publish",
    "Actions carried by one broker message to a shard queue (bigger under load: fewer broker messages)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
BUS_CONFIRM_SECONDS = Histogram(
    "parley_bus_confirm_seconds",
    "Publish of a shard message to the broker's confirm (persistent ones wait for its fsync); "
    "the shard's next message waits for it",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
ROUTER_ACTION_AGE_SECONDS = Histogram(
    "parley_router_action_age_seconds",
    "Bus lag: time from a gateway (or the api) accepting an action to the router deciding it",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ROUTER_PENDING_ACTIONS = Gauge("parley_router_pending_actions", "Actions this router holds, received but not yet acked")
ROUTER_OWNED_SHARDS = Gauge("parley_router_owned_shards", "Action shards this router consumes")
CONNECTION_QUOTA = Gauge("parley_connection_quota", "PARLEY_MAX_CONNECTIONS: the concurrent connection quota")

API_REQUESTS = Counter("parley_api_requests", "Control-plane requests by operation and outcome", ["operation", "code"])
API_REQUEST_SECONDS = Histogram(
    "parley_api_request_seconds",
    "Control-plane request latency by operation",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
API_CONNECTIONS_REFUSED = Counter(
    "parley_api_connections_refused",
    "Control-plane connections closed on accept: the client address already had PARLEY_API_MAX_CONNECTIONS_PER_CLIENT",
)
FRONT_CONNECTIONS_REFUSED = Counter(
    "parley_front_connections_refused",
    "groupschat/plic connections closed on accept: the client address had PARLEY_FRONT_MAX_CONNECTIONS_PER_CLIENT",
    ["Protocol"],
)


def exposition() -> bytes:
    """This process's metrics in Prometheus text format (what every /metrics answers)."""
    from prometheus_client import REGISTRY, generate_latest

    return generate_latest(REGISTRY)


# --- chat logging (logger_sink); LoggingConfiguration = the logging configuration's ARN --------
LOG_DESTINATION_ERRORS = Counter(
    "LogDestinationErrors", "Chat-log deliveries to a destination that failed (all causes)", ["LoggingConfiguration"]
)
LOG_DESTINATION_RESOURCE_NOT_FOUND_ERRORS = Counter(
    "LogDestinationResourceNotFoundErrors", "Chat-log destination does not exist", ["LoggingConfiguration"]
)
LOG_DESTINATION_ACCESS_DENIED_ERROR = Counter(  # singular "Error", as IVS names it
    "LogDestinationAccessDeniedError", "Chat-log destination refused access", ["LoggingConfiguration"]
)
LOG_RECORDS_WRITTEN = Counter(
    "parley_log_records_written", "Chat-log records durably written, by destination kind", ["destination"]
)
LOG_DELIVERIES_DROPPED = Counter(
    "parley_log_deliveries_dropped", "Room deliveries not queued for logging because the log queue was full"
)

SLOW_CONSUMER_DISCONNECTS = Counter(
    "parley_slow_consumer_disconnects", "Connections aborted because they stopped reading their frames"
)
