"""interp.viz.panels: several figures composed into one lettered grid for a paper."""

from __future__ import annotations

import itertools
import re

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from plotly.subplots import make_subplots

from interp.errors import InterpError
from interp.results.base import Result
from interp.viz.figures import bar, heatmap, line
from interp.viz.panels import BAR_PX, panels
from interp.viz.theme import SIGNED_SCALE, UNSIGNED_SCALE, apply_theme


def _heat(z, labels=("a", "b", "c"), title="heat"):
    z = np.asarray(z, dtype=float)
    return heatmap(z, list(labels[: z.shape[1]]), [f"r{i}" for i in range(z.shape[0])], title=title)


def _bar():
    return bar(np.array([1.0, -0.5, 2.0]), ["p", "q", "r"], title="bars")


def _line(title="lines"):
    x = [0, 1, 2, 3]
    return line(x, {"s1": np.arange(4.0), "s2": np.arange(4.0)[::-1]}, title=title)


def _two_subplots():
    fig = make_subplots(rows=1, cols=2, subplot_titles=["left", "right"])
    fig.add_trace(go.Scatter(x=[1, 2, 3], y=[3, 1, 2], name="one"), row=1, col=1)
    fig.add_trace(go.Bar(x=["u", "v"], y=[2, 5], name="two"), row=1, col=2)
    fig.update_xaxes(title_text="steps", row=1, col=1)
    fig.update_yaxes(autorange="reversed", row=1, col=2)
    fig.add_shape(type="rect", xref="x2 domain", yref="y2 domain", x0=0.1, x1=0.9, y0=0, y1=1)
    fig.add_annotation(text="peak", x=2, y=3, xref="x", yref="y")
    fig.update_layout(title="dropped", width=500, height=300)
    return fig


def _axes(fig):
    lay = fig.layout.to_plotly_json()
    return {k: v for k, v in lay.items() if re.fullmatch(r"[xy]axis\d*", k)}


def _ref(key):
    return key[0] + key[5:]  # "xaxis2" -> "x2"


def _box(fig, traces):
    """Bounding box (x0, x1, y0, y1) of the axes the given traces use."""
    lay = fig.layout
    xs = [lay[_key(t.xaxis)].domain for t in traces]
    ys = [lay[_key(t.yaxis)].domain for t in traces]
    return (
        min(d[0] for d in xs),
        max(d[1] for d in xs),
        min(d[0] for d in ys),
        max(d[1] for d in ys),
    )


def _key(ref):
    return f"{ref[0]}axis{ref[1:]}"


def _valid(fig):
    go.Figure(fig.to_dict())  # plotly validates every property on construction


@pytest.fixture
def four():
    return [_heat([[1.0, -2.0], [0.5, 3.0]]), _bar(), _line(), _two_subplots()]


def test_grid_axes_refs_and_cells(four):
    before = [f.to_json() for f in four]
    fig = panels(four, cols=2)
    assert [f.to_json() for f in four] == before  # sources are not mutated
    _valid(fig)
    axes = _axes(fig)
    # 1 + 1 + 1 + 2 subplots: five x axes and five y axes, all with fresh names
    assert sorted(axes) == sorted([f"{a}axis{n}" for a in "xy" for n in ("", 2, 3, 4, 5)])
    refs = {_ref(k) for k in axes}
    for t in fig.data:
        assert t.xaxis in refs and t.yaxis in refs
    for ax in axes.values():
        assert ax["anchor"] in refs
    for a in fig.layout.annotations:
        for ref in (a.xref, a.yref):
            assert ref == "paper" or ref.split(" ")[0] in refs
    # traces in order: heatmap | bar | 2 lines | scatter + bar of the 2-subplot source
    groups = [fig.data[0:1], fig.data[1:2], fig.data[2:4], fig.data[4:6]]
    boxes = [_box(fig, g) for g in groups]
    for i, (x0, x1, y0, y1) in enumerate(boxes):
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        for j, (u0, u1, v0, v1) in enumerate(boxes):
            if i != j:  # cells never overlap
                assert x1 <= u0 or u1 <= x0 or y1 <= v0 or v1 <= y0
    # row-major: (a) (b) on top, (c) (d) below, columns aligned
    (ax0, _, _, ay1), (bx0, _, _, by1), (cx0, _, _, cy1), (dx0, _, _, dy1) = boxes
    assert ay1 == by1 == 1.0 and cy1 == dy1 < ay1
    assert ax0 == cx0 == 0.0 and bx0 == dx0 > ax0
    # source titles, frames and sliders are dropped; one title-less figure
    assert fig.layout.title.text is None
    texts = [a.text for a in fig.layout.annotations]
    assert "dropped" not in texts and not fig.layout.sliders
    # size from the sources: widest (500) and tallest (300) source, times the grid
    assert fig.layout.height == 2 * 300 and fig.layout.width == 2 * (500 + BAR_PX)


