"""What the throwaway Redis setups (``redis_sentinel``, ``redis_cluster``) share: waiting for a
server to be ready, asking one over a short-lived connection, and killing them all at the end.

Must not: start servers (each setup does, its own way).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis


def wait_until(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Until ``check()`` is true; a Redis or socket error, or a reply without the field asked
    for, counts as not yet. TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(redis.RedisError, OSError, KeyError, IndexError):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready within {timeout} s")
        time.sleep(0.05)


def ping(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=1) as server:
        return bool(server.ping())


def kill_all(processes: dict[int, subprocess.Popen[bytes]], directory: Path) -> None:
    """kill -9 every server of a setup, wait for them, and remove its directory."""
    for process in processes.values():
        process.send_signal(signal.SIGKILL)
    for process in processes.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    processes.clear()
    shutil.rmtree(directory, ignore_errors=True)
