"""Static export of plotly figures (PNG, SVG, PDF) through kaleido and a local Chromium, offline.

One browser serves many figures: inside ``with export_session():`` every `save_figure` reuses
the same Chromium (starting one costs about two seconds; a figure about a tenth of that).
Outside a session each call starts and closes its own.

Offline: plotly.js comes from the installed plotly package and MathJax is disabled (kaleido
would fetch it from a CDN), so LaTeX strings (``$\\alpha$``) print as typed. Pass
``mathjax="path/to/tex-svg.js"`` to `export_session` to typeset them with a local copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import plotly.graph_objects as go

from interp.checks import checked
from interp.errors import InterpError
from interp.viz.metadata import figure_format, figure_metadata, write_figure
from interp.viz.paper import (
    PX_PER_IN,
    Font,
    PaperStyle,
    default_height,
    default_width,
    inches,
    paper_figure,
    table_height,
)

if TYPE_CHECKING:
    from interp.results.base import Result

Theme = Literal["paper", "screen"]
#: Raster resolution of paper PNGs: 300 dots per printed inch.
PAPER_DPI = 300
#: How long one figure may take to render before the export gives up (seconds).
RENDER_TIMEOUT = 90.0

INSTALL_HINT = (
    "Static export needs Chromium (or Chrome). Install it with `sudo apt-get install chromium` "
    "(Debian/Ubuntu; `./dev test` does this when run as root), `brew install --cask chromium` "
    "(macOS), or `plotly_get_chrome` (downloads Chrome for kaleido); or point BROWSER_PATH at "
    "an existing Chromium/Chrome executable."
)


def browser_path() -> str:
    """The Chromium kaleido will start: BROWSER_PATH if set, else the first on PATH (or the
    one `plotly_get_chrome` downloaded). A clear InterpError when there is none."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        if not (Path(env).is_file() and os.access(env, os.X_OK)):
            raise InterpError(f"BROWSER_PATH={env!r} is not an executable file. {INSTALL_HINT}")
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    try:
        from choreographer.browsers.chromium import Chromium

        local = Chromium.find_browser(skip_local=False)
    except Exception:
        local = None
    if local:
        return str(local)
    raise InterpError(f"No Chromium found on PATH. {INSTALL_HINT}")


class _Session:
    """One kaleido browser on a private event loop thread, so export also works inside Jupyter
    (whose own event loop is already running)."""

    def __init__(self, mathjax: str | Path | None = None) -> None:
        path = browser_path()  # before any browser starts: a clear error
        if mathjax is not None and not Path(mathjax).is_file():
            raise InterpError(f"mathjax={str(mathjax)!r} is not a file; give a local tex-svg.js.")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        try:
            self._kaleido = self._run(self._open(path, mathjax), timeout=120)
        except BaseException:
            self._stop()
            raise
        self.figures = 0
        self._pages: Any = None  # a DevTools browser for HTML views, started when first needed

    def pages(self, timeout: float) -> Any:
        """The session's browser for HTML views (attention widgets): started on first use and
        closed with the session, so a batch of exports starts it at most once."""
        if self._pages is None:
            from interp.viz.browser import BrowserSession

            self._pages = BrowserSession(timeout)
        return self._pages

    def _run(self, coro: Any, timeout: float = RENDER_TIMEOUT) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except FutureTimeout:
            fut.cancel()  # frees kaleido's tab for the next figure
            raise InterpError(
                f"Chromium did not finish within {timeout:g} s (a very large figure, or a "
                "stuck browser); nothing was written."
            ) from None

    async def _open(self, path: str, mathjax: str | Path | None) -> Any:
        import kaleido
        from choreographer.errors import ChromeNotFoundError

        try:
            k = kaleido.Kaleido(
                n=1, timeout=RENDER_TIMEOUT, mathjax=Path(mathjax) if mathjax else False, path=path
            )
            await k.open()
        except ChromeNotFoundError as e:
            raise InterpError(f"{e} {INSTALL_HINT}") from None
        return k

    def render(self, fig: go.Figure, fmt: str, width: float, height: float, scale: float) -> bytes:
        opts = {"format": fmt, "width": width, "height": height, "scale": scale}
        data = self._run(self._kaleido.calc_fig(fig, opts=opts))
        self.figures += 1
        return bytes(data)

    def close(self) -> None:
        try:
            if self._pages is not None:
                self._pages.close()
            self._run(self._kaleido.close(), timeout=30)
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


