"""Static figures and reproducible commands on the command line.

- `command_line()`: the shell command that reproduces a CLI invocation; `interp run` results
  record it as ``meta["command"]`` (and exported figures carry it in their sidecar).
- `run_command`: wraps every `interp run` command: records that command on the result it
  saves, and adds ``--figure PATH``/``--figure-width``, checked before the model loads, the
  saved result's main view then exported to PATH.
- `figure_cmd`: ``interp figure RESULT_DIR...``: every view of saved results as PDF/SVG/PNG.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer

from interp.errors import InterpError

#: The program name recorded in commands (typer's test runner calls the root something else).
PROGRAM = "interp"
FORMATS = ("pdf", "svg", "png")

F = TypeVar("F", bound=Callable[..., None])


# ------------------------------------------------------------------ the reproducing command
def command_line(ctx: typer.Context) -> str:
    """The shell command that reproduces the invocation `ctx` belongs to: the command path and
    every parameter whose value differs from its default (long flags, ``--flag``/``--no-flag``
    for booleans), each value shell-quoted, the program named ``interp``.

    Typer hands a command its context when it declares a ``typer.Context`` parameter (typer
    ships its own click, so click's global context lookup does not see typer's)."""
    names: list[str] = []
    node: Any = ctx
    while node is not None:
        names.append(node.info_name or "")
        node = node.parent
    words = [PROGRAM, *reversed(names[:-1])]
    positional: list[str] = []
    for param in ctx.command.params:
        if not param.expose_value or param.name is None or param.name not in ctx.params:
            continue
        value = ctx.params[param.name]
        if param.param_type_name == "argument":
            # Arguments are required or their value is used anyway: always written.
            positional += [_text(v) for v in _items(value)]
        elif param.param_type_name == "option":
            words += _option_words(param, value, param.get_default(ctx, call=True))
    if any(p.startswith("-") for p in positional):
        positional.insert(0, "--")  # so a value like '-x' is not read as an option
    return shlex.join([*words, *positional])


def _option_words(param: Any, value: Any, default: Any) -> list[str]:
    if value is None or _same(value, default, param.multiple):
        return []
    if param.is_flag and isinstance(value, bool):
        flags = param.opts if value else param.secondary_opts
        # A flag without a --no- form that is off: its default, already skipped above.
        return [_long(flags)] if flags else []
    flag = _long(param.opts)
    if param.multiple:
        return [w for v in _items(value) for w in (flag, _text(v))]
    return [flag, _text(value)]


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _same(value: Any, default: Any, multiple: bool) -> bool:
    if multiple:  # click gives tuples, typer lists: compare the items
        return _items(value) == _items(default)
    return bool(value == default)


def _long(opts: list[str]) -> str:
    """The long spelling of an option (``--model``, not ``-m``); the first when it has two."""
    return next((o for o in opts if o.startswith("--")), opts[0])


def _text(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)  # Path as given (not resolved); floats print as they round-trip


# ------------------------------------------------------------------ --figure on `interp run`
FigureOpt = Annotated[
    Path | None,
    typer.Option(
        "--figure",
        help="Also export the main view as a static figure here (.pdf, .svg or .png; paper "
        "theme), with a sidecar PATH.json recording how to reproduce it.",
    ),
]
FigureWidthOpt = Annotated[
    str,
    typer.Option(
        "--figure-width",
        help="Width of --figure: inches (3.3), a length ('8.4cm') or a venue (single = "
        "3.3in, double = 6.9in, icml, acl, neurips ...).",
    ),
]
FIGURE_WIDTH = "single"


@dataclass
class _Run:
    """The `interp run` command in progress: its context (for the command line) and the
    results it saved (for --figure, exported once the command returns)."""

    ctx: typer.Context
    saved: list[Any] = field(default_factory=list)


_RUN: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("interp_cli_run", default=None)


def record_run(res: Any) -> None:
    """Call before saving a CLI result: records the command that reproduces it in its
    metadata and hands it to --figure. Outside a `run_command` command it does nothing."""
    run = _RUN.get()
    if run is None:
        return
    res.meta["command"] = command_line(run.ctx)
    run.saved.append(res)


def check_figure(figure: Path | None, width: str) -> None:
    """Every check `--figure` can fail, made before any model loads (so a typo costs nothing
    and writes nothing)."""
    from interp.viz.paper import inches

    if figure is None:
        if width != FIGURE_WIDTH:
            raise InterpError("--figure-width applies to --figure: give --figure PATH too.")
        return
    from interp.viz.metadata import figure_format

    try:
        figure_format(figure, None)
    except InterpError:
        raise InterpError(
            f"--figure {figure}: give a file ending in .pdf, .svg or .png (the format comes "
            "from the suffix)."
        ) from None
    if figure.is_dir():
        raise InterpError(f"--figure {figure} is a directory; give a file such as fig.pdf.")
    inches(width, "--figure-width")
    _check_browser()


def _check_browser() -> None:
    from interp.viz.export import browser_path

    browser_path()  # an InterpError naming how to install Chromium


def run_command(fn: F) -> F:
    """Make `fn` an `interp run` command (once, for all of them): its saved result records the
    command that reproduces it (`record_run`), and it takes ``--figure``/``--figure-width``,
    checked before it runs and exported from the result it saved after it returns."""

    @functools.wraps(fn)
    def wrapper(
        *args: Any,
        ctx: typer.Context,
        figure: Path | None = None,
        figure_width: str = FIGURE_WIDTH,
        **kw: Any,
    ) -> None:
        check_figure(figure, figure_width)
        run = _Run(ctx)
        token = _RUN.set(run)
        try:
            fn(*args, **kw)
        finally:
            _RUN.reset(token)
        if figure is not None and run.saved:
            path = run.saved[-1].save_figure(figure, width=figure_width)
            typer.echo(f"figure: {path}")

    # Typer reads the command's options from its signature: the wrapped one plus the two, and
    # a typer.Context parameter (which typer fills in and does not show as an option).
    sig = inspect.signature(fn, eval_str=True)
    extra = [
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
        inspect.Parameter(
            "figure", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=FigureOpt
        ),
        inspect.Parameter(
            "figure_width",
            inspect.Parameter.KEYWORD_ONLY,
            default=FIGURE_WIDTH,
            annotation=FigureWidthOpt,
        ),
    ]
    params = [*sig.parameters.values(), *extra]
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    return cast(F, wrapper)


# ------------------------------------------------------------------ `interp figure`
def figure_cmd(
    results: Annotated[
        list[Path], typer.Argument(metavar="RESULT_DIR", help="Saved result directories.")
    ],
    formats: Annotated[
        list[str], typer.Option("--format", "-f", help="pdf, svg or png; repeatable.")
    ] = ["pdf", "png"],  # noqa: B006 - typer reads the default from here
    out: Annotated[
        Path | None,
        typer.Option(help="Directory for the files (default: RESULT_DIR/figures for each)."),
    ] = None,
    theme: Annotated[
        str, typer.Option(help="paper (printed sizes, no title) or screen (as on screen).")
    ] = "paper",
    width: Annotated[
        str | None,
        typer.Option(
            help="Paper: inches (3.3), a length ('8.4cm') or a venue (single = 3.3in, double = "
            "6.9in, icml ...; default single). Screen: px (700) or a length."
        ),
    ] = None,
    height: Annotated[
        str | None,
        typer.Option(help="Like --width (default: from the width, or the figure's own)."),
    ] = None,
    font: Annotated[str, typer.Option(help="sans or serif (paper theme).")] = "sans",
    font_size: Annotated[
        float | None, typer.Option(help="Text size in points (paper theme; default 8).")
    ] = None,
    view: Annotated[
        list[str] | None,
        typer.Option(
            help="Only these views (plot, plot_frontier, attention ...; repeatable; default: "
            "every view of each result)."
        ),
    ] = None,
) -> None:
    """Export saved results' views as static figures (PDF, SVG, PNG) for a paper.

    Every view of each RESULT_DIR (or --view) in every --format, named after the result's
    directory (dla.pdf, steer_frontier.pdf ...), each with a sidecar FILE.json of its
    metadata. One browser renders them all; every option is checked before anything is
    written."""
    from interp.results.io import load_result
    from interp.viz.export import export_session, save_result_figures

    kinds = tuple(dict.fromkeys(_format(f) for f in formats))
    if theme not in ("paper", "screen"):
        raise InterpError(f"--theme {theme!r}: use paper or screen.")
    if font not in ("sans", "serif"):
        raise InterpError(f"--font {font!r}: use sans or serif.")
    if font_size is not None and not font_size > 0:
        raise InterpError(f"--font-size {font_size}: give a positive size in points.")
    size = {"width": _size(width, theme, "--width"), "height": _size(height, theme, "--height")}
    loaded = [(path, load_result(path)) for path in results]
    jobs = []
    for path, res in loaded:
        names = type(res).views()
        wanted = tuple(dict.fromkeys(view)) if view else names
        missing = [v for v in wanted if v not in names]
        if missing:
            raise InterpError(
                f"--view {missing[0]}: the result in {path} ({type(res).__name__}) has the "
                f"views {', '.join(names)}."
            )
        stem = path.resolve().name
        jobs.append((res, out if out is not None else path / "figures", wanted, stem))
    targets = [(str(d), s) for _, d, _, s in jobs]
    if len(set(targets)) < len(targets):
        raise InterpError(
            "Two results have the same directory name, so their figures would overwrite each "
            "other in --out; export them to separate --out directories."
        )
    _check_browser()
    style = {"theme": theme, "font": font, "font_size": font_size, **size}
    written: list[Path] = []
    with export_session():
        for res, directory, wanted, stem in jobs:
            written += save_result_figures(res, directory, kinds, wanted, stem=stem, **style)
    for path in written:
        typer.echo(str(path))
    typer.echo(f"{len(written)} figure(s) written.")
    if "svg" in kinds and any("attention" in wanted for _, _, wanted, _ in jobs):
        typer.echo("note: attention views (HTML widgets) have no SVG form: PDF and PNG only.")


def _format(text: str) -> str:
    fmt = text.strip().lower().lstrip(".")
    if fmt not in FORMATS:
        raise InterpError(f"--format {text!r}: use pdf, svg or png.")
    return fmt


def _size(text: str | None, theme: str, option: str) -> float | str | None:
    """A size as the exporter takes it: a screen size without a unit is px (a number); anything
    else is checked here (inches, a length or a venue) and passed on as written."""
    from interp.viz.paper import inches

    if text is None:
        return None
    if theme == "screen":
        try:
            px = float(text)
        except ValueError:
            px = None
        if px is not None:
            if not 0 < px < 10_000:
                raise InterpError(f"{option} {text}: give a positive size in px or with a unit.")
            return px
    inches(text, option)
    return text
