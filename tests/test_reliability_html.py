"""Strings inside results (tokens, labels, coordinates, titles, metadata) and report arguments
never run as script: in the report, the notebook view and every result view, also after the
result was saved and loaded again (a result from a shared directory is untrusted input)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

import interp
import interp.results  # registers every result kind
from interp.errors import InterpError
from interp.results import base
from interp.results.base import Result
from interp.viz.html import result_html
from interp.viz.theme import apply_theme

PAYLOAD = "</script><script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
EVIL = f"{PAYLOAD}{IMG} & \u2028\u2029 end"
BENIGN = "x"


# ----------------------------------------------------------------- minimal results per kind
def _layer_pos(cls: type[Result], s: str) -> Result:
    """Default: a (layer, pos) grid with string coordinates and token labels."""
    vals = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    return cls(
        values=vals,
        dims=("layer", "pos"),
        coords={"layer": [0, 1], "pos": [s, "b"]},
        labels={"pos": [s, "b"], "layer": [s, "L1"]},
        ci_low=vals - 0.1,
        ci_high=vals + 0.1,
        meta={"description": s, "model": s, "tokens": [s, "b"]},
        title=s,
    )


def _head_grid(cls: type[Result], s: str) -> Result:
    vals = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    return cls(
        values=vals,
        dims=("layer", "head"),
        coords={"layer": [0, 1], "head": [s, "h1"]},
        labels={"head": [s, "H1"]},
        meta={"description": s, "model": s},
        title=s,
    )


def _attention(cls: type[Result], s: str) -> Result:
    return cls(
        values=torch.tensor([[[1.0, 0.0], [0.4, 0.6]], [[1.0, 0.0], [0.9, 0.1]]]),
        dims=("head", "query", "key"),
        coords={"head": [s, "L0H1"], "query": [0, 1], "key": [0, 1]},
        labels={"query": [s, "b"], "key": [s, "b"]},
        meta={"description": s},
        title=s,
        tokens=[s, "b"],  # type: ignore[call-arg]  # AttentionResult's declared field
    )


def _logit_lens(cls: type[Result], s: str) -> Result:
    return cls(
        values=torch.rand(2, 2, 2),
        dims=("metric", "layer", "pos"),
        coords={"metric": ["target_prob", "kl_to_final"], "layer": [0, 1], "pos": [0, 1]},
        labels={"pos": [s, "b"], "layer": [s, "L1"]},
        meta={"description": s},
        title=s,
        top_tokens=[[[s, "a"], ["b"]], [[s], ["c", s]]],  # type: ignore[call-arg]
    )


def _probe(cls: type[Result], s: str) -> Result:
    vals = torch.tensor([[0.9, 0.5], [0.7, 0.5]])
    return cls(
        values=vals,
        dims=("layer", "metric"),
        coords={"layer": [0, 1], "metric": ["accuracy", "control_accuracy"]},
        labels={"layer": [s, "1"]},
        ci_low=vals - 0.1,
        ci_high=vals + 0.1,
        meta={"description": s},
        title=s,
        probe=s,  # type: ignore[call-arg]  # ProbeResult's declared fields
        class_balance=0.5,
    )


def _trajectories(cls: type[Result], s: str) -> Result:
    vals = torch.tensor([[0.7, 0.5, 0.6], [0.6, 0.5, float("nan")]])
    return cls(
        values=vals,
        dims=("signal", "metric"),
        coords={"signal": [s, "net_change"], "metric": ["auroc", "null_auroc", "projection_auroc"]},
        ci_low=vals - 0.1,
        ci_high=vals + 0.1,
        meta={"description": s},
        title=s,
    )


BUILDERS: dict[str, Callable[[type[Result], str], Result]] = {
    "head_scores": _head_grid,
    "attention": _attention,
    "logit_lens": _logit_lens,
    "probe": _probe,
    "trajectories": _trajectories,
}
KINDS = ["result", *sorted(base._REGISTRY)]


def make(kind: str, s: str) -> Result:
    cls = Result if kind == "result" else base._REGISTRY[kind]
    return BUILDERS.get(kind, _layer_pos)(cls, s)


# ----------------------------------------------------------------- what a browser would parse
class _Scan(HTMLParser):
    """Elements, event-handler attributes and script bodies, as an HTML parser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.handlers: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.handlers += [a for a, _ in attrs if a.startswith("on")]
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def assert_inert(page: str, benign: str) -> None:
    """`page` was built from the payload, `benign` the same way from plain text: the payload
    added no element, no handler and no raw line separator inside a script."""
    low = page.lower()
    assert "</script><script>alert(1)" not in low
    assert "<img src=x onerror" not in low
    assert low.count("<script") == benign.lower().count("<script")
    got, want = _Scan(page), _Scan(benign)
    assert got.tags["script"] == want.tags["script"]
    assert got.tags["img"] == want.tags["img"] == 0
    assert got.handlers == want.handlers
    seps = sum(s.count("\u2028") + s.count("\u2029") for s in got.scripts)
    assert seps == sum(s.count("\u2028") + s.count("\u2029") for s in want.scripts)


