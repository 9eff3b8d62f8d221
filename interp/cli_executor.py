"""The command line's ``--executor / --address / --workers`` options: where a sweep's units run."""

from __future__ import annotations

from typing import Annotated

import typer

from interp.checks import one_of
from interp.errors import InterpError
from interp.executors import NAMES, Executor, Local, Processes, Ray

ExecutorOpt = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Where the work units run: local (this process), processes (a local process pool) "
        "or ray (a Ray cluster; see docs/scaling.md).",
    ),
]
AddressOpt = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="Ray cluster address (auto: the one `ray start` made here; ray://HOST:10001). "
        "Default: $RAY_ADDRESS, else a local Ray started for the run.",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers",
        help="Worker processes or Ray actors (default: one per free core, at most 8 processes).",
    ),
]


def make_executor(name: str, address: str | None, workers: int | None) -> Executor:
    """The executor the options name; the caller closes it (``with make_executor(...) as ex``)."""
    one_of("--executor", name, NAMES)
    if address is not None and name != "ray":
        raise InterpError(f"--address is for --executor ray (got --executor {name}).")
    if name == "processes":
        return Processes(workers=workers)
    if name == "ray":
        return Ray(address=address, workers=workers)
    if workers is not None:
        raise InterpError("--workers is for --executor processes or ray.")
    return Local()
