"""The circuitsvis attention view exported as PNG and PDF through headless Chromium: real
pixels and pages of the size of the view, the result's metadata beside and inside the file,
and clear errors (no SVG, no Chromium) before anything is written."""

from __future__ import annotations

import io
import json
import shutil

import pytest

import interp
from interp.errors import InterpError
from interp.viz.attention import FIGURE_WIDTH, save_attention_figure
from interp.viz.metadata import read_embedded, sidecar_path

needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="exporting the attention view needs Debian's chromium; ./dev test installs it",
)
# Tokens as a tokenizer (or a saved result from someone else) could produce them.
ODD_TOKENS = {2: "</script><b>", 3: "héllo wörld 🐱"}


@pytest.fixture(scope="module")
def attention(organism):
    res = interp.attribution.attention_patterns(
        organism, "the cat sat on the mat and the cat", [(0, 0), (1, 1), (2, 3)]
    )
    # The organism's word-level tokenizer maps unknown words to <unk>: put the odd ones in.
    for i, token in ODD_TOKENS.items():
        res.tokens[i] = token
    return res


def _pixels(png: bytes) -> tuple[tuple[int, int], float, int]:
    """Size, fraction of pixels that are not (near) white, number of distinct colours."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    small = img.resize((img.width // 4, img.height // 4))  # fast enough on two cores
    data = list(small.getdata())
    inked = sum(1 for r, g, b in data if min(r, g, b) < 235) / len(data)
    return img.size, inked, len(set(data))


@needs_chromium
def test_png_is_the_rendered_view(attention, tmp_path):
    path = save_attention_figure(attention, tmp_path / "attention.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    side = json.loads(sidecar_path(path).read_text())
    fig = side["figure"]
    assert fig["view"] == "attention" and fig["format"] == "png" and fig["scale"] == 2.0
    assert fig["width_px"] == FIGURE_WIDTH and fig["height_px"] > 300
    size, inked, colours = _pixels(data)
    assert size == (FIGURE_WIDTH * 2, fig["height_px"] * 2)  # content box x scale
    # Drawn: head thumbnails, the zoomed pattern, token labels (a blank page fails both).
    assert inked > 0.15, inked
    assert colours > 50, colours
    assert read_embedded(path)["model"] == attention.meta["model"] == "organism"
    assert fig["kind"] == "attention" and fig["title"] == attention.title
    assert side["params"]["heads"] == [[0, 0], [1, 1], [2, 3]]


@needs_chromium
def test_pdf_is_one_page_of_the_views_size(attention, tmp_path):
    from pypdf import PdfReader

    path = attention.save_figure(tmp_path / "attention.pdf", view="attention")
    fig = json.loads(sidecar_path(path).read_text())["figure"]
    reader = PdfReader(path)
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert float(box.width) == pytest.approx(fig["width_px"] * 0.75, abs=0.5)  # 72 pt / 96 px
    assert float(box.height) == pytest.approx(fig["height_px"] * 0.75, abs=0.5)
    page = reader.pages[0]
    assert "Head Selector" in page.extract_text()  # the widget's own heading: it rendered
    assert len(page.images) >= 4  # the canvases: three head thumbnails and the zoomed pattern
    assert read_embedded(path)["model"] == "organism"


@needs_chromium
def test_scale_sets_the_resolution(attention, tmp_path):
    path = attention.save_figure(tmp_path / "a.png", view="attention", scale=1)
    size, inked, _ = _pixels(path.read_bytes())
    assert size[0] == FIGURE_WIDTH and inked > 0.15


def test_svg_is_refused_before_anything_is_written(attention, tmp_path):
    with pytest.raises(InterpError, match=r"no vector form.*\.png or \.pdf"):
        save_attention_figure(attention, tmp_path / "attention.svg")
    with pytest.raises(InterpError, match=r"png or \.pdf"):
        attention.save_figure(tmp_path / "a.svg", view="attention")
    with pytest.raises(InterpError, match="not an export format"):
        save_attention_figure(attention, tmp_path / "attention.jpg")
    with pytest.raises(InterpError, match="scale"):
        save_attention_figure(attention, tmp_path / "attention.png", scale=0)
    assert list(tmp_path.iterdir()) == []


def test_no_chromium_says_how_to_install_it(attention, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent")
    with pytest.raises(InterpError, match="apt-get install chromium"):
        save_attention_figure(attention, tmp_path / "attention.png")
    with pytest.raises(InterpError, match="BROWSER_PATH"):
        attention.save_figure(tmp_path / "attention.pdf", view="attention")
    assert list(tmp_path.iterdir()) == []
