"""A small headless-Chromium page driver over the DevTools protocol, offline by construction.

Opens local HTML files (reports, attention views) the way a reader's browser would, with the
network cut off, and reports what went wrong on the page: console errors, uncaught exceptions
and resources that failed to load. It can run JavaScript, wait for a condition, and capture the
page as PNG or as a one-page PDF sized to the content.

One Chromium serves several pages: inside ``with browser_session():`` every `open_page` reuses
it (starting one takes about half a second). The browser runs on a private event loop thread,
so this also works inside Jupyter, and every call to it is bounded by a timeout: a Chromium that
dies or hangs raises an InterpError instead of blocking forever.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import os
import signal
import subprocess
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

from choreographer import Browser
from choreographer.browsers.chromium import Chromium

from interp.errors import InterpError
from interp.viz.devtools import DEFAULT_TIMEOUT, Loop, command
from interp.viz.export import browser_path

#: CSS pixels per inch (PDF page sizes).
PX_PER_IN = 96.0
# A page opened here must reach nothing outside the machine: these schemes are refused by the
# browser itself, so a page that tries to fetch from a CDN logs a failed load instead.
_BLOCKED_URLS = ["http://*", "https://*", "ws://*", "wss://*", "ftp://*"]
# choreographer relaxes the browser's security for kaleido; a page checked here must behave as
# it does in a reader's browser (a file:// page may not read other files or other origins).
_DROPPED_FLAGS = ("--disable-web-security", "--allow-file-access-from-files")


class _OfflineChromium(Chromium):
    """choreographer's Chromium launcher with the flags of a plain, offline browser."""

    def get_cli(self) -> list[str]:
        cli = [arg for arg in super().get_cli() if arg not in _DROPPED_FLAGS]
        return [*cli, "--disable-background-networking"]


