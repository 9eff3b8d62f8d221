"""Views of the steering family (interp.viz.steering): what each figure draws, from real results
on the embedded organism, and that every string reaches plotly (and the report) as text."""

from __future__ import annotations

import dataclasses

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import interp
from interp.errors import InterpError
from interp.results.steering import GenerationsResult, ScorecardResult, SteeringResult
from interp.viz import steering as V
from interp.viz.html import result_html

EVIL = "<script>alert(1)</script> lives in Rome. True or false? A:"
BOLD = "<b>x</b>"


@pytest.fixture(scope="module")
def made() -> dict[str, object]:
    m = interp.load_model("organism", device="cpu")
    tr = interp.tasks.facts(m, n=64, seed=1, kind="statements", split="train")
    ev = interp.tasks.facts(m, n=32, seed=2, kind="statements", split="eval")
    d = interp.steering.direction(m, tr, at="resid_post", layer=2)
    neutral = interp.steering.neutral_prompts(m, n=8)
    res = interp.steering.evaluate(
        m, ev, [d], alphas=[2, 8], neutral=neutral, positions="last", n_random=5,
        progress=False, n_boot=100,
    )  # fmt: skip
    card = interp.steering.targets(m, ev, over="layers", progress=False, n_boot=50)
    ver = card.verify(k=1, alphas=[2, 8], progress=False, n_boot=50)
    d4 = interp.steering.direction(m, tr, at="resid_post", layer=3, method="probe")
    two = interp.steering.evaluate(
        m, ev, [d, d4], alphas=[1, 4, 16], kl=False, positions="last", n_random=3,
        progress=False, n_boot=50,
    )  # fmt: skip
    g = interp.steering.compare(
        m, [*ev.clean_prompts[:2], EVIL], d, alphas=[0, 4], max_new_tokens=3
    )
    return {"res": res, "two": two, "card": card, "ver": ver, "g": g}


def _np(x: object) -> np.ndarray:
    return np.asarray(x, dtype=float)


# ----------------------------------------------------------------- effect against strength
def test_strength_figure_draws_each_direction_and_the_random_band(made):
    res: SteeringResult = made["res"]
    fig = res.plot()
    k = res.coords["metric"].index("effect")
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == [V.RANDOM_NAME, "mean_diff resid_post:L2"]
    band, line = fig.data
    # The band: max over seeds out along the strengths, min back.
    assert band.fill == "toself"
    assert res.random is not None
    r = res.random[0, :, :, k]
    want = np.concatenate([r.max(-1).values.numpy(), r.min(-1).values.numpy()[::-1]])
    np.testing.assert_allclose(_np(band.y), want, rtol=1e-6)
    assert list(band.x) == [2.0, 8.0, 8.0, 2.0]
    # The direction: its values with their bootstrap interval as error bars.
    assert list(line.x) == [2.0, 8.0]
    v = res.values[0, :, k].numpy()
    np.testing.assert_allclose(_np(line.y), v, rtol=1e-6)
    assert res.ci_low is not None and res.ci_high is not None
    np.testing.assert_allclose(_np(line.error_y.array), res.ci_high[0, :, k].numpy() - v, rtol=1e-5)
    np.testing.assert_allclose(
        _np(line.error_y.arrayminus), v - res.ci_low[0, :, k].numpy(), rtol=1e-5
    )
    assert fig.layout.xaxis.title.text == "strength (sigma units)"
    assert fig.layout.yaxis.title.text == "Δ logit diff (target − other)"
    assert fig.layout.title.text == res.title
    assert fig.layout.shapes[0].y0 == 0.0  # unsteered: no change


def test_strength_figure_other_metrics(made):
    res: SteeringResult = made["res"]
    k = res.coords["metric"].index("kl")
    fig = res.plot(metric="kl", title="custom")
    assert fig.layout.yaxis.title.text == "KL on neutral text (nats)"
    assert fig.layout.title.text == "custom"
    np.testing.assert_allclose(_np(fig.data[1].y), res.values[0, :, k].numpy(), rtol=1e-6)
    rate = res.plot(metric="target_rate")
    assert rate.layout.shapes[0].y0 == pytest.approx(res.baseline["target_rate"])
    with pytest.raises(InterpError, match="Unknown metric 'nope'"):
        res.plot(metric="nope")
    no_neutral = dataclasses.replace(res, values=res.values.clone())
    no_neutral.values[..., k] = float("nan")
    with pytest.raises(InterpError, match="neutral"):
        no_neutral.plot(metric="kl")


