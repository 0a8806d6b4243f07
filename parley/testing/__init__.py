"""Harnesses that run parley for tests and benchmarks, importable by both ``tests/`` and ``bench/``.

Owns: ``cluster`` (parley as separate OS processes on throwaway namespaces, with a SigV4 client
for the control plane), ``chatclient`` (a small IVS chat client over ``websockets``),
``engines`` (a redis-server and a RabbitMQ node of a test's own, with pause/stall/kill actions)
and ``faultload`` (steady traffic through a cluster while a fault happens, and its tally).

Must not: be imported by a component. It needs the ``test`` extra (boto3) installed.
"""
