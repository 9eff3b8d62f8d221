"""What the report says: the findings summary (units and numbers of real results on the embedded
organism), the table of contents, the line that reproduces each section, and that every string
in them reaches the page as text."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import plotly.offline
import pytest
import torch
from test_reliability_html import KINDS, make

import interp
from interp.nodes import head_label, layer_label
from interp.results import (
    AttentionResult,
    GenerationsResult,
    PatchResult,
    Result,
    ScorecardResult,
    SteeringResult,
    TrajectoryResult,
)
from interp.viz.attention import circuitsvis_js
from interp.viz.findings import finding, number
from interp.viz.html import describe_setup
from interp.viz.report import anchor_id

EVIL = "</script><script>window.__pwned=1</script><img src=x onerror=alert(1)> \"q\" 'q' & &amp;"
VOID = {"meta", "br", "img", "input", "hr", "link", "col", "area", "base", "wbr", "source"}


# ----------------------------------------------------------------- reading a page back
class Page(HTMLParser):
    """Every element of a page with its attributes and its text, as a browser's parser reads
    them (character references decoded)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self._open: list[dict[str, Any]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = {"tag": tag, "attrs": dict(attrs), "parts": [], "parent": self._open[-1:]}
        self.elements.append(el)
        if tag not in VOID:
            self._open.append(el)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._open) - 1, -1, -1):
            if self._open[i]["tag"] == tag:
                del self._open[i:]
                return

    def handle_data(self, data: str) -> None:
        for el in self._open:
            el["parts"].append(data)  # joined on demand: the page holds megabytes of script

    def all(self, tag: str, cls: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.elements
            if e["tag"] == tag and (cls is None or cls in (e["attrs"].get("class") or "").split())
        ]

    @staticmethod
    def text(el: dict[str, Any]) -> str:
        return "".join(el["parts"])

    def inside(self, el: dict[str, Any], tag: str, cls: str | None = None) -> list[dict[str, Any]]:
        """The `tag` elements below `el`."""

        def under(e: dict[str, Any]) -> bool:
            while e["parent"]:
                e = e["parent"][0]
                if e is el:
                    return True
            return False

        return [e for e in self.all(tag, cls) if under(e)]


@pytest.fixture
def no_plotlyjs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave the 3.5 MB plotly.js bundle out of the pages these tests parse."""
    monkeypatch.setattr(plotly.offline, "get_plotlyjs", lambda: "/* plotly.js */")


def sections(page: Page) -> list[tuple[str, str]]:
    """(id, heading text) of every section's heading, in page order."""
    return [(h["attrs"].get("id") or "", Page.text(h)) for h in page.all("h2") if h["attrs"]]


# ----------------------------------------------------------------- real results
@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    model = interp.load_model("organism")
    task = interp.tasks.induction(model, n=8, seed=0)
    facts = interp.tasks.facts(model, n=64, seed=0)
    exact = interp.patching.activation_patch(model, task, target="head_out")
    atp = interp.patching.attribution_patch(model, task, target="z")
    return {
        "dla": interp.attribution.direct_logit(model, task),
        "patch": exact,
        # Short prompts: every layer x position is one patched run.
        "resid": interp.patching.activation_patch(
            model,
            interp.tasks.induction(model, n=4, seq_len=4, seed=0),
            target="resid_pre",
            per_position=True,
        ),
        "atp": interp.patching.agreement(atp, exact, k=3),
        "probe": interp.probes.sweep(model, facts, over="layers", n_boot=200, progress=False),
        "probe_heads": interp.probes.sweep(model, facts, over="heads", n_boot=200, progress=False),
        "attention": interp.attribution.attention_patterns(model, task, [(3, 4), (1, 7)]),
    }


def _first(row: Any) -> str:
    return f" [{number(row['ci_low'], False)}, {number(row['ci_high'], False)}]"


