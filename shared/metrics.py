"""Prometheus metrics, named after IVS Chat's CloudWatch metrics (namespace AWS/IVSChat) with
IVS's dimensions as labels. Each process exposes its own; Prometheus sums across processes.

Counters get prometheus-client's ``_total`` suffix on the wire (``MessagingRequests_total``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# --- IVS metrics ------------------------------------------------------------------------------
CONCURRENT_CHAT_CONNECTIONS = Gauge("ConcurrentChatConnections", "Open chat connections held by this gateway")
MESSAGING_REQUESTS = Counter("MessagingRequests", "Messaging requests decided (all actions)")
REQUESTS = Counter("Requests", "Messaging requests by action", ["Action"])
MESSAGING_DELIVERIES = Counter("MessagingDeliveries", "Frames delivered to connections")
DELIVERIES = Counter("Deliveries", "Frames delivered to connections, by action", ["Action"])
INVOCATION_ERRORS = Counter("InvocationErrors", "Review handler could not be invoked", ["Uri"])
RESPONSE_VALIDATION_ERRORS = Counter("ResponseValidationErrors", "Review handler returned an invalid response", ["Uri"])

# --- operational ------------------------------------------------------------------------------
CONNECT_REJECTIONS = Counter("parley_connect_rejections", "WebSocket upgrades refused, by reason", ["reason"])
REQUEST_ERRORS = Counter("parley_request_errors", "ERROR frames sent to clients, by error code", ["code"])
SEND_TO_DELIVER_SECONDS = Histogram(
    "parley_send_to_deliver_seconds",
    "Time from a gateway accepting a request to another gateway writing the result",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ROUTER_BATCH_SIZE = Histogram(
    "parley_router_batch_actions", "Actions decided per room batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
