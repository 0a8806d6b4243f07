"""``parley loadtest`` against an embedded node: a short, small run must lose nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator

import pytest

from parley import loadtest
from parley.embedded import Node
from parley.testing.cluster import ROOT
from shared.config import Settings
from shared.engine.memory import MemoryBus, MemoryStore


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[Node]:
    node = Node(settings, MemoryStore(), MemoryBus(settings.shards), router_all_shards=True)
    await node.start(api_port=0, gateway_port=0)
    yield node
    await node.stop()


async def test_short_run_reports_every_delivery(node: Node, settings: Settings) -> None:
    assert node.api is not None and node.gateway is not None
    options = loadtest.Options(
        api=f"http://127.0.0.1:{node.api.port}",
        gateways=[f"ws://127.0.0.1:{node.gateway.port}", f"ws://localhost:{node.gateway.port}/"],
        clients=12,
        rooms=3,
        rate=30,
        duration=2.0,
        access_key=settings.access_key_id,
        secret_key=settings.secret_access_key,
        progress=False,
    )
    report = await loadtest.run(options)
    assert report["connections"] == 12 and not report["connect_failures"]
    assert 50 <= report["sent"] <= 62
    assert report["accepted"] == report["sent"] and not report["errors_by_code"]
    assert report["deliveries"] == report["deliveries_expected"] == report["sent"] * 4  # 4 clients per room
    assert report["lost"] == 0
    assert report["latency_ms"]["samples"] == report["deliveries"]
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]
    assert "lost          0" in loadtest.format_report(report)


async def test_two_worker_processes_merge_their_reports(node: Node, settings: Settings) -> None:
    """--procs 2: clients and rate are split over two spawned processes; the merged report must
    count every delivery once, including the cross-worker ones (both workers hold clients of
    every room, and a worker's senders reach the other worker's clients)."""
    assert node.api is not None and node.gateway is not None
    options = loadtest.Options(
        api=f"http://127.0.0.1:{node.api.port}",
        gateways=[f"ws://127.0.0.1:{node.gateway.port}"],
        clients=15,
        rooms=3,
        rate=30,
        duration=1.5,
        latency_clients=6,
        access_key=settings.access_key_id,
        secret_key=settings.secret_access_key,
        progress=False,
        procs=2,
    )
    report = await loadtest.run(options)
    assert report["procs"] == 2 and report["connections"] == 15 and not report["connect_failures"]
    assert report["senders"] == 6  # ceil(30 / 5), split 3 + 3
    assert 35 <= report["sent"] <= 50
    assert report["accepted"] == report["sent"] and not report["errors_by_code"] and not report["disconnects"]
    assert report["deliveries"] == report["deliveries_expected"] == report["sent"] * 5  # 5 clients per room
    assert report["lost"] == 0
    # the first 6 clients (2 per room) time every message of their room
    assert report["latency_ms"]["samples"] == report["sent"] * 2
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"] <= report["latency_ms"]["max"]


async def test_rate_over_the_room_cap_is_reported_as_errors_not_loss(node: Node, settings: Settings) -> None:
    assert node.api is not None and node.gateway is not None
    options = loadtest.Options(
        api=f"http://127.0.0.1:{node.api.port}",
        gateways=[f"ws://127.0.0.1:{node.gateway.port}"],
        clients=4,
        rooms=1,
        rate=40,
        room_rate=10,
        duration=1.5,
        access_key=settings.access_key_id,
        secret_key=settings.secret_access_key,
        progress=False,
    )
    report = await loadtest.run(options)
    assert report["errors_by_code"].get("429", 0) > 0
    assert report["accepted"] == report["sent"] - report["errors_by_code"]["429"]
    assert report["lost"] == 0


def test_non_loopback_targets_are_refused() -> None:
    with pytest.raises(SystemExit, match="not loopback"):
        loadtest.check_targets(["http://127.0.0.1:8081", "ws://10.1.2.3:8080"], allow_remote=False)
    loadtest.check_targets(["ws://10.1.2.3:8080"], allow_remote=True)
    loadtest.check_targets(["ws://[::1]:8080", "http://localhost:1"], allow_remote=False)


def test_cli_refuses_remote_and_missing_keys() -> None:
    env = {"PATH": "/usr/bin:/bin", "PARLEY_ACCESS_KEY_ID": "a", "PARLEY_SECRET_ACCESS_KEY": "b"}
    remote = [sys.executable, "-m", "parley", "loadtest", "--gateway", "ws://192.0.2.1:8080", "--duration", "1"]
    result = subprocess.run(remote, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "--allow-remote" in result.stderr
    no_keys = subprocess.run(
        remote, cwd=ROOT, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30
    )
    assert no_keys.returncode != 0 and "PARLEY_ACCESS_KEY_ID" in no_keys.stderr


def test_latency_histogram_percentiles_within_one_percent() -> None:
    histogram = loadtest.LatencyHistogram()
    for ms in range(1, 1001):
        histogram.add(float(ms))
    for p, exact in ((50, 500), (95, 950), (99, 990)):
        got = histogram.percentile(p)
        assert got is not None and abs(got - exact) / exact < 0.015
    assert histogram.percentile(100) == 1000.0
    assert loadtest.LatencyHistogram().percentile(99) is None