def test_number_has_three_significant_digits_and_a_sign():
    assert [number(v) for v in (5.5, 4.018, -0.067152, 100.0, 1234.5, 0.0, 1e-5)] == [
        "+5.50", "+4.02", "-0.0672", "+100", "+1.23e+03", "0.00", "+1.00e-05",
    ]  # fmt: skip
    assert number(0.9375, signed=False) == "0.938" and number(-2.5, signed=False) == "-2.50"
    assert [number(v) for v in (math.nan, math.inf, -math.inf)] == ["nan", "+inf", "-inf"]


@pytest.mark.parametrize("name", ["dla", "patch"])
def test_head_rankings_name_the_top_three_heads_with_their_values(real, name):
    res = real[name]
    top = res.top(3)
    sentence = finding(res)
    assert sentence is not None
    heads = [head_label(l, h) for l, h in zip(top["layer"], top["head"], strict=True)]
    assert re.findall(r"L\d+H\d+", sentence) == heads
    items = [f"{h} {number(v)}" for h, v in zip(heads, top["value"], strict=True)]
    items[0] += _first(top.iloc[0])
    label = "direct effect on logit difference" if name == "dla" else res.value_label
    assert sentence == f"{res.title}, largest {label} by magnitude: {', '.join(items)}."


def test_positions_are_named_by_layer_and_token(real):
    res = real["resid"]
    top = res.top(3)
    items = [
        f"{layer_label(l)} pos {p} {number(v)}"
        for l, p, v in zip(top["layer"], top["pos_label"], top["value"], strict=True)
    ]
    assert "'" in top["pos_label"][0]  # the label carries the token: "10 'many'"
    assert finding(res) == f"{res.title}, largest {res.value_label} by magnitude: " + (
        items[0] + _first(top.iloc[0]) + ", " + ", ".join(items[1:]) + "."
    )


def test_atp_adds_its_agreement_with_exact_patching(real):
    res = real["atp"]
    sentence = finding(res)
    assert sentence is not None
    top = res.top(3)
    assert re.findall(r"L\d+H\d+", sentence) == [
        head_label(l, h) for l, h in zip(top["layer"], top["head"], strict=True)
    ]
    agree = res.agreement
    assert sentence.endswith(
        f"; Spearman with exact patching {number(agree['spearman'])}, "
        f"top-3 recall {number(agree['top_k_recall'], False)}."
    )


def test_probe_layers_say_the_best_layer_and_its_accuracy(real):
    res = real["probe"]
    i, m = res.coords["layer"].index(res.best_layer), res.coords["metric"].index("accuracy")
    assert res.ci_low is not None and res.ci_high is not None
    acc, lo, hi = (float(t[i, m]) for t in (res.values, res.ci_low, res.ci_high))
    control = float(res.metric("control_accuracy")[i])
    sel = float(res.metric("selectivity")[i])
    assert finding(res) == (
        f"{res.title} (accuracy, {res.split['n_test']} held-out examples, layer n = after n "
        f"blocks): best layer {res.best_layer} {number(acc, False)} [{number(lo, False)}, "
        f"{number(hi, False)}], control accuracy {number(control, False)}, selectivity "
        f"{number(sel)}; first jumps at layer {res.jump_layer} and plateaus at layer "
        f"{res.plateau_layer}."
    )


def test_probe_heads_name_the_heads_with_the_best_accuracy(real):
    res = real["probe_heads"]
    df = res.to_dataframe()
    df = df[df["metric"] == "accuracy"].sort_values("value", ascending=False, kind="stable")
    top = df.head(3)
    sentence = finding(res)
    assert sentence is not None
    assert re.findall(r"L\d+H\d+", sentence) == [
        head_label(l, h) for l, h in zip(top["layer"], top["head"], strict=True)
    ]
    assert f"{head_label(top['layer'].iloc[1], top['head'].iloc[1])} " in sentence
    assert number(top["value"].iloc[0], False) + _first(top.iloc[0]) in sentence


def test_results_without_a_ranking_get_no_sentence(real):
    gens = GenerationsResult(
        values=torch.zeros(1, 2),
        dims=("prompt", "alpha"),
        coords={"alpha": [0.0, 2.0]},
        prompts=["p"],
        texts=[["a", "b"]],
    )
    assert finding(real["attention"]) is None and finding(gens) is None