def test_two_subplot_source_keeps_its_axes_at_scaled_domains(four):
    src = four[3]
    fig = panels(four, cols=2)
    scatter, barr = fig.data[4], fig.data[5]
    assert (scatter.xaxis, scatter.yaxis, barr.xaxis, barr.yaxis) == ("x4", "y4", "x5", "y5")
    # the cell of (d): the single-axis line panel (c) has the cell's full width
    w = np.diff(fig.layout.xaxis3.domain)[0]
    x0 = fig.layout.xaxis2.domain[0]  # column 2 starts where (b)'s cell does
    y0, y1 = fig.layout.yaxis3.domain  # row 2
    for new, old in (("xaxis4", "xaxis"), ("xaxis5", "xaxis2")):
        lo, hi = src.layout[old].domain
        assert fig.layout[new].domain == pytest.approx((x0 + lo * w, x0 + hi * w), abs=1e-9)
    for new in ("yaxis4", "yaxis5"):
        assert fig.layout[new].domain == pytest.approx((y0, y1), abs=1e-9)
    # anchors and settings follow the rename
    assert fig.layout.xaxis4.anchor == "y4" and fig.layout.yaxis5.anchor == "x5"
    assert fig.layout.xaxis4.title.text == "steps" and fig.layout.yaxis5.autorange == "reversed"
    # axis-domain shape renamed; data annotation renamed; subplot titles mapped into the cell
    shape = fig.layout.shapes[0]
    assert (shape.xref, shape.yref, shape.x0, shape.x1) == ("x5 domain", "y5 domain", 0.1, 0.9)
    peak = next(a for a in fig.layout.annotations if a.text == "peak")
    assert (peak.xref, peak.yref, peak.x, peak.y) == ("x4", "y4", 2, 3)
    left = next(a for a in fig.layout.annotations if a.text == "left")
    old = next(a for a in src.layout.annotations if a.text == "left")
    assert left.x == pytest.approx(x0 + old.x * w) and left.y == pytest.approx(
        y0 + old.y * (y1 - y0)
    )
    # the heatmap source keeps its category axes, reversed rows
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.xaxis.type == "category"


# the axes whose domains start each cell of `four`, (a) to (d)
CORNERS = [("x", "y"), ("x2", "y2"), ("x3", "y3"), ("x4", "y4")]


def test_letters_and_titles_at_cell_corners(four):
    fig = panels(four, cols=2)
    letters = {a.text: a for a in fig.layout.annotations if re.fullmatch(r"\(\w\)", a.text)}
    assert sorted(letters) == ["(a)", "(b)", "(c)", "(d)"]
    # top-left corner of each cell: where its first x axis starts and its y axis ends
    for name, (xa, ya) in zip("abcd", CORNERS, strict=True):
        note = letters[f"({name})"]
        assert (note.x, note.y) == (fig.layout[_key(xa)].domain[0], fig.layout[_key(ya)].domain[1])
        assert (note.xref, note.yref, note.xanchor, note.yanchor) == (
            "paper",
            "paper",
            "right",
            "bottom",
        )
        assert note.font.weight == "bold" and note.font.size == 15  # theme font 13, a bit larger
    # the 2-subplot source has subplot titles on its top edge: its letter moves up over them
    assert [letters[f"({n})"].yshift for n in "abcd"] == [0, 0, 0, 20]
    assert not [a for a in panels(four, letters=False).layout.annotations if a.text == "(a)"]

    titled = panels(four, cols=2, titles=["A", "B", "C", "D"])
    heads = {a.text: a for a in titled.layout.annotations if a.text in "ABCD"}
    for name, (xa, ya) in zip("ABCD", CORNERS, strict=True):
        note = heads[name]
        assert (note.x, note.y) == (
            titled.layout[_key(xa)].domain[0],
            titled.layout[_key(ya)].domain[1],
        )
        assert note.xanchor == "left" and note.font.weight is None
    # titles get a strip above the second row, clear of the first row's axis titles
    gap = titled.layout.yaxis.domain[0] - titled.layout.yaxis3.domain[1]
    assert gap == pytest.approx(0.08 + 30 / titled.layout.height)
    assert fig.layout.yaxis.domain[0] - fig.layout.yaxis3.domain[1] == pytest.approx(0.08)


