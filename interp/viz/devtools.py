"""The DevTools plumbing under `interp.viz.browser`: a private event loop thread, and every call
to Chromium bounded by a timeout, with its failures turned into InterpErrors."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from interp.errors import InterpError

#: Seconds any one step (start, load, script, capture) may take before it is abandoned.
DEFAULT_TIMEOUT = 60.0


class BrowserTimeout(InterpError):
    """Chromium did not answer in time (hung, or a page script that never finishes)."""


class Loop:
    """An asyncio loop on a daemon thread; `run` waits for a coroutine with a hard timeout."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        #: Something timed out: the browser may be hung, so closing skips the polite steps.
        self.stuck = False

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float, what: str) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(bounded(coro, timeout, what), self.loop)
        try:
            return fut.result(timeout + 5)  # the loop itself may be stuck: give up here too
        except FutureTimeout:
            fut.cancel()
            self.stuck = True
            raise BrowserTimeout(f"Chromium did not answer while {what} ({timeout:g} s).") from None
        except BrowserTimeout:
            self.stuck = True
            raise

    def stop(self) -> None:
        # Let choreographer's leftover tasks (its watchdog) end before the loop does.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_others(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


async def cancel_others() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=2)


async def bounded(coro: Coroutine[Any, Any, Any], timeout: float, what: str) -> Any:
    try:
        return await asyncio.wait_for(coro, timeout)
    except (asyncio.TimeoutError, TimeoutError):
        raise BrowserTimeout(f"Chromium did not finish {what} within {timeout:g} s.") from None
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and getattr(task, "cancelling", lambda: 0)():
            raise  # we were cancelled (the caller gave up): stay cancelled
        # choreographer cancels every pending reply when the browser process goes away.
        raise InterpError(f"Chromium closed while {what}.") from None
    except InterpError:
        raise
    except Exception as e:  # choreographer's BrowserClosedError, ChannelClosedError, ...
        raise InterpError(f"Chromium failed while {what}: {type(e).__name__}: {e}") from e


async def command(target: Any, method: str, params: dict[str, Any] | None = None) -> Any:
    """One DevTools command; its result, or an InterpError with the protocol's message."""
    response = await target.send_command(method, params)
    if "error" in response:
        raise InterpError(f"Chromium refused {method}: {response['error'].get('message')}")
    return response.get("result", {})