def test_steering_scorecard_and_trajectories_say_their_summary_fields():
    metrics = ["effect", "target_rate", "flip_rate", "target_prob", "task_kl", "kl", "loss_change"]
    vals = torch.zeros(2, 2, 7)
    vals[:, :, 0] = torch.tensor([[0.8, 5.1664], [0.1, 0.25]])
    rand = torch.zeros(2, 2, 5, 7)
    rand[:, 1, :, 0] = torch.tensor([-0.35, 0.0, 0.2, 1.2, 0.5])
    steer = SteeringResult(
        values=vals,
        dims=("direction", "alpha", "metric"),
        coords={"direction": ["d1", "d2"], "alpha": [2.0, 8.0], "metric": metrics},
        ci_low=vals - 1.1664,
        ci_high=vals + 1.0836,
        random=rand,
        sites=["resid_post:L2", "resid_post:L1"],
        title="S",
    )
    assert finding(steer) == (
        "S: effect at the largest strength (8 sigma): d1 +5.17 [4.00, 6.25], above the random "
        "directions' -0.350 to +1.20; d2 +0.250 [-0.916, 1.33], within the random directions' "
        "-0.350 to +1.20."
    )
    card = ScorecardResult(
        values=torch.tensor([[1.0, 3.0, 3.0], [2.0, 1.0, 1.0], [3.0, 2.0, 2.0]]),
        dims=("unit", "source"),
        coords={"unit": ["L0", "L1", "L2"], "source": ["dla", "probe", "merged"]},
        sites=["resid_post:L0", "resid_post:L1", "resid_post:L2"],
        title="Card",
    )
    assert finding(card, k=2) == "Card, best merged rank: L1, L2."
    card.verify_summary = {
        "alpha": 2.0,
        "k": 1,
        "top_abs_effect": 21.4036,
        "random_abs_effect": 1.18640,
        "top_over_random": 18.0407,
    }
    assert finding(card, k=2) == (
        "Card, best merged rank: L1, L2; steered at 2 sigma, the top 1 move the answer by "
        "21.4 on average (absolute effect), 1 random units by 1.19 (ratio 18.0)."
    )
    auroc = torch.tensor([[0.7, 0.5, math.nan], [0.8, 0.52, 0.6], [0.6, 0.5, math.nan]])
    traj = TrajectoryResult(
        values=auroc,
        dims=("signal", "metric"),
        coords={
            "signal": ["confidence", "net_change", "x"],
            "metric": ["auroc", "null_auroc", "projection_auroc"],
        },
        ci_low=auroc - 0.1,
        ci_high=auroc + 0.1,
        title="T",
    )
    assert finding(traj, k=2) == (
        "T, highest ROC-AUC: net_change 0.800 [0.700, 0.900] (shuffled labels 0.520), "
        "confidence 0.700."
    )


@pytest.mark.parametrize("kind", KINDS)
def test_every_result_kind_gets_a_sentence_or_none(kind):
    """Odd shapes (every kind built as a bare layer x position grid) never break the summary."""
    text = finding(make(kind, "<b>"))
    assert text is None or ("<b>" in text and text.endswith("."))


