"""A worker process of `Processes` (started as ``python -m interp.executors FD``).

Started as a plain subprocess (not through multiprocessing's spawn, which re-runs the driver's
``__main__`` and so fails in scripts without a ``__main__`` guard). It talks to the driver over
the inherited end of a socket pair: first ``("init", recipe, threads)``, then ``("job", bytes)``
and ``("unit", i, unit)`` messages, answered by ``("ok", i, result)`` or ``("error", i, ...)``.
"""

from __future__ import annotations

import pickle
import traceback
from multiprocessing.connection import Connection
from typing import Any

from interp.errors import InterpError
from interp.executors.base import Job, WorkerState
from interp.executors.recipe import versions


def portable(e: BaseException) -> BaseException:
    """`e` if it survives pickling, else an InterpError carrying its text."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return InterpError(f"{type(e).__name__}: {e}")


def send(conn: Connection, msg: tuple[Any, ...]) -> None:
    # Plain pickle: Connection.send's pickler would share tensors through file descriptors
    # (torch registers that), which needs an authenticated side channel between the processes.
    conn.send_bytes(pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


def serve(conn: Connection) -> None:
    import torch

    _, recipe, threads = receive(conn)
    torch.set_num_threads(threads)
    try:
        state = WorkerState(recipe.build(device="cpu"))
    except BaseException as e:  # reported to the driver, which raises it
        send(conn, ("failed", portable(e), traceback.format_exc()))
        return
    send(conn, ("ready", versions(), None))
    job: Job[Any, Any] | None = None
    unreadable: tuple[BaseException, str] | None = None
    while True:
        msg = receive(conn)
        if msg[0] == "stop":
            state.close()
            return
        if msg[0] == "job":
            try:
                job, unreadable = pickle.loads(msg[1]), None
            except BaseException as e:  # e.g. a function the worker cannot import
                job, unreadable = None, (portable(e), traceback.format_exc())
            continue
        _, i, unit = msg
        if unreadable is not None:  # the same in every worker: an error, not a lost worker
            send(conn, ("error", i, unreadable))
            continue
        try:
            assert job is not None
            send(conn, ("ok", i, state.run(job, unit)))
        except BaseException as e:
            send(conn, ("error", i, (portable(e), traceback.format_exc())))