def views(res: Result, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every HTML a result produces on its own."""
    monkeypatch.setattr(base, "_PLOTLYJS_SENT", True)  # keep the 3.5 MB bundle out of the scan
    out = {"notebook": res._repr_html_(), "fragment": result_html(res)}
    cv = getattr(res, "circuitsvis_html", None)
    if cv is not None:
        out["circuitsvis"] = cv(include_js=False)
    return out


# ----------------------------------------------------------------- tests
def test_script_json_escapes_everything_that_ends_a_script():
    from interp.viz.html import script_json

    obj = {"t": [EVIL, "<!--", "a&b"], EVIL: 1.5}
    text = script_json(obj)
    assert json.loads(text) == obj
    for ch in "<>&\u2028\u2029":
        assert ch not in text


@pytest.mark.parametrize("kind", KINDS)
def test_every_result_view_is_inert(kind, tmp_path, monkeypatch):
    evil, benign = make(kind, EVIL), make(kind, BENIGN)
    evil.save(tmp_path / "r")
    loaded = interp.load_result(tmp_path / "r")
    assert type(loaded) is type(evil)
    want = views(benign, monkeypatch)
    for res in (evil, loaded):
        got = views(res, monkeypatch)
        assert got.keys() == want.keys()
        for name, page in got.items():
            assert_inert(page, want[name])
    # The text is shown (escaped), not dropped.
    assert html.escape(EVIL, quote=False) in views(loaded, monkeypatch)["notebook"]


def _report(s: str, path: Path, results: list[Result] | None = None) -> str:
    items: list[Any] = [(s, "<p>free-form section</p>")]
    items += results if results is not None else [make(k, s) for k in KINDS]
    return interp.report(items, path, title=s, intro=s).read_text(encoding="utf-8")


def test_report_is_inert(tmp_path):
    page = _report(EVIL, tmp_path / "evil.html")
    assert_inert(page, _report(BENIGN, tmp_path / "benign.html"))
    assert "<h1>&lt;/script&gt;&lt;script&gt;alert(1)" in page  # title shown as text
    assert "CircuitsVis.render(" in page  # the attention view is part of the page


def test_loaded_results_report_is_inert(tmp_path):
    loaded = []
    for i, kind in enumerate(KINDS):
        make(kind, EVIL).save(tmp_path / f"r{i}")
        loaded.append(interp.load_result(tmp_path / f"r{i}"))
    page = _report(EVIL, tmp_path / "evil.html", loaded)
    assert_inert(page, _report(BENIGN, tmp_path / "benign.html"))


def test_real_results_with_hostile_strings_are_inert(organism, tmp_path, monkeypatch):
    """Real results from cheap analyses, as if a tokenizer and a user had produced the payload."""
    task = interp.tasks.induction(organism, n=4, seed=0)
    made = {
        "heads": lambda: interp.attribution.detect_heads(organism, kind="induction"),
        "dla": lambda: interp.attribution.direct_logit(organism, task),
        "attention": lambda: interp.attribution.attention_patterns(
            organism, task, [(0, 0), (1, 1)]
        ),
    }

    def hostile(res: Result, s: str) -> Result:
        res.title = s
        res.meta["description"] = s
        if isinstance(getattr(res, "tokens", None), list):  # AttentionResult's field
            res.tokens = [s] * len(res.tokens)  # type: ignore[attr-defined]
        for d in res.labels:
            res.labels[d] = [s] * len(res.labels[d])
        return res

    results = {name: f() for name, f in made.items()}
    evil = {n: hostile(r, EVIL) for n, r in results.items()}
    for name, res in evil.items():
        res.save(tmp_path / name)
        loaded = interp.load_result(tmp_path / name)
        benign = hostile(interp.load_result(tmp_path / name), BENIGN)
        want = views(benign, monkeypatch)
        for r in (res, loaded):
            for view, page in views(r, monkeypatch).items():
                assert_inert(page, want[view])
    page = _report(EVIL, tmp_path / "evil.html", list(evil.values()))
    benign_all = [hostile(interp.load_result(tmp_path / n), BENIGN) for n in evil]
    assert_inert(page, _report(BENIGN, tmp_path / "benign.html", benign_all))


def test_figure_labels_show_markup_as_text():
    """Plotly reads <b>, <br>, <a href> in labels as markup; token strings must show as typed."""
    res = make("result", "<b>x</b>")
    trace = res.plot().data[0]
    assert "&lt;b&gt;x&lt;/b&gt;" in list(trace.x) and "<b>x</b>" not in list(trace.x)


def test_plotly_html_escapes_script_ends():
    """Plotly's to_html escapes < > / in its JSON; if an upgrade stops doing so, this fails."""
    import plotly.graph_objects as go

    fig = go.Figure(go.Bar(x=[PAYLOAD, "\u2028"], y=[1, 2], hovertemplate=PAYLOAD))
    fig.update_layout(title=PAYLOAD)
    page = fig.to_html(full_html=False, include_plotlyjs=False)
    assert PAYLOAD not in page and "\u2028" not in page
    assert page.lower().count("<script") == 1


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium; ./dev test installs it"
)
def test_report_payload_does_not_run_in_a_browser(tmp_path):
    from test_results import chromium_dom

    # Each would add a <pwned> element if it ran; the marker is split so the text never has it.
    act = "document.body.appendChild(document.createElement('pw'+'ned'))"
    s = f'</script><script>{act}</script><img src=x onerror="{act}"> &\u2028'
    page = tmp_path / "r.html"
    _report(s, page, [make(k, s) for k in ("attention", "logit_lens", "result")])
    dom = chromium_dom(page, tmp_path / "profile")
    assert "js-plotly-plot" in dom and "<svg" in dom  # the page did render
    assert re.search(r'id="circuits-vis-[0-9a-f]+"[^>]*><div', dom)  # so did the escaped props
    assert "<pwned" not in dom.lower()


