"""parley's control plane: the Amazon IVS Chat REST-JSON API (version 2020-07-14).

Owns: the HTTP surface boto3's ``ivschat`` client talks to (``api.app.create_app``), SigV4
verification, model-driven request validation, IVS error serialization, per-operation TPS
limits, and the semantics of every control-plane operation (rooms, logging configurations,
chat tokens, tags, SendEvent / DeleteMessage / DisconnectUser).

Must not: touch chat clients' sockets or import ``gateway``, ``router``, ``reviewer`` or
``logger_sink``. Its only effects are writes to the ``Store`` (resource records) and
publications on the ``Bus`` (``ActionEnvelope`` for the router, ``ControlNotice`` so every
process drops cached room configuration).
"""