def test_shared_colorscale_is_one_signed_axis_with_nan():
    a = _heat([[1.0, np.nan], [-2.0, 3.0]])
    b = _heat([[0.5, -7.5], [np.nan, 4.0]])
    fig = panels([a, b, _line()], shared_colorscale=True)
    _valid(fig)
    cax = fig.layout.coloraxis
    assert cax.cmin == -7.5 and cax.cmax == 7.5 and cax.cmid == 0
    assert cax.colorscale == go.layout.Coloraxis(colorscale=SIGNED_SCALE).colorscale
    heats = [t for t in fig.data if t.type == "heatmap"]
    assert len(heats) == 2
    for t in heats:  # no own scale: one colour bar for the whole figure
        assert t.coloraxis == "coloraxis" and t.colorscale is None and t.zmid is None
        assert t.showscale is None and t.colorbar.x is None
    lay = fig.layout.to_plotly_json()
    assert [k for k in lay if k.startswith("coloraxis")] == ["coloraxis"]
    assert cax.colorbar.x >= max(fig.layout[k].domain[1] for k in _axes(fig) if k[0] == "x")
    assert cax.colorbar.title.text == "value"


def test_shared_colorscale_unsigned_range():
    fig = panels([_heat([[1.0, 2.0]]), _heat([[np.nan, 6.0], [0.5, 3.0]])], shared_colorscale=True)
    cax = fig.layout.coloraxis
    assert (cax.cmin, cax.cmax, cax.cmid) == (0.5, 6.0, None)
    assert cax.colorscale == go.layout.Coloraxis(colorscale=UNSIGNED_SCALE).colorscale


def test_unshared_colour_bar_next_to_each_cell():
    fig = panels([_heat([[1.0, -2.0]]), _line(), _heat([[3.0, 4.0]])], cols=2)
    _valid(fig)
    assert fig.layout.coloraxis.colorscale is None  # no shared axis
    heats = [t for t in fig.data if t.type == "heatmap"]
    assert len(heats) == 2
    for t in heats:
        (_, x1), (y0, y1) = fig.layout[_key(t.xaxis)].domain, fig.layout[_key(t.yaxis)].domain
        cb = t.colorbar
        assert cb.x == x1 and cb.xanchor == "left"
        assert cb.len == pytest.approx(y1 - y0) and cb.lenmode == "fraction"
        assert cb.y == pytest.approx((y0 + y1) / 2)
    # the bar of the left cell sits in the strip before the next column starts
    assert heats[0].colorbar.x < fig.layout.xaxis2.domain[0]
    # each heatmap keeps its own scale: signed one centred, unsigned one not
    assert heats[0].zmid == 0 and heats[1].zmid is None


def test_source_coloraxis_gets_its_own_renamed_axis():
    src = make_subplots(rows=1, cols=2)
    src.add_trace(go.Heatmap(z=[[1, 2]], coloraxis="coloraxis"), row=1, col=1)
    src.add_trace(go.Heatmap(z=[[-3, 2]], coloraxis="coloraxis"), row=1, col=2)
    src.update_layout(coloraxis={"colorscale": "Viridis"})
    fig = panels([_heat([[1.0, 2.0]]), src])
    _valid(fig)
    assert [t.coloraxis for t in fig.data] == [None, "coloraxis", "coloraxis"]
    cb = fig.layout.coloraxis.colorbar
    assert cb.x == fig.layout.xaxis3.domain[1] and cb.len == pytest.approx(1.0)
    shared = panels([_heat([[1.0, 2.0]]), src], shared_colorscale=True)
    assert shared.layout.coloraxis.cmax == 3 and shared.layout.coloraxis.cmin == -3


def test_legends_one_per_panel():
    fig = panels([_line(), _bar(), _two_subplots()], cols=3)
    _valid(fig)
    lines, bars, sub = fig.data[0:2], fig.data[2:3], fig.data[3:5]
    assert {t.legend for t in lines} == {"legend"} and all(t.showlegend for t in lines)
    assert {t.legend for t in sub} == {"legend2"}
    assert bars[0].showlegend is False  # a one-trace panel shows no legend, as on its own
    for name, traces in (("legend", lines), ("legend2", sub)):
        leg = fig.layout[name]
        x1 = max(fig.layout[_key(t.xaxis)].domain[1] for t in traces)
        y1 = max(fig.layout[_key(t.yaxis)].domain[1] for t in traces)
        assert (leg.x, leg.y, leg.xanchor, leg.yanchor) == (x1, y1, "right", "top")
    assert fig.layout.showlegend is True


