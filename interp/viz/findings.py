"""One sentence per result saying what it found: its top units, in words, for the report's summary.

``finding(res)`` is plain text (the report escapes it). Units are named as the views name them
(``L3H5`` for a head, ``L3`` for a layer, a position by its token label), values get three
significant digits with their sign, and the first unit its 95% interval where the result has
one. Types whose ranking of single cells means nothing (attention probabilities, generations)
get no sentence; types with declared summary fields (probes, steering, scorecards, trajectories)
are described through those fields rather than through `Result.top`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch

from interp.nodes import head_label, is_index, layer_label
from interp.results.attribution import AttentionResult, LogitLensResult
from interp.results.base import Result
from interp.results.patching import AtPResult
from interp.results.probes import ProbeResult
from interp.results.steering import GenerationsResult, ScorecardResult, SteeringResult
from interp.results.trajectories import TrajectoryResult

#: How each `rank_by` orders the listed units, in words: before and after the value label.
ORDER = {"abs": ("largest", " by magnitude"), "desc": ("highest", ""), "asc": ("lowest", "")}
_HEAD_DIMS = ("head", "kv_head")


def number(value: float, signed: bool = True) -> str:
    """`value` with three significant digits (trailing zeros kept: ``5.50``), ``+`` on positive
    numbers when `signed`; ``nan`` / ``+inf`` for the non-finite."""
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return ("+inf" if signed else "inf") if v > 0 else "-inf"
    mantissa, e, exp = f"{v:#.3g}".partition("e")
    text = mantissa.rstrip(".") + e + exp  # "#" keeps "5.50" but also writes "100."
    return f"+{text}" if signed and v > 0 else text


def _interval(lo: Any, hi: Any) -> str:
    if lo is None or hi is None or not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
        return ""
    return f" [{number(lo, signed=False)}, {number(hi, signed=False)}]"


def unit_name(res: Result, row: pd.Series, dims: Sequence[str] | None = None) -> str:
    """The cell of `row` (a row of ``res.to_dataframe()``) as the views write it: ``L3H5``,
    ``L2 pos 10 'many'``, a component or node-set label as it is; `dims` (default: every axis)
    are the axes to name."""
    dims = list(res.dims if dims is None else dims)
    parts: list[str] = []
    head = next((d for d in _HEAD_DIMS if d in dims), None)
    if "layer" in dims and is_index(row["layer"]):
        if head is not None and is_index(row[head]):
            parts.append(head_label(row["layer"], row[head]))
            dims.remove(head)
        elif row.get("layer_label") == "embed":  # probes and the logit lens: before block 0
            parts.append("embed")
        else:
            parts.append(layer_label(row["layer"]))
        dims.remove("layer")
    for d in dims:
        text = str(row[f"{d}_label"] if f"{d}_label" in row else row[d])
        # A string coordinate names itself (a component, a node set); an index needs its axis.
        parts.append(text if isinstance(row[d], str) else f"{d} {text}")
    return " ".join(parts) if parts else "value"


def _listing(
    res: Result,
    rows: pd.DataFrame,
    signed: bool = True,
    name: Callable[[pd.Series], str] | None = None,
) -> str:
    """``L3H4 +4.02 [2.95, 5.09], L3H1 +3.58, ...``: the interval on the first unit only."""
    items = []
    # Records, not iterrows: a row of an all-numeric frame would turn layer 3 into 3.0.
    for i, record in enumerate(rows.to_dict("records")):
        row = pd.Series(record, dtype=object)
        unit = name(row) if name is not None else unit_name(res, row)
        text = f"{unit} {number(row['value'], signed)}"
        if i == 0 and "ci_low" in row:
            text += _interval(row["ci_low"], row["ci_high"])
        items.append(text)
    return ", ".join(items)


def _value_label(res: Result) -> str | None:
    label = res.meta.get("value_label") or getattr(res, "value_label", None)
    return str(label or res.meta.get("metric") or "") or None


def _ranked(res: Result, k: int) -> str | None:
    """The generic sentence: the result's own ranking (`Result.top`, honouring `rank_by`)."""
    rows = res.top(k)
    rows = rows[rows["value"].notna()]
    if rows.empty:
        return None
    first, last = ORDER.get(type(res).rank_by, ("top", ""))
    what = f"{first} {_value_label(res) or 'values'}{last}"
    return f"{res.title or res.kind}, {what}: {_listing(res, rows)}."


