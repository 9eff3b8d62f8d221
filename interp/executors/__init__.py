"""Where a sweep's work units run: this process, a local process pool, or a Ray cluster.

Sweeps that take ``executor=`` (disk caching, exact patching, trajectory sampling) accept a
name (``"local"``, the default; ``"processes"``; ``"ray"``) or an executor object
(`Processes(workers=8)`, `Ray(address="auto", num_gpus=1)`); an object used as a context
manager keeps its workers and their models across sweeps. Results equal the local loop's. See
docs/scaling.md.
"""

from __future__ import annotations

from typing import Any, Literal

from interp.checks import checked, one_of
from interp.executors.base import MAX_ATTEMPTS, Executor, Job, Local, WorkerLost
from interp.executors.cluster import Ray
from interp.executors.processes import Processes

ExecutorName = Literal["local", "processes", "ray"]
NAMES = ("local", "processes", "ray")

__all__ = [
    "MAX_ATTEMPTS",
    "NAMES",
    "Executor",
    "ExecutorName",
    "Job",
    "Local",
    "Processes",
    "Ray",
    "WorkerLost",
    "executor_for",
]


@checked
def executor_for(
    executor: ExecutorName | Executor | None, address: str | None = None
) -> tuple[Executor, bool]:
    """The executor `executor` names, and whether the caller made it (and so must close it)."""
    if isinstance(executor, Executor):
        if address is not None:
            raise_address(executor)
        return executor, False
    name = executor or "local"
    one_of("executor", name, NAMES, also="an interp.executors.Executor")
    if address is not None and name != "ray":
        raise_address(name)
    if name == "processes":
        return Processes(), True
    if name == "ray":
        return Ray(address=address), True
    return Local(), True


def raise_address(executor: Any) -> None:
    from interp.errors import InterpError

    raise InterpError(
        f"address= is for executor='ray' (got executor={executor!r}); pass "
        "interp.executors.Ray(address=...) to configure a Ray executor."
    )
