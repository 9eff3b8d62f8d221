"""Static export: every format valid, paper sizes and fonts exact, metadata carried, clear errors.

Chromium renders through kaleido; one browser serves the module (`export_session`)."""

from __future__ import annotations

import json
import shutil
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

import interp
from interp.errors import InterpError
from interp.viz import export_session, save_figure
from interp.viz.figures import heatmap, line
from interp.viz.metadata import read_embedded, sidecar_path
from interp.viz.paper import PX_PER_IN, inches

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium; ./dev test installs it"
)
SVG = "{http://www.w3.org/2000/svg}"
UNICODE = ["é", "日本", "→", "<b>", "a&b", "Ω"]


@pytest.fixture(scope="module", autouse=True)
def one_browser():
    with export_session():
        yield


def _grid() -> go.Figure:
    z = np.array([[1.5, -2.0, 0.25], [3.0, -0.5, 0.0]])
    return heatmap(z, UNICODE[:3], ["L0", "L1"], title="grid <b>", xlabel="head", ylabel="layer")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _pdf_pages(path: Path) -> list[tuple[float, float]]:
    from pypdf import PdfReader

    reader = PdfReader(path)
    return [(float(p.mediabox.width), float(p.mediabox.height)) for p in reader.pages]


def test_each_format_is_written_and_valid(tmp_path):
    fig = _grid()
    png = save_figure(fig, tmp_path / "f.png", width=3.3, height=2.5)
    svg = save_figure(fig, tmp_path / "f.svg", width=3.3, height=2.5)
    pdf = save_figure(fig, tmp_path / "f.pdf", width=3.3, height=2.5)
    # PNG: 300 dpi at 3.3 x 2.5 in by default in the paper theme.
    assert _png_size(png.read_bytes()) == (990, 750)
    root = ET.fromstring(svg.read_bytes())
    assert root.tag == f"{SVG}svg"
    assert float(root.get("width")) == pytest.approx(3.3 * PX_PER_IN)
    assert float(root.get("height")) == pytest.approx(2.5 * PX_PER_IN)
    # PDF: one page of exactly 3.3 x 2.5 in (72 pt per inch).
    assert _pdf_pages(pdf) == [(pytest.approx(237.6), pytest.approx(180.0))]


def test_unicode_and_markup_labels_survive_export(tmp_path):
    svg = save_figure(_grid(), tmp_path / "u.svg")
    texts = ["".join(t.itertext()) for t in ET.fromstring(svg.read_bytes()).iter(f"{SVG}text")]
    for label in UNICODE[:3]:
        assert label in texts  # shown as typed: "<b>" is text, not bold markup


def test_paper_theme_renders_tick_labels_at_the_requested_size(tmp_path):
    for pt in (8.0, 7.0):
        svg = save_figure(_grid(), tmp_path / f"t{pt}.svg", width="3.3in", font_size=pt)
        root = ET.fromstring(svg.read_bytes())
        assert float(root.get("width")) == pytest.approx(316.8)
        ticks = [
            t
            for g in root.iter(f"{SVG}g")
            if (g.get("class") or "").endswith("tick")
            for t in g.iter(f"{SVG}text")
        ]
        assert len(ticks) >= 5
        for t in ticks:
            size = t.get("style").split("font-size:")[1].split("px")[0]
            assert float(size) == pytest.approx(pt * 96 / 72, abs=0.01)
    # The same settings printed: the PDF page is the requested column width.
    pdf = save_figure(_grid(), tmp_path / "t.pdf", width="3.3in", font_size=8)
    assert _pdf_pages(pdf)[0][0] == pytest.approx(3.3 * 72)


def test_paper_theme_drops_titles_sliders_and_centres_signed_scales(tmp_path):
    fig = _grid()
    fig.data[0].update(zmid=None, zmin=None, zmax=None)  # a caller's uncentred signed heatmap
    svg = save_figure(fig, tmp_path / "p.svg")
    texts = ["".join(t.itertext()) for t in ET.fromstring(svg.read_bytes()).iter(f"{SVG}text")]
    assert "grid <b>" not in texts
    titled = save_figure(_grid(), tmp_path / "titled.svg", title=True)
    got = ["".join(t.itertext()) for t in ET.fromstring(titled.read_bytes()).iter(f"{SVG}text")]
    assert "grid <b>" in got
    from interp.viz.paper import paper_figure

    printed = paper_figure(fig, 3.3, 2.5)
    assert printed.data[0].zmid == 0.0 and printed.data[0].zmax == 3.0
    assert printed.data[0].zmin == -3.0
    assert fig.data[0].zmid is None  # the caller's figure is not modified


def test_screen_theme_keeps_the_figure_size(tmp_path):
    fig = line([0, 1, 2], {"a": np.array([1.0, 2.0, 3.0])}, title="t")
    png = save_figure(fig, tmp_path / "s.png", theme="screen", width=640, height=400)
    assert _png_size(png.read_bytes()) == (1280, 800)  # scale 2 by default on screen