def _atp(res: AtPResult, k: int) -> str | None:
    text = _ranked(res, k)
    agree = res.agreement
    if text is None or not agree or "spearman" not in agree:
        return text
    recall = ""
    if "top_k_recall" in agree and "k" in agree:
        recall = f", top-{agree['k']} recall {number(agree['top_k_recall'], signed=False)}"
    return f"{text[:-1]}; Spearman with exact patching {number(agree['spearman'])}{recall}."


def _probe(res: ProbeResult, k: int) -> str | None:
    """The best layer (or heads) by the main metric, with the control and selectivity."""
    if res.dims[-1] != "metric" or not res.coords["metric"]:
        return None
    main = res.main_metric
    df = res.to_dataframe()
    df = df[(df["metric"] == main) & df["value"].notna()]
    if df.empty:
        return None

    def unit(row: pd.Series) -> str:
        if res.over == "heads":
            return unit_name(res, row, [d for d in res.dims if d != "metric"])
        # A layer sweep's layer n is read after n blocks (0: the embedding), unlike a block's
        # L3 elsewhere: its own figure writes "layer (blocks applied)".
        return "embed" if row.get("layer_label") == "embed" else f"layer {row['layer']}"

    n_test = res.split.get("n_test")
    about = [main] + ([f"{n_test} held-out examples"] if n_test else [])
    if res.over == "layers":
        about.append("layer n = after n blocks")
    head = f"{res.title or res.kind} ({', '.join(about)})"
    at = df[df["layer"] == res.best_layer] if res.over == "layers" else df.iloc[:0]
    if at.empty:  # heads, or a layer sweep without its best layer: the best units
        rows = df.sort_values("value", ascending=False, kind="stable").head(k)
        return f"{head}, highest: {_listing(res, rows, False, unit)}."
    row = at.iloc[0]
    text = f"{head}: best {unit(row)} {number(row['value'], False)}"
    text += _interval(row.get("ci_low"), row.get("ci_high"))
    metrics = [str(m) for m in res.coords["metric"]]
    li = res.coords["layer"].index(row["layer"])
    for name, signed in (("control_accuracy", False), ("selectivity", True)):
        if name in metrics:
            value = float(res.metric(name)[li])
            text += f", {name.replace('_', ' ')} {number(value, signed)}"
    steps = [
        f"{what} at {unit(df[df['layer'] == layer].iloc[0])}"
        for what, layer in (("first jumps", res.jump_layer), ("plateaus", res.plateau_layer))
        if layer is not None and (df["layer"] == layer).any()
    ]
    return text + (f"; {' and '.join(steps)}" if steps else "") + "."


def _steering(res: SteeringResult, k: int) -> str | None:
    """Each direction's effect at the largest strength, beside the random directions' band."""
    if res.dims != ("direction", "alpha", "metric") or "effect" not in res.coords["metric"]:
        return None
    alphas = [float(a) for a in res.coords["alpha"]]
    j = max(range(len(alphas)), key=alphas.__getitem__)
    m = res.coords["metric"].index("effect")
    eff = res.values[:, j, m].double()
    order = torch.argsort(torch.nan_to_num(eff, nan=-math.inf), descending=True)[:k].tolist()
    band = res.random_band("effect") if res.random is not None else None
    parts = []
    for i in order:
        value = float(eff[i])
        text = f"{res.label('direction', i)} {number(value)}"
        if res.ci_low is not None and res.ci_high is not None:
            text += _interval(float(res.ci_low[i, j, m]), float(res.ci_high[i, j, m]))
        if band is not None:
            lo, hi = float(band[0][i, j]), float(band[2][i, j])
            where = "above" if value > hi else "below" if value < lo else "within"
            text += f", {where} the random directions' {number(lo)} to {number(hi)}"
        parts.append(text)
    return (
        f"{res.title or res.kind}: effect at the largest strength ({alphas[j]:g} "
        f"sigma): {'; '.join(parts)}."
    )