# ----------------------------------------------------------------- the page
def test_toc_lists_every_section_in_order_and_each_link_resolves(real, tmp_path, no_plotlyjs):
    dup = make("result", "Same title")
    items: list[Any] = [
        ("Model", "<p>x</p>"),
        real["dla"],
        dup,
        make("result", "Same title"),
        ("日本語", "<p>y</p>"),
        real["attention"],
    ]
    page = Page(interp.report(items, tmp_path / "r.html").read_text(encoding="utf-8"))
    want = [
        "Model",
        real["dla"].title,
        "Same title",
        "Same title",
        "日本語",
        real["attention"].title,
    ]
    heads = sections(page)
    assert [text for _, text in heads] == want
    ids = [i for i, _ in heads]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"s\d+(-[a-z0-9-]+)?", i) for i in ids)
    assert ids[4] == "s5" and ids[1] == "s2-direct-logit-attribution-by-head"
    every_id = [e["attrs"]["id"] for e in page.elements if e["attrs"].get("id")]
    assert all(every_id.count(i) == 1 for i in ids)
    (nav,) = page.all("nav", "toc")
    links = page.inside(nav, "a")
    assert [Page.text(a) for a in links] == want
    assert [a["attrs"]["href"] for a in links] == [f"#{i}" for i in ids]
    # The findings: one line per ranking result (DLA and two plain grids, not the attention
    # view or the free-form blocks), each linking to its own section.
    (box,) = page.all("div", "findings")
    rows = page.inside(box, "li")
    assert [Page.text(li) for li in rows] == [
        f"{finding(r)} (section)" for r in (real["dla"], dup, items[3])
    ]
    assert [page.inside(li, "a")[0]["attrs"]["href"] for li in rows] == [
        f"#{ids[1]}",
        f"#{ids[2]}",
        f"#{ids[3]}",
    ]


def test_anchor_ids_are_slugs_made_unique_by_position():
    assert (
        anchor_id(3, "Direct logit attribution (by head)") == "s3-direct-logit-attribution-by-head"
    )
    assert anchor_id(1, EVIL).startswith("s1-script-script-window-pwned")
    assert anchor_id(2, "") == "s2" and len(anchor_id(9, "a" * 200)) == len("s9-") + 40


def _reproduce(page: Page, heading: str) -> tuple[list[str], list[str]]:
    """The code and setup lines of the section headed `heading`."""
    (h2,) = [h for h in page.all("h2") if Page.text(h) == heading and h["attrs"].get("id")]
    section = h2["parent"][0]
    codes = [Page.text(c) for c in page.inside(section, "code")]
    setup = [Page.text(p) for p in page.inside(section, "p", "setup")]
    return codes, setup


def test_each_section_shows_the_call_or_command_that_reproduces_it(real, tmp_path, no_plotlyjs):
    dla = real["dla"]
    cli = make("result", "from the CLI")
    cli.meta["call"] = "interp.attribution.direct_logit(model, task)"
    cli.meta["command"] = "interp run dla --model organism --task induction --seed 3"
    path = interp.report([dla, cli], tmp_path / "r.html", command="interp demo --seed 0")
    page = Page(path.read_text(encoding="utf-8"))
    assert _reproduce(page, dla.title) == (
        ["interp.attribution.direct_logit(model, task)"],
        ["model organism; task induction (8 prompts, task seed 0); seed 0"],
    )
    assert _reproduce(page, "from the CLI")[0] == [cli.meta["command"]]
    top = [p for p in page.all("p", "reproduce") if not p["parent"][0]["attrs"].get("class")]
    assert [Page.text(p) for p in top] == ["Reproduce this report: interp demo --seed 0"]
    assert len(page.all("details")) >= 2  # the full metadata panels stay


# ----------------------------------------------------------------- escaping
def _hostile(s: str) -> list[Result]:
    grid = torch.tensor([[0.5, -1.0], [2.0, 0.25]])
    meta = {
        "model": s,
        "task": {"name": s, "n_prompts": 2, "seed": 0},
        "seed": 1,
        "call": f"interp.attribution.direct_logit(model, task, token={s!r})",
        "description": s,
    }
    plain = Result(
        values=grid,
        dims=("layer", "pos"),
        coords={"layer": [0, 1], "pos": [0, 1]},
        labels={"pos": [f"0 {s}", "1 b"]},
        ci_low=grid - 0.1,
        ci_high=grid + 0.1,
        meta=dict(meta),
        title=s,
    )
    patch = PatchResult(
        values=grid,
        dims=("layer", "head"),
        meta={**meta, "metric": s, "command": f"interp run patch --title {s}"},
        title=f"patch {s}",
    )
    attn = AttentionResult(
        values=torch.tensor([[[1.0, 0.0], [0.4, 0.6]]]),
        dims=("head", "query", "key"),
        coords={"head": ["L0H1"]},
        labels={"query": [s, "b"], "key": [s, "b"]},
        title=f"attention {s}",
        tokens=[s, "b"],
    )
    return [plain, patch, attn]


