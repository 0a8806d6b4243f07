"""logger_sink: IVS chat logging (spec §7). Turns the router's delivered frames into log records
and writes them to each room's ACTIVE logging configurations.

Owns: the ``{ns}.logs`` consumer (``LogStream.consume``), the record format (``records``), the
IVS destination layouts (``layout``), batching with ack-after-durable-write (``batching``,
``sink``), the destinations — S3-compatible object storage, CloudWatch-Logs-shaped and
Firehose-shaped JSON-lines files under ``PARLEY_LOG_DIR`` (``destinations``) — and reading logs
back (``readback``, ``parley logs``).

Must not: block chat (the router only publishes to a durable queue and never waits for a sink;
a slow or failed sink just grows that bounded queue), decide or change deliveries, or log
message contents at info level or any credential.
"""
