"""Ray: one actor per worker holding the model, work units as tasks on those actors.

Each actor loads the model once (see `recipe`), on the GPU Ray gives it with ``num_gpus``. The
driver keeps one unit in flight per actor, so when an actor or its node dies it knows which
unit to run again on another actor. Only unit descriptions and small results cross the network;
sweeps that write activations (disk caching) have the workers write them into the store, which
must then be a path every node sees (a shared filesystem).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from interp.errors import InterpError
from interp.executors.base import Executor, Job, OnResult, WorkerState, lost
from interp.executors.recipe import ModelRecipe, check_sendable, check_versions, versions

try:
    from ray.exceptions import GetTimeoutError, ObjectLostError, RayActorError, RayTaskError

    # An actor or its node died; a result held in a dead node's object store is lost with it.
    LOST: tuple[type[BaseException], ...] = (RayActorError, ObjectLostError)
except ImportError:  # without Ray nothing here runs (`_ray` says how to install it)
    RayTaskError = GetTimeoutError = RuntimeError  # type: ignore[misc,assignment]
    LOST = ()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InterpError(
            "executor='ray' needs Ray: pip install 'interp[ray]' (or pip install ray), then "
            "start a cluster (ray start --head) or let interp start a local one."
        ) from None
    return ray


# How long actors may take to start and load their model.
START_TIMEOUT_S = 600.0
# How long to wait for resources that killed actors give back.
FREE_WAIT_S = 10.0


class _Actor:
    """The body of a Ray actor (made remote in `Ray._actor_class`)."""

    def __init__(self, recipe: list[Any], threads: int | None) -> None:
        import ray
        import torch

        if threads:
            torch.set_num_threads(threads)
        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        self.state = WorkerState(ray.get(recipe[0]).build(device=device))
        self.job_key: str | None = None
        self.job: Job[Any, Any] | None = None

    def hello(self) -> dict[str, str]:
        import ray

        return {**versions(), "node": ray.get_runtime_context().get_node_id()}

    def run(self, job: list[Any], key: str, unit: Any) -> Any:
        import ray

        if key != self.job_key:  # the job travels by reference: fetched once per actor
            self.job, self.job_key = ray.get(job[0]), key
        assert self.job is not None
        return self.state.run(self.job, unit)


class Ray(Executor):
    """Run units on a Ray cluster.

    Args:
        address: the cluster (``"auto"`` for the one ``ray start`` made on this machine,
            ``"ray://host:10001"``, ...); None joins the cluster Ray is already connected to or
            starts a local one.
        workers: number of actors (default: as many as the cluster's CPUs, or GPUs when
            `num_gpus` is set, allow).
        num_cpus / num_gpus: resources each actor asks for (a GPU per actor puts its model there).
        threads: torch threads per actor (default `num_cpus`).
        max_attempts: how often one unit may be lost with its actor (or node) before the sweep
            stops (with a `WorkerLost` error; rerun to resume).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        threads: int | None = None,
        max_attempts: int = 3,
    ) -> None:
        super().__init__(max_attempts)
        if workers is not None and workers < 1:
            raise InterpError(f"workers={workers}: use at least 1 Ray actor.")
        if num_cpus <= 0 and num_gpus <= 0:
            raise InterpError("Each Ray actor needs some resources: num_cpus > 0 or num_gpus > 0.")
        self.address, self.workers = address, workers
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.threads = threads if threads is not None else max(1, int(num_cpus))
        self._actors: list[Any] = []
        #: The node id each live actor runs on.
        self.nodes: dict[Any, str] = {}
        self._identity: str | None = None
        self._started_ray = False

    def __repr__(self) -> str:
        return (
            f"Ray(address={self.address!r}, workers={self.workers}, num_cpus={self.num_cpus}, "
            f"num_gpus={self.num_gpus})"
        )

    # ------------------------------------------------------------------ cluster
    def _connect(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS")
            try:
                ray.init(address=address, log_to_driver=False, logging_level="warning")
            except ConnectionError as e:
                raise InterpError(
                    f"Cannot reach a Ray cluster at {address!r} ({e}). Start one with `ray start "
                    "--head` (and `ray start --address HEAD:6379` on each worker node), or pass "
                    "address=None to start a local one."
                ) from None
            self._started_ray = address is None
        return ray

    def _size(self, ray: Any) -> int:
        """Actors to start: `workers`, or as many as the free resources hold; refuses a cluster
        where fewer fit (an actor that cannot be placed would wait forever)."""
        want = self.workers or 1
        # Actors of another executor keep their resources until it is closed (a just-closed
        # one's come back within moments).
        deadline = time.monotonic() + FREE_WAIT_S
        while True:
            free = ray.available_resources()
            by = [free.get("CPU", 0) / self.num_cpus] if self.num_cpus > 0 else []
            if self.num_gpus > 0:
                by.append(free.get("GPU", 0) / self.num_gpus)
            fit = int(min(by))
            if fit >= want or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if fit < want:
            total = ray.cluster_resources()
            raise InterpError(
                f"The Ray cluster has {free.get('CPU', 0):g} of {total.get('CPU', 0):g} CPUs and "
                f"{free.get('GPU', 0):g} of {total.get('GPU', 0):g} GPUs free: room for {fit} "
                f"actor(s) of num_cpus={self.num_cpus:g}, num_gpus={self.num_gpus:g}, not {want}. "
                "Close other executors (their actors hold resources), add nodes, or ask for less."
            )
        return self.workers or fit

    def _ensure(self, ray: Any, model: Any) -> None:
        recipe = ModelRecipe.of(model, self.name)
        if self._identity not in (None, recipe.identity):
            self._kill_actors()  # another model, or this one changed: new actors
        if self._actors:
            return
        self._identity = recipe.identity
        cls = ray.remote(_Actor).options(
            num_cpus=self.num_cpus,
            num_gpus=self.num_gpus,
            scheduling_strategy="SPREAD",
            max_restarts=0,  # a lost actor's unit is re-run by the driver on another actor
        )
        ref = [ray.put(recipe)]  # in a list: each actor fetches it itself
        actors = [cls.remote(ref, self.threads) for _ in range(self._size(ray))]
        try:
            self._greet(ray, actors)
        except BaseException:
            self._actors = actors  # every one started, so that all of them are killed
            self._kill_actors()
            raise

    def _greet(self, ray: Any, actors: list[Any]) -> None:
        """Keep the actors that loaded the model; raise if loading failed or none started."""
        hellos = {a: a.hello.remote() for a in actors}
        lost_why = ""
        for a, hello in hellos.items():
            try:
                info = ray.get(hello, timeout=START_TIMEOUT_S)
            except GetTimeoutError:
                raise InterpError(
                    f"Ray actors did not start in {START_TIMEOUT_S:.0f} s (workers={len(actors)}"
                    f", resources free: {ray.available_resources()}); pass fewer workers= or "
                    "free the cluster's resources."
                ) from None
            except LOST as e:
                if "creation task" in str(e):  # loading the model raised: not a lost node
                    raise InterpError(f"A Ray worker could not load the model:\n{e}") from None
                lost_why = str(e).strip().splitlines()[-1]  # its node died: go on without it
                continue
            check_versions(info, f"A Ray worker on node {info['node'][:8]}")
            self._actors.append(a)
            self.nodes[a] = info["node"]
        if not self._actors:
            raise InterpError(f"No Ray actor started ({lost_why}); check the cluster (ray status).")

    def _kill_actors(self) -> None:
        if self._actors:
            ray = _ray()
            for a in self._actors:
                ray.kill(a)
        self._actors = []
        self.nodes = {}
        self._identity = None

    def check(self, model: Any, *payload: Any) -> None:
        check_sendable(self.name, model, *payload)
        ray = self._connect()
        if not self._actors:
            self._size(ray)  # refuses a cluster with no room for one actor

    def close(self) -> None:
        self._kill_actors()
        if self._started_ray:
            _ray().shutdown()
            self._started_ray = False

    # ------------------------------------------------------------------ driver
    def map(
        self, model: Any, job: Job[Any, Any], units: Sequence[Any], on_result: OnResult
    ) -> None:
        if not units:
            return
        ray = self._connect()
        self._ensure(ray, model)
        job_ref = [ray.put(job)]
        queue = deque(range(len(units)))
        attempts = [0] * len(units)
        running: dict[Any, tuple[Any, int]] = {}  # future -> (actor, unit)
        idle = list(self._actors)
        try:
            while queue or running:
                while idle and queue:
                    actor, i = idle.pop(), queue.popleft()
                    attempts[i] += 1
                    running[actor.run.remote(job_ref, job.key, units[i])] = (actor, i)
                if not running:
                    raise lost(queue[0], attempts[queue[0]], "every Ray actor died")
                done, _ = ray.wait(list(running), num_returns=1)
                actor, i = running.pop(done[0])
                try:
                    result = ray.get(done[0])
                except RayTaskError as e:  # the unit's own error: deterministic, not retried
                    raise e.as_instanceof_cause() from None
                except LOST as e:  # the actor or its node died: run the unit elsewhere
                    self._actors.remove(actor)
                    self.nodes.pop(actor, None)
                    ray.kill(actor)  # should it live on, its resources come back
                    if attempts[i] >= self.max_attempts:
                        raise lost(i, attempts[i], type(e).__name__) from None
                    queue.appendleft(i)
                    self.retried += 1
                    continue
                idle.append(actor)
                on_result(i, result)
        except BaseException:
            self._kill_actors()  # they may hold half-done units of this sweep
            raise