class BrowserSession:
    """One headless Chromium; `open_page` opens local files in it. Close it (or use it as a
    context manager): the browser, its pages and its temporary profile go away."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        path = browser_path()  # before anything starts: a clear error with install hints
        self.timeout = timeout
        self.pages: list[Page] = []
        self._browser: Any = None
        self._loop = Loop()
        started = time.perf_counter()
        try:
            self._loop.run(self._start(path), timeout, "starting")
        except BaseException:
            self.close()
            raise
        #: Seconds the browser took to start.
        self.start_seconds = time.perf_counter() - started

    async def _start(self, path: str) -> None:
        # A fresh temporary profile (--user-data-dir), removed on close.
        self._browser = Browser(path, browser_cls=_OfflineChromium, headless=True)
        await self._browser.open()

    def open_page(
        self,
        path: str | os.PathLike[str],
        *,
        width: int = 1100,
        height: int = 800,
        timeout: float | None = None,
    ) -> Page:
        """Load the local file `path` in a new tab of `width` x `height` CSS px (the viewport;
        captures cover the whole page) and wait for its load event.

        `timeout` bounds each step on the page (default: the session's).
        """
        file = _local_file(path)
        if self._browser is None:
            raise InterpError("This browser session is closed.")
        page = Page(self, file, width, height, timeout or self.timeout)
        self.pages.append(page)
        try:
            self._loop.run(page._open(), page.timeout, f"loading {file.name}")
        except BaseException:
            page.close()
            raise
        return page

    def close(self) -> None:
        """Close every page and the browser; kill it if it does not quit. Safe to call twice."""
        for page in list(self.pages):
            page.close()
        browser, self._browser = self._browser, None
        if browser is not None:
            if not self._loop.stuck:  # a hung browser would not answer: just end it
                with contextlib.suppress(InterpError):
                    self._loop.run(browser.close(), 10, "closing")
            _reap(browser, wait=0.5 if self._loop.stuck else 5.0)
        self._loop.stop()

    def __enter__(self) -> BrowserSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reap(browser: Any, wait: float = 5.0) -> None:
    """Make sure the browser we started has exited (choreographer's close may return before
    it has): wait a little, then kill its process group (the launcher, Chromium and its
    children: started with start_new_session=True). Remove its temporary profile."""
    proc = getattr(browser, "subprocess", None)
    if proc is not None:
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(wait)
    with contextlib.suppress(Exception):
        browser._browser_impl.clean()


class Page:
    """One tab showing a local file. Made by `BrowserSession.open_page` or `open_page`.

    Attributes:
        console_errors: everything that went wrong on the page, in order: ``console.error``
            messages, uncaught exceptions, and failed or blocked resource loads.
    """

    def __init__(
        self, session: BrowserSession, file: Path, width: int, height: int, timeout: float
    ) -> None:
        self.session = session
        self.timeout = timeout
        self.file = file
        self.width, self.height = int(width), int(height)
        self.console_errors: list[str] = []
        self._requests: dict[str, str | None] = {}  # requestId -> URL, to name failed loads
        self._tab: Any = None

    async def _open(self) -> None:
        tab = self._tab = await self.session._browser.create_tab("about:blank")
        for event in _EVENTS:
            tab.subscribe(event, self._on_event)
        for domain in ("Page", "Runtime", "Log", "Network"):
            await command(tab, f"{domain}.enable")
        offline = {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
        await command(tab, "Network.emulateNetworkConditions", offline)
        await command(tab, "Network.setBlockedURLs", {"urls": _BLOCKED_URLS})
        # No scrollbars: they would take width from the layout and show in captures.
        await command(tab, "Emulation.setScrollbarsHidden", {"hidden": True})
        await self._metrics(1.0)
        loaded = tab.subscribe_once("Page.loadEventFired")
        nav = await command(tab, "Page.navigate", {"url": self.file.as_uri()})
        if nav.get("errorText"):
            raise InterpError(f"Chromium could not open {self.file}: {nav['errorText']}")
        await loaded
        # The event may have come from the blank page the tab started with: wait for ours.
        while not await self._ready():
            await asyncio.sleep(0.05)

    async def _ready(self) -> bool:
        try:
            return bool(await self._evaluate(_LOADED))
        except InterpError:  # the old document's context went away mid-call
            return False

    async def _metrics(self, scale: float) -> None:
        params = {"width": self.width, "height": self.height, "deviceScaleFactor": scale}
        await command(self._tab, "Emulation.setDeviceMetricsOverride", {**params, "mobile": False})

    async def _on_event(self, event: dict[str, Any]) -> None:
        """Record what went wrong on the page (DevTools events, all kinds in one place)."""
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(_remote_text(a) for a in params.get("args", []))
            self.console_errors.append(f"console.{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            d = params.get("exceptionDetails", {})
            text = d.get("exception", {}).get("description") or d.get("text", "")
            where = f"{d.get('url', '')}:{d.get('lineNumber', 0) + 1}"
            self.console_errors.append(f"uncaught exception at {where}: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            url = f" ({entry['url']})" if entry.get("url") else ""
            self.console_errors.append(f"{entry.get('source', 'log')}: {entry.get('text')}{url}")
        elif method == "Network.requestWillBeSent":
            self._requests[params.get("requestId", "")] = params.get("request", {}).get("url")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            url = self._requests.get(params.get("requestId", "")) or "?"
            why = params.get("errorText") or "failed"
            if params.get("blockedReason"):  # "inspector": by setBlockedURLs above
                why = f"blocked: {params['blockedReason']}"
            self.console_errors.append(f"failed to load {url} ({why})")

    # ------------------------------------------------------------------ public API
    def _run(self, coro: Coroutine[Any, Any, Any], what: str, timeout: float | None = None) -> Any:
        if self._tab is None:
            coro.close()
            raise InterpError(f"The page {self.file.name} is closed.")
        return self.session._loop.run(coro, timeout or self.timeout, what)

    def evaluate(self, js: str, *, timeout: float | None = None) -> Any:
        """The value of the JavaScript expression `js` (awaited if it is a promise; returned
        as JSON, so DOM nodes come back as ``{}``). A thrown exception raises InterpError."""
        return self._run(self._evaluate(js), "running a script", timeout)

    async def _evaluate(self, js: str) -> Any:
        params = {"expression": js, "awaitPromise": True, "returnByValue": True}
        out = await command(self._tab, "Runtime.evaluate", params)
        if "exceptionDetails" in out:
            details = out["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise InterpError(f"The script failed in the page: {text}")
        return out.get("result", {}).get("value")

    def wait_for(self, js_condition: str, timeout: float | None = None) -> None:
        """Wait until the expression `js_condition` is truthy; InterpError after `timeout` s
        (naming the page's errors, which usually say why it never became true)."""
        limit = timeout or self.timeout
        deadline = time.monotonic() + limit
        while not self.evaluate(f"!!({js_condition})", timeout=limit):
            if time.monotonic() > deadline:
                errors = "; ".join(self.console_errors[:5]) or "no errors on the page"
                raise InterpError(
                    f"{self.file.name}: `{js_condition}` was not true after {limit:g} s ({errors})."
                )
            time.sleep(0.05)

    def content_size(self) -> tuple[float, float]:
        """Width and height of the whole page in CSS px (at least the viewport)."""
        metrics = self._run(command(self._tab, "Page.getLayoutMetrics"), "measuring")
        size = metrics["cssContentSize"]
        return float(size["width"]), float(size["height"])

    def screenshot(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        full_page: bool = True,
        scale: float = 2.0,
        clip: tuple[float, float, float, float] | None = None,
    ) -> bytes:
        """A PNG of the page: the whole content (`full_page`), the viewport, or `clip`
        (``x, y, width, height`` in CSS px). `scale` device pixels per CSS px. Written to
        `path` too when given."""
        if clip is None:
            width, height = self.content_size() if full_page else (self.width, self.height)
            clip = (0.0, 0.0, width, height)
        x, y = math.floor(clip[0]), math.floor(clip[1])  # whole pixels, covering the clip
        w, h = math.ceil(clip[0] + clip[2]) - x, math.ceil(clip[1] + clip[3]) - y
        box = {"x": x, "y": y, "width": w, "height": h, "scale": 1}
        data: bytes = self._run(self._screenshot(box, float(scale)), "taking a screenshot")
        if path is not None:
            Path(path).write_bytes(data)
        return data

    async def _screenshot(self, box: dict[str, int], scale: float) -> bytes:
        # The device pixel ratio sets the resolution; the page keeps its CSS layout.
        await self._metrics(scale)
        try:
            await self._evaluate(_TWO_FRAMES)
            params = {"format": "png", "captureBeyondViewport": True, "clip": box}
            shot = await command(self._tab, "Page.captureScreenshot", params)
        finally:
            await self._metrics(1.0)
        return base64.b64decode(shot["data"])

    def pdf(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        sized_to_content: bool = True,
        size: tuple[float, float] | None = None,
    ) -> bytes:
        """The page as PDF, with backgrounds and the screen's styles. `sized_to_content`: one
        page the size of the content (`size`, ``width, height`` in CSS px from the top left,
        if given), no margins; else US Letter pages. Written to `path` too when given."""
        if sized_to_content and size is None:
            size = self.content_size()
        data: bytes = self._run(self._pdf(size if sized_to_content else None), "printing")
        if path is not None:
            Path(path).write_bytes(data)
        return data

    async def _pdf(self, size: tuple[float, float] | None) -> bytes:
        params: dict[str, Any] = {"printBackground": True, "preferCSSPageSize": False}
        if size is not None:
            params.update(
                paperWidth=math.ceil(size[0]) / PX_PER_IN,
                paperHeight=math.ceil(size[1]) / PX_PER_IN,
                **{f"margin{side}": 0 for side in ("Top", "Bottom", "Left", "Right")},
                pageRanges="1",  # a rounding overflow must not start a blank second page
            )
        # Print with the screen's styles: the PDF shows what the screen shows.
        await command(self._tab, "Emulation.setEmulatedMedia", {"media": "screen"})
        try:
            out = await command(self._tab, "Page.printToPDF", params)
        finally:
            await command(self._tab, "Emulation.setEmulatedMedia", {"media": ""})
        return base64.b64decode(out["data"])

    def close(self) -> None:
        """Close the tab (the browser stays for other pages). Safe to call twice."""
        tab, self._tab = self._tab, None
        if self in self.session.pages:
            self.session.pages.remove(self)
        if tab is not None and self.session._browser is not None and not self.session._loop.stuck:
            with contextlib.suppress(InterpError):
                self.session._loop.run(tab.close(), 10, "closing a page")

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The DevTools events `Page._on_event` reads.
_EVENTS = (
    "Runtime.consoleAPICalled Runtime.exceptionThrown Log.entryAdded "
    "Network.requestWillBeSent Network.loadingFailed"
).split()
_LOADED = "location.protocol === 'file:' && document.readyState === 'complete'"
# Resolves after two animation frames: what was changed has been laid out and painted. The
# timer is a fallback for a tab that gets no frames.
_TWO_FRAMES = (
    "new Promise(r => { setTimeout(r, 200); "
    "requestAnimationFrame(() => requestAnimationFrame(() => r())); })"
)


def _local_file(path: str | os.PathLike[str]) -> Path:
    file = Path(path).resolve()
    if not file.is_file():
        raise InterpError(f"{file} is not a file; open_page opens local HTML files.")
    return file


def _remote_text(obj: dict[str, Any]) -> str:
    """A console argument (a DevTools RemoteObject) as text."""
    if "value" in obj:
        return str(obj["value"])
    return str(obj.get("description") or obj.get("unserializableValue") or obj.get("type"))


_ACTIVE: list[BrowserSession] = []


@contextlib.contextmanager
def browser_session(timeout: float = DEFAULT_TIMEOUT) -> Iterator[BrowserSession]:
    """One Chromium for every page opened inside the block (closed at the end, also when the
    block raises). Nested sessions reuse the outer one."""
    if _ACTIVE:
        yield _ACTIVE[-1]
        return
    session = BrowserSession(timeout)
    _ACTIVE.append(session)
    try:
        yield session
    finally:
        _ACTIVE.remove(session)
        session.close()


@contextlib.contextmanager
def open_page(
    path: str | os.PathLike[str],
    *,
    width: int = 1100,
    height: int = 800,
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[Page]:
    """The local file `path` loaded in headless Chromium with no network; closed on exit.

    Uses the browser of an enclosing `browser_session`, else starts (and then closes) one.
    """
    _local_file(path)  # a wrong path fails before any browser starts
    with (
        browser_session(timeout) as session,
        session.open_page(path, width=width, height=height, timeout=timeout) as page,
    ):
        yield page