_ACTIVE: list[_Session] = []


@contextlib.contextmanager
def export_session(mathjax: str | Path | None = None) -> Iterator[None]:
    """Export every figure saved inside the block with one Chromium (closed at the end, also
    when the block raises). Nested sessions reuse the outer one."""
    if _ACTIVE:
        yield
        return
    session = _Session(mathjax)
    _ACTIVE.append(session)
    try:
        yield
    finally:
        _ACTIVE.remove(session)
        session.close()


@contextlib.contextmanager
def page_session(timeout: float) -> Iterator[Any]:
    """A `BrowserSession` for exporting HTML views: the export session's own (one for the whole
    batch) inside `export_session`, else one for this block."""
    if _ACTIVE:
        yield _ACTIVE[-1].pages(timeout)
        return
    from interp.viz.browser import browser_session

    with browser_session(timeout) as session:
        yield session


def _session_render(fig: go.Figure, fmt: str, w: float, h: float, scale: float) -> bytes:
    if _ACTIVE:
        return _ACTIVE[-1].render(fig, fmt, w, h, scale)
    session = _Session()
    try:
        return session.render(fig, fmt, w, h, scale)
    finally:
        session.close()


def prepare(
    fig: go.Figure,
    fmt: str,
    width: float | str | None = None,
    height: float | str | None = None,
    scale: float | None = None,
    theme: Theme | None = "paper",
    font: Font = "sans",
    font_size: float | None = None,
    title: bool = False,
) -> tuple[go.Figure, dict[str, Any]]:
    """The figure as it will be exported, and the export settings (sizes in inches and px).

    Paper theme: `width` in inches or with a unit or a venue name (default ``"single"``, 3.3 in),
    fonts in points (`font_size`, default 8). Screen theme (or None): `width`/`height` in px
    (numbers) or with a unit; the figure's own size, else 700 x 500 px.
    """
    if theme not in ("paper", "screen", None):
        raise InterpError(f"theme={theme!r}: use 'paper', 'screen' or None.")
    if font not in ("sans", "serif"):
        raise InterpError(f"font={font!r}: use 'sans' or 'serif'.")
    if scale is not None and not (0 < float(scale) <= 20):
        raise InterpError(
            f"scale={scale!r}: give a positive factor up to 20 (2 = twice the pixels)."
        )
    if theme == "paper":
        # A figure laid out for print (panels(width=...)) keeps its size unless told otherwise.
        printed = (
            (fig.layout.meta or {}).get("interp_print", {})
            if isinstance(fig.layout.meta, dict)
            else {}
        )
        w_in = inches(width if width is not None else printed.get("width_in") or default_width(fig))
        pt = font_size or printed.get("font_pt") or PaperStyle.font_pt
        h_in = (
            inches(height, "height")
            if height is not None
            else printed.get("height_in") or table_height(fig, pt, w_in) or default_height(w_in)
        )
        style = PaperStyle(font=font, font_pt=pt)
        out = paper_figure(fig, w_in, h_in, style, titles=title)
        dpi_scale = PAPER_DPI / PX_PER_IN if fmt == "png" else 1.0
        scale = float(scale) if scale is not None else dpi_scale
    else:
        px_w = _px(width, fig.layout.width or 700)
        px_h = _px(height, fig.layout.height or 500, "height")
        w_in, h_in = px_w / PX_PER_IN, px_h / PX_PER_IN
        out = go.Figure(fig)
        out.update_layout(width=px_w, height=px_h, sliders=[], updatemenus=[])
        out.frames = []
        scale = float(scale) if scale is not None else (2.0 if fmt == "png" else 1.0)
    settings = {
        "format": fmt,
        "theme": theme,
        "width_in": round(w_in, 4),
        "height_in": round(h_in, 4),
        "width_px": out.layout.width,
        "height_px": out.layout.height,
        "scale": scale,
        "font": font,
        "mathjax": bool(_ACTIVE and _ACTIVE[-1]._kaleido._mathjax),
    }
    return out, settings


def _px(value: float | str | None, default: float, what: str = "width") -> float:
    if value is None:
        return float(default)
    if isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
        value = float(value)  # the screen theme's unit is the px: "700" means 700 px
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise InterpError(f"{what}={value!r}: give a positive size in px or with a unit.")
        return float(value)
    return round(inches(value, what) * PX_PER_IN, 3)


