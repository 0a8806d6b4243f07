"""The ``parley`` command: starts components alone (distributed) or all together (``dev``).

Owns: process wiring — choosing the Bus/Store implementations, starting and stopping
components, signals, the event loop. Must not: contain protocol or routing logic.
"""
