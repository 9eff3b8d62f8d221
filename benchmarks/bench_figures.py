"""Benchmark: exporting the demo's figures with one browser against one browser per figure.

What it measures (one run, one machine): every view of every result the organism demo makes
(about 20 figures), exported as PDF in the paper theme,

* interp: ``with interp.viz.export_session(): res.save_figure(path, view=...)`` for each view:
  one Chromium for all, plus what interp adds per figure (the paper layout, metadata embedded
  in the PDF, the sidecar JSON, atomic writes);
* peer: plotly's ``fig.write_image(path)`` per figure, the call a user would otherwise make,
  on the same paper-laid-out figure at the same size; kaleido starts a new Chromium each call.

MathJax is off on both sides (``plotly.io.defaults.mathjax = None``) so neither reaches for a
CDN. Rounds alternate between the two; the medians are compared. Target: interp at least 5x
faster. Also the absolute time per figure of PNG and SVG export in a session.

Results: ``benchmarks/results/bench_figures.json``.

    python benchmarks/bench_figures.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import plotly.io as pio
from _common import machine_info, stopwatch, write_json_atomic

from interp.results.base import Result
from interp.results.meta import versions
from interp.viz import export_session
from interp.viz.export import prepare

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET = 5.0


def demo_views(out: Path) -> list[tuple[Result, str]]:
    """Every (result, view) of the organism demo; the report itself is not written."""
    from interp.demo.run import demo_results

    results = demo_results("organism", out, n=8, seed=0)
    return [(res, v) for res in results for v in type(res).views() if v != "attention"]


def ours(views: list[tuple[Result, str]], out: Path, fmt: str) -> float:
    with stopwatch() as t, export_session():
        for i, (res, view) in enumerate(views):
            res.save_figure(out / f"ours_{i:02d}.{fmt}", view=view)
    return t.wall_s


def peer(views: list[tuple[Result, str]], out: Path) -> float:
    figs = []
    for res, view in views:  # the same printed layout, built outside the timing
        fig, settings = prepare(getattr(res, view)(), "pdf")
        figs.append((fig, settings))
    with stopwatch() as t:
        for i, (fig, s) in enumerate(figs):
            fig.write_image(
                out / f"peer_{i:02d}.pdf", width=s["width_px"], height=s["height_px"], scale=1
            )
    return t.wall_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    pio.defaults.mathjax = None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        views = demo_views(out / "demo")
        n = len(views)
        print(f"{n} figures from the demo", file=sys.stderr)
        ours(views[:2], out, "pdf")  # warm-up: imports, fonts, the first browser start
        interp_s, peer_s = [], []
        for r in range(args.rounds):
            interp_s.append(ours(views, out, "pdf"))
            peer_s.append(peer(views, out))
            print(
                f"round {r}: interp {interp_s[-1]:.1f} s, peer {peer_s[-1]:.1f} s", file=sys.stderr
            )
        other = {fmt: ours(views, out, fmt) for fmt in ("png", "svg")}
    med_i, med_p = statistics.median(interp_s), statistics.median(peer_s)
    result = {
        "what": "export every demo view as PDF (paper theme): one browser vs one per figure",
        "n_figures": n,
        "rounds": args.rounds,
        "interp_s": interp_s,
        "peer_write_image_s": peer_s,
        "interp_per_figure_s": med_i / n,
        "peer_per_figure_s": med_p / n,
        "speedup": med_p / med_i,
        "target_speedup": TARGET,
        "met": med_p / med_i >= TARGET,
        "session_per_figure_s": {"pdf": med_i / n, **{f: s / n for f, s in other.items()}},
        "versions": versions(),
        "kaleido": _version("kaleido"),
        "machine": machine_info(),
    }
    write_json_atomic(RESULTS_DIR / "bench_figures.json", result)
    print(
        f"interp {med_i:.1f} s ({med_i / n:.2f} s/figure) vs write_image {med_p:.1f} s "
        f"({med_p / n:.2f} s/figure): {med_p / med_i:.1f}x (target {TARGET:.0f}x)"
    )


def _version(pkg: str) -> str:
    from importlib import metadata

    return metadata.version(pkg)


if __name__ == "__main__":
    main()
