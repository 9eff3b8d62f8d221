"""Build the docs gallery: every view of every demo result on the organism, in the paper theme.

Writes ``docs/figures/gallery/<kind>[_<view>].png`` (3.3 in wide at 150 dpi, small enough to
commit) plus a panels example and the attention view, and the page ``docs/gallery.md`` that
shows them with what each view draws (the view method's docstring) and the call that made it.

    python scripts/gallery.py            # about a minute on a laptop CPU
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from interp.demo.run import demo_results
from interp.results.base import Result
from interp.viz import export_session, panels, save_figure

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "gallery"
PAGE = OUT.parents[1] / "gallery.md"
DPI_SCALE = 150 / 96  # docs images: 150 dpi keeps each PNG small and sharp on screen


def _about(kind: type[Result], view: str) -> str:
    if view == "attention":
        return "The circuitsvis AttentionHeads widget, rendered in headless Chromium."
    doc = getattr(kind, view).__doc__ or ""
    return " ".join(doc.split("\n\n")[0].split())


def page(index: list[dict[str, Any]]) -> str:
    """The gallery page: one section per image, with the code that saves it."""
    lines = [
        "# Gallery",
        "",
        "Every view of the organism demo (`scripts/gallery.py`, which writes this page), exported",
        "in the paper theme at one column (3.3 in) as PNG at 150 dpi. PDF and SVG look the same",
        "(see [Figures for papers](figures.md)). Titles are off in the paper theme; the headings",
        "here are the results' titles.",
        "",
    ]
    for item in index:
        view = item["view"]
        save = (
            f'res.save_figure("{item["kind"]}.pdf", view="{view}")'
            if view not in ("plot", "panels")
            else f'res.save_figure("{item["kind"]}.pdf")'
        )
        if view == "panels":
            save = 'interp.viz.save_figure(fig, "panels.pdf")  # at the size panels laid out'
        lines += [f"## {item['title']}" + ("" if view in ("plot", "panels") else f": {view}"), ""]
        if item.get("about"):
            lines += [item["about"], ""]
        lines += [f"![{item['title']}](figures/gallery/{item['file']})", ""]
        code = [f"res = {item['call']}"] if item.get("call") and view != "panels" else []
        if view == "panels":
            code = [f"fig = {item['call']}"]
        lines += ["```python", *code, save, "```", ""]
    return "\n".join(lines)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.png*"):
        old.unlink()
    index: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        results = demo_results("organism", Path(tmp), n=16, seed=0)
    seen: dict[str, int] = {}
    with export_session():
        for res in results:
            seen[res.kind] = seen.get(res.kind, 0) + 1
            stem = res.kind if seen[res.kind] == 1 else f"{res.kind}{seen[res.kind]}"
            for view in type(res).views():
                name = stem + ("" if view == "plot" else "_" + view.removeprefix("plot_"))
                path = OUT / f"{name}.png"
                scale = 1.0 if view == "attention" else DPI_SCALE
                res.save_figure(path, view=view, scale=scale)
                path.with_name(path.name + ".json").unlink()  # the docs keep one index instead
                index.append(
                    {
                        "file": path.name,
                        "kind": res.kind,
                        "title": res.title,
                        "view": view,
                        "call": res.meta.get("call"),
                        "about": _about(type(res), view),
                    }
                )
        dla = next(r for r in results if r.kind == "dla")
        probe = next(r for r in results if r.kind == "probe")
        patch = next(r for r in results if r.kind == "patch")
        fig = panels([dla, patch, probe], cols=3, width="double", height=2.4)
        path = save_figure(fig, OUT / "panels.png", scale=DPI_SCALE)
        path.with_name(path.name + ".json").unlink()
        index.append(
            {
                "file": path.name,
                "kind": "panels",
                "title": "Three views composed with interp.viz.panels",
                "view": "panels",
                "call": "interp.viz.panels([dla, patch, probe], cols=3, "
                'width="double", height=2.4)',
                "about": "Lettered panels, each with its own axes and colour bar, laid out "
                "for the full text width (the gaps fit 8 pt text).",
            }
        )
    (OUT / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    PAGE.write_text(page(index))
    total = sum(p.stat().st_size for p in OUT.glob("*.png"))
    print(f"{len(index)} images, {total / 1e6:.2f} MB -> {OUT}")


if __name__ == "__main__":
    main()