def test_report_refuses_bad_input_before_writing(tmp_path):
    with pytest.raises(InterpError, match="is a directory"):
        interp.report([make("result", BENIGN)], tmp_path)
    with pytest.raises(InterpError, match="string pairs"):
        interp.report([("heading", 3)], tmp_path / "r.html")
    assert os.listdir(tmp_path) == []


def _shown(fig: Any) -> list[str]:
    """Every string plotly renders as markup in `fig`: trace labels and texts, titles, notes."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list | tuple) or (hasattr(v, "dtype") and v.dtype.kind in "OUS"):
            for x in list(v.ravel() if hasattr(v, "ravel") else v):
                walk(x)

    for t in fig.data:
        for f in ("x", "y", "text", "hovertext", "name", "customdata"):
            if f in t:
                walk(t[f])
    lay = fig.layout
    out += [lay.title.text or ""] + [a.text or "" for a in lay.annotations]
    fig.for_each_xaxis(lambda a: out.append(a.title.text or ""))
    fig.for_each_yaxis(lambda a: out.append(a.title.text or ""))
    for s in lay.sliders:
        out += [s.currentvalue.prefix or ""] + [st.label or "" for st in s.steps]
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_every_figure_label_is_escaped_once(kind):
    """The figure labels of every view show as typed: escaped once in apply_theme (the
    trajectories view put signal names on its x axis unescaped)."""
    res = make(kind, "<b>x</b>")
    figs = [res.plot()] + ([res.scatter(exact=res)] if kind == "atp" else [])
    for fig in figs:
        shown = _shown(fig)
        assert not [s for s in shown if "<b>x" in s or "&amp;lt;" in s], shown
    if kind == "trajectories":
        assert "&lt;b&gt;x&lt;/b&gt;" in list(figs[0].data[0].x)


def test_apply_theme_escapes_every_label_once_and_keeps_numbers():
    fig = go.Figure(go.Bar(x=["<i>a", "a&b"], y=[1.0, 2.0], name="<n>", text=["<t>", "u"]))
    fig.add_trace(
        go.Scatter(x=[1, 2], y=[3, 4], customdata=np.array([["<c>"], ["d"]], dtype=object))
    )
    fig.add_hline(y=0.5, annotation_text="<h>")
    fig.update_layout(sliders=[{"currentvalue": {"prefix": "<p>: "}, "steps": [{"label": "<s>"}]}])
    fig.update_xaxes(title="<x>")
    apply_theme(fig, title="<T>")
    apply_theme(fig)  # a second theming (a builder's, then its caller's) does not escape again
    assert list(fig.data[0].x) == ["&lt;i&gt;a", "a&amp;b"] and fig.data[0].name == "&lt;n&gt;"
    assert list(fig.data[0].text) == ["&lt;t&gt;", "u"] and list(fig.data[0].y) == [1.0, 2.0]
    assert list(fig.data[1].x) == [1, 2] and fig.data[1].customdata[0, 0] == "&lt;c&gt;"
    assert fig.layout.annotations[0].text == "&lt;h&gt;"
    assert fig.layout.title.text == "&lt;T&gt;" and fig.layout.xaxis.title.text == "&lt;x&gt;"
    slider = fig.layout.sliders[0]
    assert slider.currentvalue.prefix == "&lt;p&gt;: " and slider.steps[0].label == "&lt;s&gt;"
    assert fig.data[0].hovertemplate is None  # templates are markup, left alone
