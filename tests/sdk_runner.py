"""Runs one scenario of ``tests/js/sdk_client.mjs`` (the official, unmodified npm ``amazon-ivs-chat-messaging``
SDK under Node) and reads its observations, for ``tests/test_js_sdk*.py``.

The script prints one JSON line per SDK-level observation (listener events, promise settlements, tokenProvider
calls). :func:`run` waits for the scenario to end; :func:`started` lets a test act while it runs (another
protocol's client in the same room). Either way :meth:`SdkProcess.finish` checks that the scenario completed and
that the SDK dropped none of parley's frames.
Owns the process and its pipes; the assertions on what the SDK saw are the tests'.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "sdk_client.mjs"
NODE = shutil.which("node")

SDK_MARKS = [
    pytest.mark.e2e,  # spawns Node processes; `make test` installs the JS deps first (`make js`)
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]

MESSAGE_ID = re.compile(r"^[A-Za-z0-9]{12}$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# What ChatRoom logs (dist/esm/ChatRoom.js) when it discards a received frame.
SDK_DROPPED_FRAME_LOGS = (
    "failed to parse received JSON",
    "failed to parse received entity Id",
    "ignoring already received socket message",
    "received unknown entity type",
    "did fail to deserialize",
    "received error without matching pending request",
    "found pending request of type",
)
RUN_TIMEOUT_SECONDS = 20.0  # the script gives up on its own after ~10 s


def _require_js_deps() -> None:
    modules = JS_DIR / "node_modules"
    if not (modules / "amazon-ivs-chat-messaging").is_dir() or not (modules / "ws").is_dir():
        pytest.fail("JS dependencies are not installed: run `make js` (npm ci in tests/js)")


@dataclass
class SdkRun:
    scenario: str
    returncode: int | None
    lines: list[dict[str, Any]]
    stderr: str

    def __str__(self) -> str:  # shown by failing assertions
        out = "\n".join(json.dumps(line) for line in self.lines)
        tail = self.stderr[-4000:]
        return f"scenario {self.scenario!r} rc={self.returncode}\n--- stdout\n{out}\n--- stderr (SDK log, tail)\n{tail}"

    def of(self, client: str, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line.get("client") == client and line.get("event") == event]

    def one(self, client: str, event: str) -> dict[str, Any]:
        found = self.of(client, event)
        assert len(found) == 1, f"expected exactly one {event!r} for {client!r}, got {len(found)}\n{self}"
        return found[0]

    def results(self, client: str, op: str) -> list[dict[str, Any]]:
        return [line for line in self.of(client, "result") if line["op"] == op]

    def index(self, line: dict[str, Any]) -> int:
        return next(i for i, other in enumerate(self.lines) if other is line)


@dataclass
class SdkProcess:
    """A scenario still running: its stdout lines parsed and its stderr collected as they come, so the script never
    blocks on a full pipe while the test acts."""

    scenario: str
    proc: asyncio.subprocess.Process
    lines: list[dict[str, Any]] = field(default_factory=list)
    _stderr: bytearray = field(default_factory=bytearray)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, scenario: str, url: str, client_tokens: dict[str, list[str]], **params: Any) -> SdkProcess:
        _require_js_deps()
        assert NODE is not None
        proc = await asyncio.create_subprocess_exec(
            NODE,
            str(SCRIPT),
            scenario,
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps({"url": url, "tokens": client_tokens, "params": params}).encode())
        await proc.stdin.drain()
        proc.stdin.close()  # the script reads its config to the end of stdin
        running = cls(scenario, proc)
        running._readers = [asyncio.create_task(running._read_stdout()), asyncio.create_task(running._read_stderr())]
        return running

    async def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            if raw.startswith(b"{"):
                self.lines.append(json.loads(raw))

    async def _read_stderr(self) -> None:  # drained all along: the SDK logs at debug level and must never block
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self._stderr.extend(raw)

    def snapshot(self) -> SdkRun:
        return SdkRun(self.scenario, self.proc.returncode, list(self.lines), self._stderr.decode(errors="replace"))

    async def finish(self) -> SdkRun:
        """Wait for the scenario's end (killed after ``RUN_TIMEOUT_SECONDS``) and check that it completed and that
        the SDK dropped no frame: it only logs what it cannot parse or match."""
        try:
            await asyncio.wait_for(self.proc.wait(), RUN_TIMEOUT_SECONDS)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        await asyncio.gather(*self._readers)
        run = self.snapshot()
        assert run.returncode == 0 and run.lines and run.lines[-1] == {"event": "done"}, (
            f"SDK scenario did not complete\n{run}"
        )
        dropped = [text for text in SDK_DROPPED_FRAME_LOGS if text in run.stderr]
        assert not dropped, f"the SDK dropped frames: {dropped}\n{run}"
        return run


@contextlib.asynccontextmanager
async def started(
    scenario: str, url: str, client_tokens: dict[str, list[str]], **params: Any
) -> AsyncIterator[SdkProcess]:
    """A running scenario for a test that acts meanwhile; killed if the test leaves before ``finish``."""
    sdk = await SdkProcess.start(scenario, url, client_tokens, **params)
    try:
        yield sdk
    finally:
        if sdk.proc.returncode is None:
            sdk.proc.kill()
            await sdk.proc.wait()
        await asyncio.gather(*sdk._readers, return_exceptions=True)


async def run(scenario: str, url: str, client_tokens: dict[str, list[str]], **params: Any) -> SdkRun:
    """One scenario from start to end."""
    return await (await SdkProcess.start(scenario, url, client_tokens, **params)).finish()


def assert_sent_recently(iso: str, run: SdkRun) -> None:
    sent = datetime.fromisoformat(iso)
    assert sent.tzinfo is not None, run
    skew = abs((datetime.now(UTC) - sent).total_seconds())
    assert skew < 10, f"sendTime {iso} is {skew:.1f} s away from now\n{run}"
