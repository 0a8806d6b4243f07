"""Harnesses that run parley for tests and benchmarks, importable by both ``tests/`` and ``bench/``.

Owns: ``cluster`` (parley as separate OS processes on throwaway namespaces, with a SigV4 client
for the control plane) and ``chatclient`` (a small IVS chat client over ``websockets``).

Must not: be imported by a component. It needs the ``test`` extra (boto3) installed.
"""
