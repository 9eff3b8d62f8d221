"""The Result base type: named axes, coordinates, intervals, metadata, and how to show itself."""

from __future__ import annotations

import dataclasses
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from interp.checks import checked
from interp.deprecation import warn_renamed
from interp.errors import InterpError

Coord = str | int | float
#: How `Result.top` orders cells: by magnitude, largest first, or smallest first.
RankBy = Literal["abs", "desc", "asc"]

_REGISTRY: dict[str, type[Result]] = {}


class _Legacy(dict[str, Any]):
    """`extras` / `meta` of a result: a key that became a declared field (or a property computed
    from the fields) still reads, with a DeprecationWarning, for one release
    (``res.extras["components"]`` -> ``res.components``)."""

    def __init__(self, data: dict[str, Any], owner: Result, where: str) -> None:
        super().__init__(data)
        self._owner_type = type(owner)
        self._owner = owner
        self._where = where

    def _field(self, key: str) -> str | None:
        """The declared field, derived property or class flag an old key became; None if none.
        `legacy_names` may name the source too (``"meta:verified"``) where extras and meta
        used one key for two things."""
        names = self._owner_type.legacy_names
        name = names.get(f"{self._where}:{key}", names.get(key, key))
        kind = self._owner_type
        derived = isinstance(getattr(kind, name, None), property) or name in _CLASS_FLAGS
        if name not in kind.declared_fields() and not derived:
            return None
        new = f"type(res).{name}" if name in _CLASS_FLAGS else f".{name}"
        warn_renamed(f'{self._where}["{key}"]', new, kind.__name__, 4)
        return name

    def _value(self, name: str) -> Any:
        return getattr(self._owner_type if name in _CLASS_FLAGS else self._owner, name)

    def __missing__(self, key: str) -> Any:
        name = self._field(key)
        value = None if name is None else self._value(name)
        if value is None and key not in self._owner_type.legacy_always:
            raise KeyError(key)  # the old code wrote no key where the field is unset
        return value

    def __contains__(self, key: object) -> bool:
        # `"best_layer" in res.meta` was True exactly when the analysis set it: a set field.
        if dict.__contains__(self, key) or not isinstance(key, str):
            return dict.__contains__(self, key)
        name = self._field(key)
        if name is None:
            return False
        return key in self._owner_type.legacy_always or self._value(name) is not None

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        name = self._field(key)
        value = None if name is None else self._value(name)
        if value is None and not (name is not None and key in self._owner_type.legacy_always):
            return default
        return value


_PLOTLYJS_SENT = False  # inline plotly.js into the first notebook output only
#: Display flags that lived in `meta` before they became class attributes of the result type.
_CLASS_FLAGS = ("show_top",)


