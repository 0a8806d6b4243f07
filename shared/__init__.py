"""Everything more than one parley component needs, and nothing that belongs to one of them.

Owns: the wire shapes (client frames, server frames, internal bus envelopes), chat-token signing,
configuration, ids and time formats, rate limiting primitives, metric names, and the ``Bus`` and
``Store`` interfaces with their in-memory and Redis/RabbitMQ implementations.

Must not: import ``gateway``, ``router``, ``reviewer``, ``logger_sink``, ``api`` or ``parley``.
"""