def test_metadata_sidecar_and_embedded_in_every_format(organism, tmp_path):
    task = interp.tasks.induction(organism, n=4, seed=0)
    res = interp.attribution.direct_logit(organism, task, seed=3)
    for fmt in ("png", "svg", "pdf"):
        path = res.save_figure(tmp_path / f"dla.{fmt}")
        side = json.loads(sidecar_path(path).read_text())
        inside = read_embedded(path)
        for record in (side, inside):
            assert record["model"] == "organism"
            assert record["seed"] == 3
            assert record["task"]["name"] == "induction"
            assert record["call"] == "interp.attribution.direct_logit(model, task, seed=3)"
            assert record["versions"]["interp"] == interp.__version__
            assert record["figure"]["format"] == fmt and record["figure"]["view"] == "plot"
        import hashlib

        assert side["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_subplots_and_multi_axis_figures_export(tmp_path):
    fig = make_subplots(rows=1, cols=2)
    fig.add_trace(go.Scatter(x=[0, 1], y=[1, 2]), row=1, col=1)
    fig.add_trace(go.Bar(x=["a", "b"], y=[2, -1]), row=1, col=2)
    pdf = save_figure(fig, tmp_path / "two.pdf", width="double")
    assert _pdf_pages(pdf) == [(pytest.approx(6.9 * 72), pytest.approx(inches(6.9 * 0.45) * 72))]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"path": "f.gif"}, "not an export format"),
        ({"path": "f.pdf", "format": "svg"}, "ends in '.pdf'"),
        ({"path": "f.pdf", "width": "3.3furlongs"}, "give inches"),
        ({"path": "f.pdf", "theme": "dark"}, "theme="),
        ({"path": "f.pdf", "scale": 0}, "scale="),
        ({"path": "f.pdf", "font": "comic"}, "font="),
    ],
)
def test_bad_options_are_refused_before_writing(tmp_path, kw, match):
    path = tmp_path / kw.pop("path")
    with pytest.raises(InterpError, match=match):
        save_figure(_grid(), path, **kw)
    assert list(tmp_path.iterdir()) == []


def test_missing_chromium_says_how_to_install_it(tmp_path, monkeypatch):
    import interp.viz.export as ex

    monkeypatch.setattr(ex, "_ACTIVE", [])  # outside the module's session
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    with pytest.raises(InterpError, match="apt-get install chromium"):
        save_figure(_grid(), tmp_path / "f.pdf")
    monkeypatch.delenv("BROWSER_PATH")
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on PATH either
    monkeypatch.setattr(
        "choreographer.browsers.chromium.Chromium.find_browser", lambda *a, **k: None
    )
    with pytest.raises(InterpError, match="No Chromium found"):
        save_figure(_grid(), tmp_path / "f.pdf")
    assert not any(p.suffix in (".pdf", ".json") for p in tmp_path.iterdir())


def test_a_session_reuses_one_browser(tmp_path, monkeypatch):
    import interp.viz.export as ex

    starts: list[int] = []
    real = ex._Session.__init__

    def counting(self, *a, **k):
        starts.append(1)
        real(self, *a, **k)

    monkeypatch.setattr(ex, "_ACTIVE", [])
    monkeypatch.setattr(ex._Session, "__init__", counting)
    with export_session():
        for i in range(3):
            save_figure(_grid(), tmp_path / f"{i}.svg")
    assert len(starts) == 1
    save_figure(_grid(), tmp_path / "alone.svg")  # outside: its own browser, closed after
    assert len(starts) == 2 and ex._ACTIVE == []


def test_to_latex_and_csv(organism, tmp_path):
    task = interp.tasks.induction(organism, n=4, seed=0)
    res = interp.attribution.direct_logit(organism, task, seed=3)
    top = res.top(3)
    tex = res.to_latex(top=3, precision=2)
    rows = [r for r in tex.splitlines() if r.endswith(r"\\")][1:]
    assert len(rows) == 3
    for row, (_, want) in zip(rows, top.iterrows(), strict=True):
        cells = [c.strip() for c in row.removesuffix(r"\\").split("&")]
        assert cells[0] == str(want["layer"]) and cells[1] == str(want["head"])
        lo, hi = want["ci_low"], want["ci_high"]
        assert cells[-1] == f"{want['value']:.2f} [{lo:.2f}, {hi:.2f}]"
    assert tex.startswith(r"\begin{tabular}") and r"\toprule" in tex
    wrapped = res.to_latex(top=2, caption="Top heads & 50% <b>", label="tab:dla")
    assert r"\caption{Top heads \& 50\% \textless{}b\textgreater{}}" in wrapped
    path = res.to_csv(tmp_path / "dla.csv")
    import pandas as pd

    back = pd.read_csv(path)
    frame = res.to_dataframe()
    assert list(back.columns) == list(frame.columns)
    np.testing.assert_array_equal(back["value"].to_numpy(), frame["value"].to_numpy())
    with pytest.raises(InterpError, match="top="):
        res.to_latex(top=0)


def test_latex_escapes_token_labels():
    from interp.results.tables import latex_text

    assert latex_text("a_b & $x$ 100% #1 {~^} \\") == (
        r"a\_b \& \$x\$ 100\% \#1 \{\textasciitilde{}\textasciicircum{}\} \textbackslash{}"
    )