def test_strength_figure_with_two_directions(made):
    two: SteeringResult = made["two"]
    fig = two.plot(metric="flip_rate", log_x=True)
    assert fig.layout.xaxis.type == "log"
    bands = [t for t in fig.data if t.name == V.RANDOM_NAME]
    lines = [t for t in fig.data if t.name != V.RANDOM_NAME]
    assert len(bands) == 2 and [b.showlegend for b in bands] == [True, False]
    assert [t.name for t in lines] == list(two.coords["direction"])
    assert lines[0].line.color != lines[1].line.color
    k = two.coords["metric"].index("flip_rate")
    for i, t in enumerate(lines):
        np.testing.assert_allclose(_np(t.y), two.values[i, :, k].numpy(), rtol=1e-6)
        assert list(t.x) == [1.0, 4.0, 16.0]
    assert fig.layout.yaxis.title.text == V.METRIC_LABELS["flip_rate"]
    # Without neutral text the frontier uses the task's own KL, with every random control.
    front = two.plot_frontier()
    assert front.layout.xaxis.title.text == "KL at the answer position (nats)"
    assert len(front.data[0].x) == 2 * 3 * 3


# ----------------------------------------------------------------- effect against KL
def test_frontier_puts_effect_against_kl(made):
    res: SteeringResult = made["res"]
    fig = res.plot_frontier()
    m = res.coords["metric"]
    rand, line = fig.data
    assert rand.name == V.RANDOM_NAME and rand.mode == "markers"
    assert len(rand.x) == 1 * 2 * 5  # direction x alpha x seed
    assert rand.marker.color == V.GREY
    np.testing.assert_allclose(_np(line.x), res.values[0, :, m.index("kl")].numpy(), rtol=1e-6)
    np.testing.assert_allclose(_np(line.y), res.values[0, :, m.index("effect")].numpy(), rtol=1e-6)
    assert list(line.text) == ["α = 2", "α = 8"]
    assert fig.layout.xaxis.title.text == "KL on neutral text (nats)"


def test_frontier_falls_back_to_the_task_kl(made):
    res: SteeringResult = made["res"]
    m = res.coords["metric"]
    values = res.values.clone()
    values[..., m.index("kl")] = float("nan")
    fig = dataclasses.replace(res, values=values, random=None).plot_frontier()
    assert len(fig.data) == 1
    np.testing.assert_allclose(
        _np(fig.data[0].x), res.values[0, :, m.index("task_kl")].numpy(), rtol=1e-6
    )
    assert fig.layout.xaxis.title.text == "KL at the answer position (nats)"


# ----------------------------------------------------------------- scorecard and verification
def test_scorecard_table(made):
    card: ScorecardResult = made["card"]
    fig = card.plot()
    (table,) = fig.data
    assert table.type == "table"
    header = list(table.header.values)
    sources = [s for s in card.coords["source"] if s != "merged"]
    assert header[:3] == ["<b>unit</b>", "<b>site</b>", "<b>rank<br>merged</b>"]
    assert len(header) == 3 + 2 * len(sources)
    cols = [list(c) for c in table.cells.values]
    ranking = card.ranking()
    assert cols[0] == list(ranking["unit"])
    assert cols[2] == [f"{v:.3g}" for v in ranking["rank_merged"]]
    assert cols[2][0] == "1"
    assert cols[4] == [f"{v:.3g}" for v in ranking[f"score_{sources[0]}"]]
    assert len(card.plot(k=2).data[0].cells.values[0]) == 2


def test_verified_scorecard_table_adds_the_realised_effect(made):
    ver: ScorecardResult = made["ver"]
    fig = ver.plot()
    header = [h.removeprefix("<b>").removesuffix("</b>") for h in fig.data[0].header.values]
    assert header[-4:] == ["group", "effect", "KL<br>(nats)", "effect<br>per KL"]
    cols = dict(zip(header, [list(c) for c in fig.data[0].cells.values], strict=True))
    table = ver.verification.set_index("unit")
    for i, unit in enumerate(cols["unit"]):
        assert cols["group"][i] == table.loc[unit, "group"]
        assert cols["effect"][i] == f"{table.loc[unit, 'effect']:.3g}"
    assert cols["group"][0] == "top"
    assert "α = 2" in fig.layout.title.text


def test_verification_figure(made):
    card: ScorecardResult = made["card"]
    ver: ScorecardResult = made["ver"]
    with pytest.raises(InterpError, match=r"\.verify\(k=\.\.\.\) first"):
        card.plot_verification()
    fig = ver.plot_verification()
    sources = [str(s) for s in ver.coords["source"]]  # ends with "merged"
    titles = [a.text for a in fig.layout.annotations]
    assert titles == [f"{s} (ρ = {ver.correlations[s]:.2f})" for s in sources]
    assert len(titles) == len(sources)
    # Every steered unit appears once per panel, at its realised effect.
    table = ver.verification.set_index("unit")
    per_panel: dict[str, list[str]] = {}
    for t in fig.data:
        per_panel.setdefault(t.xaxis, []).extend(t.hovertext)
        for u, y in zip(t.hovertext, t.y, strict=True):
            assert y == pytest.approx(table.loc[u, "effect"])
    assert len(per_panel) == len(sources)
    assert all(sorted(units) == sorted(table.index) for units in per_panel.values())
    top = [t for t in fig.data if t.name == "top units"]
    assert top and list(top[0].hovertext) == ver.verify_summary["top"]
    last = f"xaxis{len(sources)}"
    assert fig.layout[last].autorange == "reversed"  # merged rank: 1 (best) on the right


