"""Where the workers run: one worker in this process and loop, more in one spawned process each.

Owns: starting the workers, noticing a dead one, winding them down, the spawned process's entry
point and the open-files limit the connections need. ``--procs 1`` runs the same worker
coroutine in this process: no spawn cost, the same code path.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from parley.loadtest.channel import Channel
from parley.loadtest.worker import Worker, WorkerSpec

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess


class WorkerPool:
    def __init__(self, specs: list[WorkerSpec]) -> None:
        self._tasks: list[asyncio.Task[None]] = []
        self._processes: list[BaseProcess] = []
        if len(specs) == 1:
            self.channel = Channel.in_process()
            self._tasks = [asyncio.create_task(Worker(specs[0], self.channel).run())]
        else:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")
            self.channel = Channel.across_processes(ctx)
            self._processes = [
                ctx.Process(target=worker_process, args=(spec, self.channel), daemon=True) for spec in specs
            ]
            for process in self._processes:
                process.start()

    def check_alive(self) -> None:
        """Raise what ended a worker early: its exception, or its process's exit code."""
        for task in self._tasks:
            if task.done() and (failure := task.exception()) is not None:
                raise failure
        for process in self._processes:
            if process.exitcode not in (None, 0):
                raise RuntimeError(f"parley loadtest: worker process exited with {process.exitcode}")

    async def close(self) -> None:
        """Release every worker, then wait for them (bounded); a process that will not exit is terminated."""
        self.channel.release()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 120)
        for process in self._processes:
            await asyncio.to_thread(process.join, 30)
            if process.is_alive():
                process.terminate()


def worker_process(spec: WorkerSpec, channel: Channel) -> None:
    """Entry point of a spawned worker process: its own (uv)loop, errors reported, not lost."""
    from parley.runtime import run as run_loop

    raise_nofile(len(spec.clients) + 256)
    worker = Worker(spec, channel)
    try:
        run_loop(worker.run())
    except BaseException as exc:  # noqa: BLE001 - report anything to the coordinator
        channel.out.put(("failed", spec.worker, f"{type(exc).__name__}: {exc}"))
        raise


def raise_nofile(wanted: int) -> None:
    """Lift this process's soft open-files limit towards ``wanted`` (one descriptor per connection)."""
    with contextlib.suppress(Exception):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(wanted, soft), hard), hard))
