"""The engines: how state is kept and how work and frames move between processes.

Owns: one small interface per path (actions, fan-out, review RPC, log stream, and the store's
concerns), each with an in-memory implementation for embedded mode and tests and a RabbitMQ or
Redis one for production, side by side. Turn batching and the ordered Redis pipeline are internal
to the engines.

Must not: know IVS semantics (what a frame means, who may send it), or import ``shared.features``
or any component.
"""
