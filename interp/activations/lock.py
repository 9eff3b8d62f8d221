"""One writer per store at a time: an advisory lock on ``<store>/.lock``.

`fcntl.flock` rather than an O_EXCL lock file: the kernel drops the lock when its holder dies,
so a killed run never leaves a stale lock that blocks the resume. The lock file is removed on
release; a writer that locked a file someone removed meanwhile retries on the new one, so two
writers can never both believe they hold it. Where there is no fcntl (Windows) stores are not
locked.
"""

from __future__ import annotations

import os
from pathlib import Path

from interp.activations.manifest import LOCK
from interp.errors import InterpError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]


class StoreLock:
    """Exclusive, non-blocking lock of a store directory (which must exist)."""

    def __init__(self, path: Path, what: str = "interp.cache") -> None:
        self.path, self.what = path, what
        self.file = path / LOCK
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise an InterpError if another writer holds it."""
        if fcntl is None:
            return
        while True:
            fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InterpError(
                    f"{self.path} is being written by another {self.what} run right now (it "
                    f"holds {self.file}). Wait for it to finish and run again to reuse its "
                    "result, or pass another directory as store=."
                ) from None
            try:
                same = os.stat(self.file).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return
            os.close(fd)  # the holder removed the file after we opened it: lock the new one

    def release(self) -> None:
        if self._fd is None:
            return
        self.file.unlink(missing_ok=True)  # while still held, so no one locks a removed file
        os.close(self._fd)
        self._fd = None
