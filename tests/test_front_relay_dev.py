"""``parley dev`` serves the relay front: an unknown app is created on first use and the admin
key it prints makes a connection admin."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parley.testing.cluster import ROOT, free_port, wait_http, wait_tcp
from tests.relay_client import RelayClient

pytestmark = pytest.mark.e2e


async def test_parley_dev_serves_relay(tmp_path: Path) -> None:
    ports = {"api": free_port(), "gateway": free_port(), "relay": free_port()}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env |= {"PARLEY_RELAY_PORT": str(ports["relay"]), "PARLEY_LINE_PORT": "0", "PARLEY_GROUPSCHAT_PORT": "0"}
    env |= {"PARLEY_PLIC_PORT": "0"}
    command = ["-m", "parley", "dev", "--api-port", str(ports["api"]), "--gateway-port", str(ports["gateway"])]
    err = tmp_path / "dev.err"
    with err.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, *command], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=sink
        )
    try:
        wait_http(f"http://127.0.0.1:{ports['api']}/healthz")
        wait_tcp(ports["relay"])
        key = None
        for _ in range(100):
            found = re.search(r"PARLEY_RELAY_ADMIN_KEY=(\S+)", err.read_text(errors="replace"))
            if found:
                key = found.group(1)
                break
            time.sleep(0.05)
        assert key
        a = await RelayClient.open(ports["relay"], "my-dev-app")
        b = await RelayClient.open(ports["relay"], "my-dev-app")
        await a.send({"to": "system", "event": "admin", "key": key})
        assert await a.expect(event="admin") == {"from": "system", "event": "admin", "status": "success"}
        await b.send({"to": "all", "data": "hi"})
        assert await a.expect(from_=b.id) == {"from": b.id, "data": "hi"}
        await a.close()
        await b.close()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0
