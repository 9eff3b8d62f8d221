"""The paper theme's layout rules, checked on the figure (no browser needed)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from interp.errors import InterpError
from interp.viz.export import prepare
from interp.viz.figures import bar, heatmap, line
from interp.viz.paper import (
    VENUES,
    default_width,
    inches,
    paper_figure,
    table_font_px,
    table_height,
)
from interp.viz.theme import COLORWAY

PX8 = 8 * 96 / 72


@pytest.mark.parametrize(
    ("text", "want"),
    [(3.3, 3.3), ("3.3in", 3.3), ("8.4cm", 8.4 / 2.54), ("240pt", 240 / 72), ("96px", 1.0)]
    + [(name, w) for name, w in VENUES.items()],
)
def test_lengths_and_venues(text, want):
    assert inches(text) == pytest.approx(want)


@pytest.mark.parametrize("bad", ["3.3furlongs", "", -1, 0, 100, "wide", True])
def test_bad_lengths_say_what_to_give(bad):
    with pytest.raises(InterpError, match="venue"):
        inches(bad)


def test_widths_follow_what_the_figure_needs():
    assert default_width(heatmap(np.ones((4, 8)), [f"H{i}" for i in range(8)], list("abcd"))) == (
        "single"
    )
    assert default_width(go.Figure(go.Table(cells={"values": [[1, 2]]}))) == "double"
    three = make_subplots(rows=1, cols=3)
    for c in (1, 2, 3):
        three.add_trace(go.Scatter(x=[0, 1], y=[0, 1]), row=1, col=c)
    assert default_width(three) == "double"
    words = [[f"w{i}" for i in range(8)]] * 2
    assert (
        default_width(heatmap(np.ones((2, 8)), [str(i) for i in range(8)], ["a", "b"], text=words))
        == "double"
    )
    long = bar(np.arange(14.0), [f"a_long_signal_name_{i}" for i in range(14)])
    assert default_width(long) == "double"
    assert default_width(bar(np.arange(3.0), ["a", "b", "c"])) == "single"


def test_long_category_labels_are_slanted_to_fit():
    fig = bar(np.arange(14.0), [f"signal_{i:02d}" for i in range(14)])
    fig.update_xaxes(tickangle=-35)  # a screen view's angle is redone for print
    printed = paper_figure(fig, 6.9, 3.0)
    assert printed.layout.xaxis.tickangle == -45
    short = paper_figure(bar(np.arange(3.0), ["a", "b", "c"]), 3.3, 2.5)
    assert short.layout.xaxis.tickangle is None


def test_tables_shrink_their_text_to_fit_and_show_every_row():
    header = [f"col {i:02d}" for i in range(14)]  # 6 characters
    cells = [[f"{v:.5f}" for v in np.linspace(0, 1, 30)] for _ in header]  # 7 characters
    fig = go.Figure(go.Table(header={"values": header}, cells={"values": cells}))
    size = table_font_px(fig.data[0], PX8, 6.9 * 96)
    # 14 columns of 7 characters fit 6.9 in only below 8 pt: the size that just fits.
    assert size == pytest.approx((0.97 * 6.9 * 96 - 12 * 14) / (0.56 * 14 * 7), abs=1e-3)
    assert size < PX8
    assert table_height(fig, 8, 6.9) == pytest.approx(
        (2 * 1.9 + 30 * 1.85 + 2) * size / 96, abs=1e-3
    )
    small = go.Figure(go.Table(header={"values": ["a", "b"]}, cells={"values": [[1], [2]]}))
    assert table_font_px(small.data[0], PX8, 3.3 * 96) == pytest.approx(PX8, abs=1e-3)
    ready, settings = prepare(fig, "pdf")
    assert settings["width_in"] == 6.9 and settings["height_in"] == table_height(fig, 8, 6.9)
    assert ready.data[0].cells.font.size == size


def test_single_plot_legends_go_above_and_colours_are_colour_blind_safe():
    fig = line([0, 1, 2], {"a": np.arange(3.0), "b": np.arange(3.0) * 2})
    printed = paper_figure(fig, 3.3, 2.5)
    assert printed.layout.legend.orientation == "h" and printed.layout.legend.y == 1.02
    assert [t.line.color for t in printed.data] == list(COLORWAY[:2])
    assert COLORWAY[:3] == ("#0072B2", "#D55E00", "#009E73")  # Okabe-Ito
    assert all(t.line.width == 1.5 for t in printed.data)


def test_text_above_the_plot_gets_room():
    fig = make_subplots(rows=1, cols=2, subplot_titles=["left", "right"])
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1]), row=1, col=1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[1, 0]), row=1, col=2)
    printed = paper_figure(fig, 6.9, 3.0)
    assert printed.layout.margin.t >= 1.5 * PX8
    assert paper_figure(line([0, 1], {"a": np.arange(2.0)}), 3.3, 2.5).layout.margin.t == 8


def test_tables_with_two_line_cells_get_two_lines_per_row():
    one = go.Figure(go.Table(cells={"values": [["a"] * 4, ["b"] * 4]}))
    two = go.Figure(go.Table(cells={"values": [["a"] * 4, ["b<br><i>c</i>"] * 4]}))
    h1, h2 = table_height(one, 8, 6.9), table_height(two, 8, 6.9)
    assert h2 - h1 == pytest.approx(4 * 2.05 * PX8 / 96, abs=2e-3)  # one more line per row
    many = go.Figure(go.Table(cells={"values": [[str(i) for i in range(2000)]]}))
    assert table_height(many, 8, 6.9) == 9.0  # a page at most
    assert table_font_px(go.Table(), PX8, 300) == PX8  # an empty table is no error


def test_three_d_figures_and_screen_px_strings():
    fig = go.Figure(go.Scatter3d(x=["a", "b"], y=[1, 2], z=[1, 2]))
    assert default_width(fig) == "single"
    assert paper_figure(fig, 3.3, 2.5).layout.width == pytest.approx(316.8)
    _, settings = prepare(line([0, 1], {"a": np.arange(2.0)}), "png", width="700", theme="screen")
    assert settings["width_px"] == 700
