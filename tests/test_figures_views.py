"""Every view of every result type the demo makes exports to PNG, SVG and PDF, offline.

The demo runs once (about 30 s on the organism) and its results are kept; one Chromium then
writes every view in every format."""

from __future__ import annotations

import shutil
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import interp
import interp.results
from interp.results.base import _REGISTRY, Result
from interp.viz import export_session
from interp.viz.metadata import read_embedded, sidecar_path
from interp.viz.paper import default_width, inches

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium; ./dev test installs it"
)
# Kinds the demo does not produce on the organism; their views are exercised elsewhere.
NOT_IN_DEMO = {"result"}


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory) -> list[Result]:
    from interp.demo.run import demo_results

    results = demo_results("organism", tmp_path_factory.mktemp("demo"), n=8, seed=0)
    # The demo ablates no heads; one ablation sweep completes the set of result types.
    model = interp.load_model("organism")
    task = interp.tasks.induction(model, n=8, seed=0)
    results.append(interp.attribution.ablate(model, task, n_boot=200))
    return results


def _nonblank_png(path: Path) -> tuple[int, int]:
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    with Image.open(path) as im:
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 8  # axes, text and data, not a blank page
    return w, h


def test_the_demo_covers_every_result_type(demo_results):
    kinds = {r.kind for r in demo_results}
    # Result types interp defines (tests register their own subclasses too).
    ours = {k for k, cls in _REGISTRY.items() if cls.__module__.startswith("interp.")}
    assert ours - kinds - NOT_IN_DEMO == set()


def test_every_view_exports_in_every_format(demo_results, tmp_path):
    from pypdf import PdfReader

    written = 0
    with export_session():
        for i, res in enumerate(demo_results):
            for view in type(res).views():
                # One column, or the text width for tables and wide figures (paper theme).
                want = None if view == "attention" else inches(default_width(getattr(res, view)()))
                for fmt in ("png", "svg", "pdf"):
                    if view == "attention" and fmt == "svg":
                        continue  # an HTML widget: PNG and PDF only (tested with attention)
                    path = res.save_figure(tmp_path / f"{i:02d}_{view}.{fmt}", view=view)
                    written += 1
                    assert read_embedded(path)["figure"]["kind"] == res.kind
                    assert sidecar_path(path).is_file()
                    if fmt == "png":
                        w, _ = _nonblank_png(path)
                        if want is not None:
                            assert w == round(want * 300)  # 300 dpi
                    elif fmt == "svg":
                        root = ET.fromstring(path.read_bytes())
                        assert float(root.get("width")) == pytest.approx(want * 96)
                        drawn = {e.tag.split("}")[1] for e in root.iter()}
                        assert {"text", "path"} & drawn  # marks or a table's cells were drawn
                    else:
                        pages = PdfReader(path).pages
                        assert len(pages) == 1
                        if want is not None:
                            assert float(pages[0].mediabox.width) == pytest.approx(want * 72)
    n_views = sum(len(type(r).views()) for r in demo_results)
    assert written >= 2 * n_views


def test_result_types_list_their_views():
    assert interp.results.TrajectoryResult.views()[0] == "plot"
    assert "plot_frontier" in interp.results.SteeringResult.views()
    assert "attention" in interp.results.AttentionResult.views()
    assert interp.results.DLAResult.views() == ("plot",)
