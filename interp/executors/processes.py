"""A local pool of worker processes, for CPU-bound sweeps on a many-core machine.

Each worker is a fresh interpreter (`interp.executors.worker`) that loads the model once and
then runs one unit at a time, so the driver always knows which unit a worker holds: when a worker
dies (killed, out of memory) its unit goes back to the queue and a new worker takes its place.
Torch threads are split between the workers so that they do not oversubscribe the cores.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from interp.errors import InterpError
from interp.executors.base import Executor, Job, OnResult, lost
from interp.executors.recipe import ModelRecipe, check_sendable, check_versions
from interp.executors.worker import receive, send

# How long a new worker may take to import torch and load its model.
START_TIMEOUT_S = 600.0


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    conn: Connection
    job: str | None = None
    unit: int | None = None
    ready: bool = False
    seen: set[str] = field(default_factory=set)


class Processes(Executor):
    """Run units in `workers` local processes (default: one per core, at most 8).

    Args:
        workers: number of worker processes.
        threads: torch threads per worker (default: the cores divided among the workers).
        max_attempts: how often one unit may be lost with its worker before the sweep stops
            (with a `WorkerLost` error; rerun to resume).
    """

    name = "processes"

    def __init__(
        self, workers: int | None = None, threads: int | None = None, max_attempts: int = 3
    ) -> None:
        super().__init__(max_attempts)
        cores = os.cpu_count() or 1
        self.workers = workers if workers is not None else min(cores, 8)
        if self.workers < 1:
            raise InterpError(f"workers={self.workers}: use at least 1 worker process.")
        self.threads = threads or max(1, cores // self.workers)
        self._pool: list[_Worker] = []
        self._recipe: ModelRecipe | None = None

    def __repr__(self) -> str:
        return f"Processes(workers={self.workers}, threads={self.threads})"

    # ------------------------------------------------------------------ workers
    def _start(self) -> _Worker:
        assert self._recipe is not None
        here, there = socket.socketpair()
        # The driver's import path: a job's functions import in the worker as they do here.
        path = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
        proc = subprocess.Popen(
            [sys.executable, "-m", "interp.executors", str(there.fileno())],
            pass_fds=[there.fileno()],
            env={**os.environ, "PYTHONPATH": path},
        )
        there.close()
        conn = Connection(here.detach())
        send(conn, ("init", self._recipe, self.threads))
        return _Worker(proc, conn)

    def _ensure(self, model: Any) -> None:
        recipe = ModelRecipe.of(model, self.name)
        if self._recipe is not None and self._recipe.identity != recipe.identity:
            self.close()  # another model, or this one changed: new workers
        if self._recipe is None:
            self._recipe = recipe
        while len(self._pool) < self.workers:
            self._pool.append(self._start())

    def check(self, model: Any, *payload: Any) -> None:
        check_sendable(self.name, model, *payload)
        if b"__main__" in pickle.dumps(payload):
            raise InterpError(
                "This sweep refers to a function or class of the script being run (__main__), "
                "which worker processes cannot import: move it into a module, or use "
                "executor='ray' (which sends it by value) or executor='local'."
            )

    def close(self) -> None:
        for w in self._pool:
            with contextlib.suppress(OSError, EOFError):
                send(w.conn, ("stop",))
        for w in self._pool:
            try:
                w.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            w.conn.close()
        self._pool = []
        self._recipe = None

    # ------------------------------------------------------------------ driver
    def map(
        self, model: Any, job: Job[Any, Any], units: Sequence[Any], on_result: OnResult
    ) -> None:
        if not units:
            return
        self.check(model, job)
        blob = pickle.dumps(job)
        self._ensure(model)
        queue = deque(range(len(units)))
        attempts = [0] * len(units)
        try:
            while queue or any(w.unit is not None for w in self._pool):
                for w in list(self._pool):
                    if w.ready and w.unit is None and queue:
                        i = w.unit = queue.popleft()
                        attempts[i] += 1
                        try:
                            if job.key not in w.seen:
                                send(w.conn, ("job", blob))
                                w.seen.add(job.key)
                            send(w.conn, ("unit", i, units[i]))
                        except OSError:  # it died while idle: its unit goes back
                            self._replace(w, queue, attempts)
                self._step(queue, attempts, on_result)
        except BaseException:
            self.close()  # workers may hold a half-done unit of this sweep
            raise

    def _step(self, queue: deque[int], attempts: list[int], on_result: OnResult) -> None:
        """Wait for any worker to answer or die (its end of the socket closes), and handle it."""
        conns = {w.conn: w for w in self._pool}
        # A unit may run for hours; only a worker still loading its model has a deadline.
        loading = not all(w.ready for w in self._pool)
        ready = wait(list(conns), timeout=START_TIMEOUT_S if loading else None)
        if not ready:
            raise InterpError(
                f"A worker process did not load the model in {START_TIMEOUT_S:.0f} s."
            )
        for r in ready:
            w = conns[r]  # type: ignore[index]
            try:
                msg = receive(w.conn)
            except (EOFError, OSError):
                self._replace(w, queue, attempts)
                continue
            self._receive(w, msg, on_result)

    def _receive(self, w: _Worker, msg: tuple[Any, ...], on_result: OnResult) -> None:
        kind, a, b = msg
        if kind == "ready":
            check_versions(a, "A worker process")
            w.ready = True
        elif kind == "failed":
            raise InterpError(f"A worker process could not load the model:\n{b}") from a
        elif kind == "ok":
            w.unit = None
            on_result(a, b)
        else:  # the unit's own error: deterministic, so it is not retried
            err, tb = b
            err.add_note(f"(raised in a worker process, unit {a})\n{tb}")
            raise err

    def _replace(self, w: _Worker, queue: deque[int], attempts: list[int]) -> None:
        try:
            code = w.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # its socket closed but it lives on: end it
            w.proc.kill()
            code = w.proc.wait()
        self._pool.remove(w)
        w.conn.close()
        if w.unit is not None:
            if attempts[w.unit] >= self.max_attempts:
                raise lost(w.unit, attempts[w.unit], f"worker process exit code {code}")
            queue.appendleft(w.unit)
            self.retried += 1
        if not w.ready:
            raise InterpError(f"A worker process died while loading the model (exit code {code}).")
        self._pool.append(self._start())
