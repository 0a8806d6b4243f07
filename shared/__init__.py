"""Everything more than one parley component needs, and nothing that belongs to one of them.

Three layers, each importing only those below it:

- ``shared.protocol``: the wire shapes, pure.
- ``shared.engine``: the interfaces between processes and their memory/RabbitMQ/Redis engines.
- ``shared.features``: extension logic (approval, bans, membership, presence, rate limits).

Beside them, used by every layer: ``clock`` (the one wall-clock read), ``config`` (``Settings``),
``metrics`` (Prometheus names), ``logs`` (structlog) and ``address_policy`` (where a review
handler may be).

Must not: import ``gateway``, ``router``, ``reviewer``, ``logger_sink``, ``api`` or ``parley``.
"""
