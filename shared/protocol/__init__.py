"""The wire layer: every shape that crosses a socket or a queue, and nothing that moves it.

Owns: IVS client and server frames (``frames``), internal bus envelopes (``envelope``), review
requests and verdicts (``review``), chat tokens (``tokens``), ids and ARNs (``ids``), wire
timestamps (``timestamps``), close codes (``closecodes``), resource records (``models``) and the
text rule they all share (``text``).

Must not: do I/O, read the clock (callers pass ``now_ms``) or draw randomness except for new ids
and token ids; import ``shared.engine``, ``shared.features`` or any component.
"""
