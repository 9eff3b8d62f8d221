"""Tables for papers: a result's top cells as a LaTeX tabular, its tidy frame as CSV."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from interp.errors import InterpError
from interp.files import atomic_write_text

if TYPE_CHECKING:
    from interp.results.base import Result

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX_SPECIAL))


def latex_text(value: Any) -> str:
    """`value` as LaTeX text: every special character escaped (token strings are arbitrary)."""
    text = _LATEX_RE.sub(lambda m: _LATEX_SPECIAL[m.group(0)], str(value))
    return text.replace("\n", r"\textbackslash{}n")


def _cell(value: Any, precision: int) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "--"
        return f"{value:.{precision}f}"
    return latex_text(value)


def latex_table(
    res: Result,
    top: int | None = 10,
    precision: int = 3,
    columns: list[str] | None = None,
    caption: str | None = None,
    label: str | None = None,
) -> str:
    """The result's `top` cells (its ranking; None: every cell) as a booktabs LaTeX table.

    Intervals, where the result has them, print as ``value [low, high]`` in one column.
    """
    if top is not None and (not isinstance(top, int) or isinstance(top, bool) or top < 1):
        raise InterpError(f"top={top!r}: give a positive number of rows, or None for all.")
    if not isinstance(precision, int) or isinstance(precision, bool) or not 0 <= precision <= 12:
        raise InterpError(f"precision={precision!r}: give the decimals to print, 0 to 12.")
    frame = res.top(top) if top is not None and type(res).show_top else res.to_dataframe()
    if top is not None:
        frame = frame.head(top)
    frame = _merge_intervals(frame, precision)
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise InterpError(f"columns {missing} are not in the table; it has {list(frame)}.")
        frame = frame[columns]
    cols = list(frame.columns)
    align = "".join(
        "r" if c == "value" or pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in cols
    )
    lines = [r"\begin{tabular}{" + align + "}", r"\toprule"]
    lines.append(" & ".join(latex_text(c) for c in cols) + r" \\")
    lines.append(r"\midrule")
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(_cell(v, precision) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    body = "\n".join(lines)
    if caption is None and label is None:
        return body + "\n"
    parts = [r"\begin{table}[t]", r"\centering", body]
    if caption is not None:
        parts.append(r"\caption{" + latex_text(caption) + "}")
    if label is not None:
        parts.append(r"\label{" + label + "}")
    parts.append(r"\end{table}")
    return "\n".join(parts) + "\n"


def _merge_intervals(frame: pd.DataFrame, precision: int) -> pd.DataFrame:
    if not {"value", "ci_low", "ci_high"} <= set(frame.columns):
        return frame
    out = frame.drop(columns=["ci_low", "ci_high"]).copy()
    out["value"] = [
        _cell(float(v), precision)
        + (
            ""
            if math.isnan(lo) or math.isnan(hi)
            else f" [{_cell(float(lo), precision)}, {_cell(float(hi), precision)}]"
        )
        for v, lo, hi in zip(frame["value"], frame["ci_low"], frame["ci_high"], strict=True)
    ]
    return out


def write_csv(res: Result, path: str | Path) -> Path:
    """The tidy frame (`to_dataframe`) as CSV at `path`, written atomically; floats round-trip."""
    out = Path(path)
    if out.is_dir():
        raise InterpError(f"path={out} is a directory; give a file such as {out}/table.csv.")
    if out.suffix.lower() not in (".csv", ""):
        raise InterpError(f"{out.name}: to_csv writes CSV; give a path ending in .csv.")
    buf = io.StringIO()
    res.to_dataframe().to_csv(buf, index=False, float_format="%.17g")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, buf.getvalue())
    return out