@checked
def save_figure(
    fig: go.Figure,
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    width: float | str | None = None,
    height: float | str | None = None,
    scale: float | None = None,
    theme: Theme | None = "paper",
    font: Font = "sans",
    font_size: float | None = None,
    title: bool = False,
    result: Result | None = None,
    view: str | None = None,
) -> Path:
    """Write a plotly figure as PNG, SVG or PDF, with a sidecar JSON of its metadata.

    Args:
        fig: any plotly figure (interp views, panels, your own).
        path: output file; the format comes from its suffix unless `format` is given.
        width, height: paper theme: inches, a length with a unit (``"8.4cm"``) or a venue
            (``"single"``, ``"double"``, ``"icml"``...); screen theme: px.
        scale: pixel density factor (PNG); paper PNGs default to 300 dpi.
        theme: ``"paper"`` (print sizes, no title) or ``"screen"`` (the figure as on screen).
        font: ``"sans"`` or ``"serif"`` (paper theme).
        font_size: text size in points (paper theme; default 8).
        title: keep the figure's title (paper theme drops it: captions belong to the paper).
        result: the result the figure shows; its metadata goes into the sidecar and the file.
        view: the name of the view (``"plot"``, ``"plot_frontier"``), for the record.

    Returns:
        The path written. Nothing is written when rendering fails.
    """
    if not isinstance(fig, go.Figure):
        raise InterpError(
            f"save_figure needs a plotly Figure, got {type(fig).__name__}; for a result use "
            "result.save_figure(path)."
        )
    out = Path(path)
    fmt = figure_format(out, format)
    if out.is_dir():
        raise InterpError(f"path={out} is a directory; give a file such as {out}/figure.{fmt}.")
    ready, settings = prepare(fig, fmt, width, height, scale, theme, font, font_size, title)
    data = _session_render(ready, fmt, ready.layout.width, ready.layout.height, settings["scale"])
    record = figure_metadata(
        dict(result.meta) if result is not None else None,
        **settings,
        view=view,
        kind=result.kind if result is not None else None,
        title=(result.title if result is not None else None) or _text(fig.layout.title.text),
    )
    return write_figure(out, data, fmt, record)


def _text(value: Any) -> str | None:
    return str(value) if value else None


def save_result_figure(
    res: Result,
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    view: str = "plot",
    **kw: Any,
) -> Path:
    """`Result.save_figure`: build the view, then export it with the result's metadata.

    Keyword arguments that `save_figure` takes (width, height, scale, theme, font, font_size,
    title) go to the export; the rest go to the view method.
    """
    views = type(res).views()
    if view not in views:
        raise InterpError(f"view={view!r}: {type(res).__name__} has the views {list(views)}.")
    export_keys = ("width", "height", "scale", "theme", "font", "font_size", "title")
    export = {k: kw.pop(k) for k in export_keys if k in kw}
    if view == "attention":
        from interp.viz.attention import save_attention_figure

        if kw:
            raise InterpError(f"The attention view takes no options; got {sorted(kw)}.")
        return save_attention_figure(res, path, format, scale=export.get("scale"))  # type: ignore[arg-type]
    fig = getattr(res, view)(**kw)
    return save_figure(fig, path, format, result=res, view=view, **export)


def save_result_figures(
    res: Result,
    directory: str | os.PathLike[str],
    formats: tuple[str, ...] = ("pdf", "png"),
    views: tuple[str, ...] | None = None,
    stem: str | None = None,
    **kw: Any,
) -> list[Path]:
    """Every view of `res` (or `views`) in every format, into `directory`, one browser for all:
    ``<stem>.pdf``, ``<stem>_frontier.pdf``... (`stem` defaults to the result's kind)."""
    names = views or type(res).views()
    base = stem or res.kind
    out = Path(directory)
    written: list[Path] = []
    with export_session():
        for view in names:
            suffix = "" if view == "plot" else "_" + view.removeprefix("plot_")
            for fmt in formats:
                if view == "attention" and fmt == "svg":
                    continue  # an HTML widget has no vector form; PNG and PDF are written
                target = out / f"{base}{suffix}.{fmt}"
                written.append(save_result_figure(res, target, view=view, **kw))
    return written