def _scorecard(res: ScorecardResult, k: int) -> str | None:
    """The top units by merged rank, and what steering them did if the card was verified."""
    if res.dims != ("unit", "source") or "merged" not in res.coords["source"]:
        return None
    text = f"{res.title or res.kind}, best merged rank: {', '.join(res.top_units(k))}"
    s = res.verify_summary
    keys = ("alpha", "k", "top_abs_effect", "random_abs_effect", "top_over_random")
    if s and all(key in s for key in keys):
        text += (
            f"; steered at {float(s['alpha']):g} sigma, the top {s['k']} move the answer "
            f"by {number(s['top_abs_effect'], False)} on average (absolute effect), "
            f"{s['k']} random units by {number(s['random_abs_effect'], False)} "
            f"(ratio {number(s['top_over_random'], False)})"
        )
    return text + "."


def _trajectories(res: TrajectoryResult, k: int) -> str | None:
    """The signals that best predict right answers (ROC-AUC), with the shuffled-label null."""
    if res.dims != ("signal", "metric") or "auroc" not in res.coords["metric"]:
        return None
    table = res.auroc().dropna(subset=["auroc"])
    if table.empty:
        return None
    top = table.sort_values("auroc", ascending=False, kind="stable").head(k)
    items = []
    for i, (_, row) in enumerate(top.iterrows()):
        text = f"{row['signal']} {number(row['auroc'], signed=False)}"
        if i == 0:
            text += _interval(row["auroc_low"], row["auroc_high"])
            if math.isfinite(row["null_auroc"]):
                text += f" (shuffled labels {number(row['null_auroc'], signed=False)})"
        items.append(text)
    return f"{res.title or res.kind}, highest ROC-AUC: {', '.join(items)}."


def _logit_lens(res: LogitLensResult, k: int) -> str | None:
    """Where the answer becomes likely at the answer position (relative position 0)."""
    metrics, pos = res.coords.get("metric", []), res.coords.get("pos", [])
    if res.dims != ("metric", "layer", "pos") or "target_prob" not in metrics or 0 not in pos:
        return None
    probs = res.values[metrics.index("target_prob"), :, pos.index(0)].tolist()
    names = [str(res.label("layer", i)) for i in range(len(probs))]
    first = next((i for i, p in enumerate(probs) if p > 0.5), None)
    text = f"{res.title or res.kind}: the answer's mean probability at the answer position is "
    text += f"{number(probs[-1], signed=False)} after {names[-1]} (the last layer)"
    if first is None:
        return text + ", never above 0.5."
    if first == len(probs) - 1:
        return text + ", above 0.5 there only."
    return text + f", first above 0.5 after {names[first]} ({number(probs[first], False)})."


_SPECIFIC: dict[type[Result], Callable[[Any, int], str | None]] = {
    AtPResult: _atp,
    ProbeResult: _probe,
    SteeringResult: _steering,
    ScorecardResult: _scorecard,
    TrajectoryResult: _trajectories,
    LogitLensResult: _logit_lens,
}
#: Results with nothing to rank: single attention probabilities, generated texts.
_NOTHING = (AttentionResult, GenerationsResult)


def finding(res: Result, k: int = 3) -> str | None:
    """What `res` found, in one sentence of plain text; None where nothing ranks.

    Args:
        res: any result.
        k: how many units to name.
    """
    if isinstance(res, _NOTHING) or res.values.numel() == 0:
        return None
    for kind in type(res).__mro__:
        if kind in _SPECIFIC:
            return _SPECIFIC[kind](res, k)
    if not type(res).show_top:  # the type says a ranking of its cells means nothing
        return None
    return _ranked(res, k)
