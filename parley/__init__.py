"""The ``parley`` command: starts components alone (distributed) or all together (``dev``).

Owns: process wiring — choosing the Bus/Store implementations, starting and stopping
components, signals, the event loop — and ``parley loadtest`` (the ``loadtest/`` package, with its lean
WebSocket client ``loadtest/wsclient.py``). Must not: contain protocol or routing logic.
"""