def test_titles_escaped_once_and_sources_unchanged():
    h = _heat([[1.0, 2.0]], labels=("<b>", "a&b"))
    ln = _line(title="<i>t</i>")
    before = (h.to_json(), ln.to_json(), set(h.__dict__["_interp_escaped"]))
    fig = panels([h, ln], titles=["<b>", "raw & <x>"], shared_colorscale=True)
    _valid(fig)
    assert list(fig.data[0].x) == ["&lt;b&gt;", "a&amp;b"]
    texts = [a.text for a in fig.layout.annotations]
    assert "&lt;b&gt;" in texts and "raw &amp; &lt;x&gt;" in texts
    dump = fig.to_json()
    assert "&amp;lt;" not in dump and "&amp;amp;" not in dump
    assert "&lt;i&gt;" not in dump  # the source title is dropped
    # theming the composite again (a caller's additions) escapes nothing twice
    assert list(apply_theme(fig).data[0].x) == ["&lt;b&gt;", "a&amp;b"]
    assert "raw &amp; &lt;x&gt;" in [a.text for a in fig.layout.annotations]
    # the sources are untouched
    assert (h.to_json(), ln.to_json(), h.__dict__["_interp_escaped"]) == before


def test_bad_input_raises():
    f = _bar()
    with pytest.raises(InterpError, match="at least one"):
        panels([])
    with pytest.raises(InterpError, match="cols"):
        panels([f], cols=0)
    with pytest.raises(InterpError, match="item 1 is a str"):
        panels([f, "not a figure"])
    with pytest.raises(InterpError, match="one title per item"):
        panels([f, f], titles=["only one"])
    with pytest.raises(InterpError, match="list of figures"):
        panels(f)
    with pytest.raises(InterpError, match="spacing"):
        panels([f, f, f], cols=3, spacing=0.6)
    with pytest.raises(InterpError, match="cartesian"):
        panels([go.Figure(go.Scatterpolar(r=[1, 2], theta=[0, 90]))])


def test_result_with_slider_is_static():
    res = Result(values=torch.arange(24.0).reshape(2, 3, 4) - 5, dims=("layer", "pos", "d"))
    src = res.plot()
    assert src.frames and src.layout.sliders  # the source animates over layers
    fig = panels([res, _bar()], titles=["one", "two"])
    _valid(fig)
    assert not fig.frames and not fig.layout.sliders and not fig.layout.updatemenus
    assert fig.data[0].z.shape == (3, 4)


def test_real_results_compose():
    import interp

    model = interp.load_model("organism")
    res = interp.attribution.direct_logit(model, interp.tasks.induction(model, n=4, seed=0))
    vals = res.values.double().numpy()
    assert vals.min() < 0 < vals.max()  # signed: the shared scale is centred at zero
    fig = panels([res, _line()], shared_colorscale=True)
    _valid(fig)
    heat = fig.data[0]
    assert heat.type == "heatmap" and heat.coloraxis == "coloraxis"
    assert fig.layout.coloraxis.cmax == pytest.approx(np.abs(vals).max())
    assert fig.layout.coloraxis.cmin == pytest.approx(-np.abs(vals).max())
    assert fig.layout.yaxis.autorange == "reversed" and len(_axes(fig)) == 4
    assert [t.xaxis for t in fig.data] == ["x", "x2", "x2"]
    own = panels([res, _line()])
    assert own.data[0].colorbar.x == own.layout.xaxis.domain[1]
    assert list(own.data[0].y) == [f"L{i}" for i in range(vals.shape[0])]


def test_print_layout_sizes_gaps_for_the_paper_text_and_exports_at_that_size():
    figs = [
        heatmap(np.array([[1.0, -2.0], [0.5, 3.0]]), ["a", "b"], ["L0", "L1"]) for _ in range(3)
    ]
    fig = panels(figs, cols=3, width="double", height=2.4)
    printed = fig.layout.meta["interp_print"]
    assert printed["width_in"] == 6.9 and printed["height_in"] == 2.4
    assert fig.layout.width == pytest.approx(6.9 * 96)
    xs = sorted((ax.domain[0], ax.domain[1]) for ax in fig.select_xaxes())
    font_px = 8 * 96 / 72
    for (_, right), (left, _) in itertools.pairwise(xs):
        # the next cell starts after a colour-bar strip and a gap, both sized in text heights
        assert (left - right) * fig.layout.width == pytest.approx(11 * font_px, rel=1e-3)
    from interp.viz.export import prepare

    _ready, settings = prepare(fig, "pdf")
    assert settings["width_in"] == 6.9 and settings["height_in"] == 2.4
    _, wider = prepare(fig, "pdf", width="ieee-wide")
    assert wider["width_in"] == 7.16  # an explicit width still wins
    with pytest.raises(InterpError, match="give width="):
        panels(figs, height=2.0)
