"""Work units and the executors that run them.

A long sweep is split into independent units (a cache batch, a stack of patches, a prompt to
sample). The sweep describes its work as a `Job`: a picklable object that each worker prepares
once (its own base runs, say) and then runs unit by unit. An `Executor` decides where units run
(this process, a local process pool, a Ray cluster) and hands each result back to the driver in
completion order; the driver owns the progress bar and the store, so resuming a sweep does not
depend on where its units ran.
"""

from __future__ import annotations

import contextlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Generic, TypeVar

from interp.errors import InterpError

U = TypeVar("U")
R = TypeVar("R")

#: Called in the driver with (unit index, result) as each unit finishes.
OnResult = Callable[[int, Any], None]

#: How often one unit may be lost with its worker before the sweep gives up (by default).
MAX_ATTEMPTS = 3


class Job(ABC, Generic[U, R]):
    """One sweep's work, sent once to each worker.

    `prepare` runs once per worker (per job) and returns the worker's state; `run` computes one
    unit from it. Both get the worker's own model. A job must be picklable (module-level
    classes and functions; a lambda metric cannot be sent to another process).
    """

    def __init__(self) -> None:
        # Workers keep the prepared state of the job they last saw, keyed by this.
        self.key = uuid.uuid4().hex

    def prepare(self, model: Any) -> Any:
        return None

    def context(self, model: Any) -> AbstractContextManager[Any]:
        """Held open on a worker while it runs this job's units (entered after `prepare`)."""
        return contextlib.nullcontext()

    @abstractmethod
    def run(self, state: Any, model: Any, unit: U) -> R: ...


class WorkerLost(InterpError):
    """A unit's worker died (killed, out of memory, node lost) more often than allowed."""


class Executor(ABC):
    """Where units run. Use one as a context manager to keep its workers (and their loaded
    models) across several sweeps; a name passed as ``executor=`` makes one per call."""

    name: str = ""

    def __init__(self, max_attempts: int = MAX_ATTEMPTS) -> None:
        if max_attempts < 1:
            raise InterpError(f"max_attempts={max_attempts}: a unit needs at least 1 attempt.")
        self.max_attempts = max_attempts
        #: Units run again because their worker died, over this executor's life.
        self.retried = 0

    @abstractmethod
    def map(
        self, model: Any, job: Job[Any, Any], units: Sequence[Any], on_result: OnResult
    ) -> None:
        """Run every unit of `job` and call `on_result(i, result)` in the driver for each.

        A unit that raises stops the sweep with that error (units already reported stay
        reported); a unit whose worker dies is run again on another worker, at most
        `max_attempts` times in all.
        """

    def check(self, model: Any, *payload: Any) -> None:  # noqa: B027 - local runs anything
        """Refuse, before any forward pass or write, a model or job parts (`payload`) that
        cannot reach this executor's workers."""

    def close(self) -> None:  # noqa: B027 - most executors start nothing
        """Stop the workers this executor started."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Local(Executor):
    """Today's loop: every unit in this process, in order, on the caller's own model (hooks the
    caller attached, steering for instance, apply)."""

    name = "local"

    def map(
        self, model: Any, job: Job[Any, Any], units: Sequence[Any], on_result: OnResult
    ) -> None:
        if not units:
            return
        state = job.prepare(model)
        with job.context(model):
            for i, unit in enumerate(units):
                on_result(i, job.run(state, model, unit))


class WorkerState:
    """What a worker (process or Ray actor) keeps: its model and the last job's prepared state."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.key: str | None = None
        self.state: Any = None
        self._open = contextlib.ExitStack()

    def run(self, job: Job[Any, Any], unit: Any) -> Any:
        if job.key != self.key:
            self.close()  # the previous job's state and context first
            self.state = job.prepare(self.model)
            self._open.enter_context(job.context(self.model))
            self.key = job.key
        return job.run(self.state, self.model, unit)

    def close(self) -> None:
        self.state, self.key = None, None
        self._open.close()


def lost(unit: int, attempts: int, why: str) -> WorkerLost:
    return WorkerLost(
        f"Unit {unit} was lost with its worker {attempts} times (last: {why}). With store=, the "
        "units that finished are kept: run the same call again (with any executor) to resume; "
        "or use executor='local'."
    )