@dataclass
class Result:
    """A tensor with named axes and coordinate labels, plus everything needed to reproduce it.

    Attributes:
        values: the main quantity, one axis per name in `dims`.
        dims: axis names (``layer``, ``head``, ``pos``, ``prompt``, ``metric`` ...).
        coords: per axis, the coordinate of each index (ints for layers/heads, strings for
            metrics); used as the axis column in `to_dataframe`.
        labels: optional per-axis display labels (token strings for positions, ``L3H5`` ...).
        ci_low: optional lower confidence bound, same shape as `values`.
        ci_high: optional upper confidence bound, same shape as `values`.
        extras: further named tensors (raw per-prompt values, baselines ...).
        meta: model, task, metric, parameters, seed, package versions, time.
        title: a human title for plots and reports.
    """

    values: Tensor
    dims: tuple[str, ...]
    coords: dict[str, list[Coord]] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
    ci_low: Tensor | None = None
    ci_high: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    title: str = ""

    kind: ClassVar[str] = "result"
    #: Old `extras`/`meta` keys whose declared field has another name: {old key: field name}.
    legacy_names: ClassVar[dict[str, str]] = {}
    #: Old keys written even when their value was None (read back as None, not as missing).
    legacy_always: ClassVar[tuple[str, ...]] = ()
    #: Sort order for `top(k)`: "abs" (largest magnitude), "desc" or "asc".
    rank_by: ClassVar[RankBy] = "abs"
    #: Whether views (notebook, report, CLI) list the top cells: off where a ranking of single
    #: cells means nothing (a logit-lens table, single attention probabilities).
    show_top: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[cls.kind] = cls

    def __post_init__(self) -> None:
        self.extras = _Legacy(dict(self.extras), self, "extras")
        self.meta = _Legacy(dict(self.meta), self, "meta")
        self.dims = tuple(self.dims)
        if not isinstance(self.values, Tensor):
            self.values = torch.as_tensor(self.values)
        if self.values.ndim != len(self.dims):
            raise InterpError(
                f"values has {self.values.ndim} axes but dims names {len(self.dims)}: {self.dims}."
            )
        if len(set(self.dims)) != len(self.dims):
            raise InterpError(f"Axis names must be unique, got {self.dims}.")
        for i, d in enumerate(self.dims):
            size = self.values.shape[i]
            if d not in self.coords:
                self.coords[d] = list(range(size))
            if len(self.coords[d]) != size:
                raise InterpError(
                    f"Axis {d!r} has {size} entries but {len(self.coords[d])} coords."
                )
            if d in self.labels and len(self.labels[d]) != size:
                raise InterpError(
                    f"Axis {d!r} has {size} entries but {len(self.labels[d])} labels."
                )
        for name, ci in (("ci_low", self.ci_low), ("ci_high", self.ci_high)):
            if ci is not None and ci.shape != self.values.shape:
                raise InterpError(
                    f"{name} shape {tuple(ci.shape)} != values {tuple(self.values.shape)}."
                )

    # ------------------------------------------------------------- access
    @property
    def shape(self) -> dict[str, int]:
        return dict(zip(self.dims, self.values.shape, strict=True))

    def label(self, dim: str, i: int) -> str:
        if dim in self.labels:
            return self.labels[dim][i]
        return str(self.coords[dim][i])

    def sel(self, **where: Coord) -> Tensor:
        """Values at the given coordinates, e.g. ``res.sel(layer=3, head=5)``."""
        unknown = sorted(set(where) - set(self.dims))
        if unknown:
            raise InterpError(
                f"sel: {unknown} are not axes of this result; its axes are {self.dims}."
            )
        index: list[Any] = []
        for d in self.dims:
            if d in where:
                try:
                    index.append(self.coords[d].index(where[d]))
                except ValueError:
                    raise InterpError(
                        f"{where[d]!r} is not a coordinate of axis {d!r}: {self.coords[d]}."
                    ) from None
            else:
                index.append(slice(None))
        return self.values[tuple(index)]

    # ------------------------------------------------------------- tables
    def to_dataframe(self) -> pd.DataFrame:
        """Tidy long form: one row per cell, a column per axis, `value`, and CI columns."""
        cols: dict[str, Any] = {}
        grid = list(itertools.product(*[range(n) for n in self.values.shape]))
        for axis, d in enumerate(self.dims):
            cols[d] = [self.coords[d][g[axis]] for g in grid]
            if d in self.labels:
                cols[f"{d}_label"] = [self.labels[d][g[axis]] for g in grid]
        flat = self.values.detach().cpu().double().reshape(-1).numpy()
        cols["value"] = flat
        if self.ci_low is not None and self.ci_high is not None:
            cols["ci_low"] = self.ci_low.detach().cpu().double().reshape(-1).numpy()
            cols["ci_high"] = self.ci_high.detach().cpu().double().reshape(-1).numpy()
        return pd.DataFrame(cols)

    @checked
    def top(self, k: int = 10, by: RankBy | None = None) -> pd.DataFrame:
        """The k cells with the largest effect (by magnitude unless the result says otherwise)."""
        df = self.to_dataframe()
        order = by or self.rank_by
        if order == "abs":
            idx = np.argsort(
                -np.nan_to_num(np.abs(df["value"].to_numpy()), nan=-np.inf), kind="stable"
            )
        elif order == "desc":
            idx = np.argsort(-np.nan_to_num(df["value"].to_numpy(), nan=-np.inf), kind="stable")
        elif order == "asc":
            idx = np.argsort(np.nan_to_num(df["value"].to_numpy(), nan=np.inf), kind="stable")
        else:  # a subclass's rank_by (or an unchecked `by`) outside RankBy
            raise InterpError(
                f"{type(self).__name__} cannot rank by {order!r}; use 'abs', 'desc' or 'asc'."
            )
        return df.iloc[idx[:k]].reset_index(drop=True)

    # ------------------------------------------------------------- views
    def plot(self, **kw: Any) -> Any:
        """A plotly Figure: bar chart for one axis, heatmap for two, heatmap per slice beyond."""
        from interp.viz.figures import default_figure

        return default_figure(self, **kw)

    @classmethod
    def views(cls) -> tuple[str, ...]:
        """The names of this result's figures: ``plot`` and its other ``plot_*`` methods (and
        ``attention`` where a circuitsvis view exists); each can be saved with `save_figure`."""
        names = sorted(n for n in dir(cls) if n.startswith("plot") and callable(getattr(cls, n)))
        names.remove("plot")
        extra = ("attention",) if hasattr(cls, "circuitsvis_html") else ()
        return ("plot", *names, *extra)

    @checked
    def save_figure(
        self,
        path: str | os.PathLike[str],
        format: str | None = None,
        *,
        view: str = "plot",
        width: float | str | None = None,
        height: float | str | None = None,
        scale: float | None = None,
        theme: Literal["paper", "screen"] | None = "paper",
        font: Literal["sans", "serif"] = "sans",
        font_size: float | None = None,
        title: bool = False,
        **view_kw: Any,
    ) -> Path:
        """Write one view as PNG, SVG or PDF (format from the suffix), offline, with the
        result's metadata in a sidecar ``<file>.json`` and inside the file.

        Args:
            path: ``fig.pdf``, ``fig.svg`` or ``fig.png``.
            view: which figure (`views()`): ``"plot"``, ``"plot_frontier"``, ``"attention"``...
            width, height: paper theme: inches, a length (``"8.4cm"``) or a venue
                (``"single"`` 3.3 in, ``"double"`` 6.9 in, ``"icml"``, ...); screen: px.
            scale: pixel density (PNG; paper PNGs default to 300 dpi, attention views to 2).
            theme: ``"paper"`` (print sizes, no title, see `interp.viz.paper`) or ``"screen"``.
            font: ``"sans"`` or ``"serif"``; font_size: points (default 8).
            title: keep the figure's title (captions belong to the paper, so off by default).
            view_kw: passed to the view method (``metric="flip_rate"``...).
        """
        from interp.viz.export import save_result_figure

        return save_result_figure(
            self,
            path,
            format,
            view=view,
            width=width,
            height=height,
            scale=scale,
            theme=theme,
            font=font,
            font_size=font_size,
            title=title,
            **view_kw,
        )

    @checked
    def to_latex(
        self,
        top: int | None = 10,
        precision: int = 3,
        columns: list[str] | None = None,
        caption: str | None = None,
        label: str | None = None,
    ) -> str:
        """The top cells (every cell with ``top=None``) as a booktabs LaTeX tabular; intervals
        print as ``value [low, high]``; every label is LaTeX-escaped. With `caption` or
        `label`, wrapped in a table environment."""
        from interp.results.tables import latex_table

        return latex_table(self, top, precision, columns, caption, label)

    def to_csv(self, path: str | os.PathLike[str]) -> Path:
        """The tidy frame (`to_dataframe`) as CSV, written atomically; floats round-trip."""
        from interp.results.tables import write_csv

        return write_csv(self, Path(path))

    def _repr_html_(self) -> str:
        global _PLOTLYJS_SENT
        from interp.viz.html import result_html

        html = result_html(self, include_plotlyjs=not _PLOTLYJS_SENT)
        _PLOTLYJS_SENT = True
        return html

    def __repr__(self) -> str:
        shape = ", ".join(f"{d}={n}" for d, n in self.shape.items())
        return f"{type(self).__name__}({self.title or self.kind!r}, {shape})"

    # ------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the result to directory `path` (JSON header + safetensors), atomically."""
        from interp.results.io import save_result

        return save_result(self, path)

    def _field_items(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]

    def field_summary(self) -> dict[str, Any]:
        """The declared fields that print as metadata: numbers, strings, small lists and dicts
        (not tensors or tables), unset ones left out; for the metadata panel of views."""
        out: dict[str, Any] = {}
        for name in self.declared_fields():
            value = getattr(self, name)
            if value is None or isinstance(value, Tensor | pd.DataFrame):
                continue
            if isinstance(value, dict) and any(
                isinstance(v, Tensor | pd.DataFrame) for v in value.values()
            ):
                continue
            if isinstance(value, list | tuple | dict) and len(value) > 20:
                continue  # per-example lists (calibration prompts, tokens) are data, not a summary
            out[name] = value
        return out

    @classmethod
    def declared_fields(cls) -> tuple[str, ...]:
        """The fields a result type adds to the base (its typed data beyond `values`)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in _BASE_FIELDS)

    @classmethod
    def from_legacy(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments of a result saved before its type declared fields: what the old
        code kept in `extras` / `meta` under a field's name moves into that field. Types whose
        old layout needs more (a table kept as a tensor plus column names) extend this."""
        extras = dict(kwargs.get("extras") or {})
        meta = {k: v for k, v in (kwargs.get("meta") or {}).items() if k not in _CLASS_FLAGS}
        old_for = {v: k for k, v in cls.legacy_names.items()}
        for name in cls.declared_fields():
            if name in kwargs:
                continue
            key = old_for.get(name, name)
            if key in extras:
                kwargs[name] = extras.pop(key)
            elif key in meta:
                kwargs[name] = meta.pop(key)
        kwargs["extras"], kwargs["meta"] = extras, meta
        return kwargs


_BASE_FIELDS = frozenset(f.name for f in dataclasses.fields(Result))


def result_class(kind: str) -> type[Result]:
    if kind == Result.kind:
        return Result
    if kind not in _REGISTRY:
        # Result types register on import; import every analysis' results before giving up.
        import interp.results  # noqa: F401

    if kind not in _REGISTRY:
        raise InterpError(f"Unknown result kind {kind!r}; known kinds: {sorted(_REGISTRY)}.")
    return _REGISTRY[kind]