def _page(s: str, path: Path) -> tuple[str, list[Result]]:
    results = _hostile(s)
    items: list[Any] = [(s, "<p>free-form</p>"), *results]
    out = interp.report(items, path, title=s, intro=s, command=f"interp demo --title {s!r}")
    return out.read_text(encoding="utf-8"), results


def test_hostile_strings_add_no_element_and_read_back_exactly(tmp_path, no_plotlyjs):
    text, results = _page(EVIL, tmp_path / "evil.html")
    benign_text, _ = _page("x", tmp_path / "benign.html")
    page, benign = Page(text), Page(benign_text)
    low = text.lower()
    assert "<script>window.__pwned" not in low and "<img src=x" not in low
    tags = [e["tag"] for e in page.elements]
    assert tags == [e["tag"] for e in benign.elements]  # the same elements, in the same order
    assert not [a for e in page.elements for a in e["attrs"] if a.startswith("on")]
    assert "img" not in tags
    # Every string shows as typed.
    assert Page.text(page.all("h1")[0]) == EVIL and Page.text(page.all("title")[0]) == EVIL
    assert Page.text(page.all("p", "note")[0]) == EVIL
    plain, patch, _ = results
    (nav,) = page.all("nav", "toc")
    assert [Page.text(a) for a in page.inside(nav, "a")] == [
        EVIL,
        EVIL,
        f"patch {EVIL}",
        f"attention {EVIL}",
    ]
    (box,) = page.all("div", "findings")
    found = [Page.text(li) for li in page.inside(box, "li")]
    assert found == [f"{finding(plain)} (section)", f"{finding(patch)} (section)"]
    assert found[0].endswith(
        f"L1 pos 0 {EVIL} +2.00 [1.90, 2.10], L0 pos 1 b -1.00, L0 pos 0 {EVIL} +0.500. (section)"
    )
    codes = [Page.text(c) for c in page.all("code")]
    assert codes == [f"interp demo --title {EVIL!r}", plain.meta["call"], patch.meta["command"]]
    setups = [Page.text(p) for p in page.all("p", "setup")]
    assert setups == [describe_setup(plain.meta), describe_setup(patch.meta)]
    assert setups[0] == f"model {EVIL}; task {EVIL} (2 prompts, task seed 0); seed 1"
    panels = [Page.text(p) for p in page.all("pre")]
    want = json.dumps({**plain.field_summary(), **plain.meta}, indent=1, default=str)
    assert want in panels
    # The attention view's tokens reach its script as JSON that ends no script.
    scripts = [Page.text(e) for e in page.all("script")]
    assert any("window.__pwned" in js and "\\u003c/script\\u003e" in js for js in scripts)


def test_the_report_stays_one_offline_file(real, tmp_path):
    attn = real["attention"]
    path = interp.report([real["dla"], attn, attn], tmp_path / "r.html")
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    scripts = page.all("script")
    assert not [s for s in scripts if s["attrs"].get("src")]  # nothing loaded from elsewhere
    bundle = plotly.offline.get_plotlyjs()
    assert text.count(bundle[:200]) == 1  # plotly.js inlined once
    assert text.count(circuitsvis_js()[:200]) == 1  # circuitsvis too, for both attention views
    assert text.count("CircuitsVis.render(") == 2


def test_all_numeric_results_name_their_cells_with_integers():
    """A [layer, pos] result has no string column: its rows must not turn layer 3 into 3.0."""
    from interp.results import ResidualNorms

    values = torch.zeros(4, 5)
    values[3, 2], values[1, 4] = 7.0, 5.0
    text = finding(ResidualNorms(values=values, dims=("layer", "pos"), title="norms"))
    assert text is not None
    assert "L3 pos 2 +7.00" in text and "L1 pos 4 +5.00" in text and ".0 pos" not in text