# ----------------------------------------------------------------- generations
def test_generations_table_shows_markup_as_text(made):
    g: GenerationsResult = made["g"]
    assert g.prompts[-1] == EVIL
    fig = g.plot()
    (table,) = fig.data
    assert list(table.header.values) == [
        "<b>prompt</b>",
        "<b>α = 0 (unsteered)</b>",
        "<b>α = 4</b>",
    ]
    prompts, *columns = (list(c) for c in table.cells.values)
    assert prompts[-1] == "&lt;script&gt;alert(1)&lt;/script&gt; lives in Rome. True or false? A:"
    assert prompts[0] == g.prompts[0]
    for j, col in enumerate(columns):
        assert len(col) == 3
        for i, cell in enumerate(col):
            assert cell.startswith(g.texts[i][j].replace("<", "&lt;") or "<i>(empty)</i>")
            assert f"log p/token {float(g.values[i, j]):.2f}" in cell
    everything = str(fig.to_dict())
    assert "<script>" not in everything and "&lt;script&gt;" in everything


def test_generations_with_hostile_continuations():
    g = GenerationsResult(
        values=torch.tensor([[-1.0, float("nan")]]),
        dims=("prompt", "alpha"),
        coords={"prompt": [0], "alpha": [0.0, -2.5]},
        prompts=[BOLD],
        texts=[["<img src=x onerror=alert(1)>\nnext", ""]],
        title=BOLD,
    )
    fig = g.plot(fluency=False)
    header = list(fig.data[0].header.values)
    assert header[2] == "<b>α = -2.5</b>"
    cells = [list(c) for c in fig.data[0].cells.values]
    assert cells == [
        ["&lt;b&gt;x&lt;/b&gt;"],
        ["&lt;img src=x onerror=alert(1)&gt;<br>next"],
        ["<i>(empty)</i>"],
    ]
    assert fig.layout.title.text == "&lt;b&gt;x&lt;/b&gt;"


def test_labels_reach_plotly_as_text(made):
    res: SteeringResult = made["res"]
    evil = dataclasses.replace(
        res, coords={**res.coords, "direction": [BOLD]}, title=BOLD, sites=[BOLD]
    )
    for fig in (evil.plot(), evil.plot_frontier()):
        names = [t.name for t in fig.data]
        assert "&lt;b&gt;x&lt;/b&gt;" in names and BOLD not in names
        assert fig.layout.title.text.endswith("&lt;b&gt;x&lt;/b&gt;")
    band = evil.plot().data[0]
    assert "<b>" not in band.text
    card: ScorecardResult = made["ver"]
    units = [BOLD, *card.coords["unit"][1:]]
    ver = card.verification.replace({"unit": {card.coords["unit"][0]: BOLD}})
    evil_card = dataclasses.replace(
        card, coords={**card.coords, "unit": units}, verification=ver, title=BOLD
    )
    cells = str([list(c) for c in evil_card.plot().data[0].cells.values])
    assert "&lt;b&gt;x&lt;/b&gt;" in cells and BOLD not in cells
    hover = [u for t in evil_card.plot_verification().data for u in t.hovertext]
    assert "&lt;b&gt;x&lt;/b&gt;" in hover and BOLD not in hover


# ----------------------------------------------------------------- notebook and report
def test_results_render_in_notebooks_and_the_report(made, tmp_path):
    items = [made["res"], made["card"], made["ver"], made["g"]]
    for r in items:
        page = result_html(r)
        assert "plotly-graph-div" in page and "metadata" in page
    assert "prompts" in result_html(made["g"])  # the declared fields in the metadata panel
    path = interp.report(items, tmp_path / "steering.html", title="steering")
    page = path.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)" in page
    assert "<script>alert" not in page
    assert page.lower().count("<script") == 1 + len(items)  # plotly.js, and one per figure
    for r in items:
        assert r.title.replace("'", "&#x27;") in page


def test_malformed_results_fall_back_to_the_default_view():
    vals = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    for cls in (SteeringResult, ScorecardResult, GenerationsResult):
        r = cls(values=vals, dims=("layer", "pos"), title="x")
        assert r.plot().data[0].type == "heatmap"
