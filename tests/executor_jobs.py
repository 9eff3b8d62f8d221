"""Jobs and executors for the executor tests; workers import this module (PYTHONPATH is set to
tests/ by the tests), so everything here must be module-level."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from interp.executors import Job


class Square(Job[int, int]):
    """unit -> unit**2 + the worker's prepared offset (prepare counted per worker)."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.fail_at = fail_at

    def prepare(self, model: Any) -> dict[str, Any]:
        return {"pid": os.getpid(), "layers": model.n_layers}

    def run(self, state: dict[str, Any], model: Any, unit: int) -> tuple[int, int, int]:
        if unit == self.fail_at:
            raise ValueError(f"unit {unit} refuses")
        return unit * unit, state["pid"], state["layers"]


def shard_bytes(store: Path) -> dict[str, bytes]:
    """A disk cache's shards by name: equal stores hold equal bytes."""
    return {p.name: p.read_bytes() for p in sorted(store.glob("shard-*.safetensors"))}


def killing(base: type, kill: Callable[[Any], bool], times: int = 1) -> Any:
    """An executor class like `base` that calls `kill(executor)` after results come in, until it
    has returned True `times` times (it returns False when there was nothing to kill yet)."""

    class Killing(base):  # type: ignore[misc, valid-type]
        kills = 0

        def map(self, model: Any, job: Any, units: Sequence[Any], on_result: Any) -> None:
            def wrapped(i: int, r: Any) -> None:
                on_result(i, r)
                if self.kills < times and kill(self):
                    self.kills += 1

            super().map(model, job, units, wrapped)

    return Killing


def kill_busy_process(ex: Any) -> bool:
    """SIGKILL a worker process of a `Processes` executor that holds a unit."""
    busy = [w for w in ex._pool if w.unit is not None]
    if not busy:
        return False
    os.kill(busy[0].proc.pid, signal.SIGKILL)
    return True


def kill_other_raylet(ex: Any) -> bool:
    """SIGKILL the raylet of a node that hosts one of a `Ray` executor's actors, other than the
    node the driver is attached to, and wait until the cluster declares that node dead (its
    actors with it), so the sweep goes on without it."""
    import subprocess
    import time

    import ray

    me = ray.get_runtime_context().get_node_id()
    victims = {n for n in ex.nodes.values() if n != me}
    for node in ray.nodes():
        if node["NodeID"] in victims and node["Alive"]:
            sock = node["RayletSocketName"]
            pids = subprocess.run(
                ["pgrep", "-f", f"raylet_socket_name={sock} "], capture_output=True, text=True
            ).stdout.split()
            for pid in pids:
                os.kill(int(pid), signal.SIGKILL)
            deadline = time.time() + 120
            while time.time() < deadline and any(
                n["NodeID"] == node["NodeID"] and n["Alive"] for n in ray.nodes()
            ):
                time.sleep(0.2)
            return bool(pids)
    return False
