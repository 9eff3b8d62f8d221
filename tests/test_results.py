from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import interp
from interp.errors import InterpError
from interp.results import ResidualNorms, Result, bootstrap_mean
from interp.results.io import tensors_equal

DIM_NAMES = ["layer", "head", "pos", "prompt", "metric"]
json_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.text(max_size=8),
    st.floats(allow_nan=True, allow_infinity=True),
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=5), inner, max_size=3),
        st.tuples(inner, inner),
    ),
    max_leaves=8,
)


@st.composite
def results(draw):
    ndim = draw(st.integers(1, 3))
    dims = tuple(draw(st.permutations(DIM_NAMES))[:ndim])
    shape = [draw(st.integers(1, 4)) for _ in dims]
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64]))
    n = math.prod(shape)
    floats = (
        st.floats(
            allow_nan=dtype != torch.int64,
            allow_infinity=dtype != torch.int64,
            width=16 if dtype == torch.float16 else 32,
        )
        if dtype != torch.int64
        else st.integers(-1000, 1000)
    )
    vals = torch.tensor(draw(st.lists(floats, min_size=n, max_size=n)), dtype=dtype).reshape(shape)
    coords = {
        d: draw(
            st.one_of(
                st.lists(st.integers(), min_size=s, max_size=s),
                st.lists(st.text(max_size=6), min_size=s, max_size=s),
            )
        )
        for d, s in zip(dims, shape, strict=True)
    }
    labels = {dims[0]: draw(st.lists(st.text(max_size=6), min_size=shape[0], max_size=shape[0]))}
    with_ci = draw(st.booleans()) and dtype != torch.int64
    extras = (
        {"raw": torch.randn(draw(st.integers(1, 3)), 2).to(dtype)} if draw(st.booleans()) else {}
    )
    return Result(
        values=vals,
        dims=dims,
        coords=coords,
        labels=labels,
        ci_low=vals - 1 if with_ci else None,
        ci_high=vals + 1 if with_ci else None,
        extras=extras,
        meta=draw(st.dictionaries(st.text(max_size=6), json_value, max_size=4)),
        title=draw(st.text(max_size=10)),
    )


def _same_json(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return (
            isinstance(b, dict) and a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
        )
    if isinstance(a, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
        )
    return type(a) is type(b) and a == b


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(res=results())
def test_save_load_round_trip_is_exact(res, tmp_path_factory):
    path = tmp_path_factory.mktemp("r") / "res"
    res.save(path)
    back = interp.load_result(path)
    assert type(back) is Result
    assert tensors_equal(back.values, res.values)
    assert tensors_equal(back.ci_low, res.ci_low) and tensors_equal(back.ci_high, res.ci_high)
    assert back.extras.keys() == res.extras.keys()
    assert all(tensors_equal(back.extras[k], res.extras[k]) for k in res.extras)
    assert back.dims == res.dims and back.coords == res.coords and back.labels == res.labels
    assert _same_json(back.meta, res.meta) and back.title == res.title


def _grid():
    vals = torch.tensor([[1.0, -5.0, 2.0], [0.5, 3.0, -0.25]])
    return Result(
        values=vals,
        dims=("layer", "head"),
        coords={"layer": [0, 1], "head": [0, 1, 2]},
        labels={"head": ["H0", "H1", "H2"]},
        ci_low=vals - 0.1,
        ci_high=vals + 0.1,
        meta={"model": "m"},
        title="grid",
    )


def test_dataframe_is_tidy_long_form():
    df = _grid().to_dataframe()
    assert list(df.columns) == ["layer", "head", "head_label", "value", "ci_low", "ci_high"]
    assert len(df) == 6
    row = df[(df.layer == 1) & (df["head"] == 2)].iloc[0]
    assert (
        row.value == -0.25
        and row.head_label == "H2"
        and math.isclose(row.ci_high, -0.15, rel_tol=1e-6)
    )


def test_top_ranks_by_magnitude_and_sel():
    res = _grid()
    top = res.top(2)
    assert top[["layer", "head", "value"]].values.tolist() == [[0, 1, -5.0], [1, 1, 3.0]]
    assert res.top(1, by="asc").value.item() == -5.0
    assert res.sel(layer=1, head=0).item() == 0.5
    with pytest.raises(InterpError, match="not a coordinate"):
        res.sel(layer=7)
    with pytest.raises(InterpError, match="k must"):
        res.top(0)


def test_top_refuses_an_unknown_rank_by(monkeypatch):
    """An unknown ranking (a subclass's rank_by outside abs/desc/asc) is an error, not ascending."""
    res = _grid()
    assert res.top(1, by="desc").value.item() == 3.0
    monkeypatch.setattr(Result, "rank_by", "largest")
    with pytest.raises(InterpError, match="cannot rank by 'largest'"):
        res.top(2)
    with pytest.raises(InterpError, match="largest"):
        res.top(2, by="largest")  # type: ignore[arg-type]


def test_construction_checks():
    with pytest.raises(InterpError, match="2 axes"):
        Result(values=torch.zeros(2, 2), dims=("layer",))
    with pytest.raises(InterpError, match="coords"):
        Result(values=torch.zeros(2), dims=("layer",), coords={"layer": [0]})


def test_plots_and_notebook_html():
    import plotly.graph_objects as go

    res = _grid()
    fig = res.plot()
    assert isinstance(fig, go.Figure) and fig.data[0].type == "heatmap"
    assert fig.data[0].zmid == 0  # signed data get a zero-centred scale
    assert list(fig.data[0].x) == ["H0", "H1", "H2"]
    one = Result(values=torch.tensor([1.0, 2.0]), dims=("layer",))
    assert one.plot().data[0].type == "bar"
    three = Result(values=torch.randn(2, 3, 4), dims=("metric", "layer", "pos"))
    assert len(three.plot().frames) == 2
    html = res._repr_html_()
    assert "grid" in html and "<table" in html


def test_tensors_sharing_memory_save(tmp_path):
    base = torch.arange(6.0)
    res = Result(values=base, dims=("pos",), extras={"same": base, "view": base[:3]})
    res.save(tmp_path / "r")
    back = interp.load_result(tmp_path / "r")
    assert torch.equal(back.extras["view"], base[:3]) and torch.equal(back.extras["same"], base)


def test_failed_save_leaves_nothing(tmp_path):
    res = Result(values=torch.zeros(2), dims=("layer",), meta={"bad": object()})
    with pytest.raises(InterpError, match="Cannot save object"):
        res.save(tmp_path / "out")
    assert os.listdir(tmp_path) == []


def test_bootstrap_interval_covers_mean_and_is_reproducible():
    x = torch.randn(200, 3) + torch.tensor([0.0, 5.0, -2.0])
    mean, lo, hi = bootstrap_mean(x, seed=1)
    assert torch.allclose(mean, x.mean(0))
    assert (lo < mean).all() and (mean < hi).all()
    half_width = (hi - lo) / 2
    se = x.std(0) / 200**0.5
    assert torch.allclose(half_width, 1.96 * se, rtol=0.2)
    assert torch.equal(bootstrap_mean(x, seed=1)[1], lo)


def test_report_is_self_contained(tmp_path):
    norms = ResidualNorms(values=torch.rand(2, 4), dims=("layer", "pos"), title="norms")
    path = interp.report(
        [("Intro", "<p>hello</p>"), _grid(), norms], tmp_path / "r.html", title="T"
    )
    text = path.read_text()
    assert text.count("<script") == 3  # plotly.js inlined once, then one per figure
    assert not re.search(r"<script[^>]*\bsrc=", text)  # nothing loaded from elsewhere
    assert "hello" in text and "norms" in text
    with pytest.raises(InterpError, match="at least one"):
        interp.report([], tmp_path / "x.html")


def chromium_dom(page: Path, profile: Path) -> str:
    """The DOM of `page` after headless Chromium ran its scripts, with no network."""
    out = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout, out.stderr[-2000:]
    return out.stdout


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium; ./dev test installs it"
)
def test_report_renders_offline_in_a_browser(tmp_path):
    path = interp.report([_grid()], tmp_path / "r.html")
    dom = chromium_dom(path, tmp_path / "profile")
    # plotly.js ran (it adds the js-plotly-plot class and draws an SVG) with no network.
    assert "js-plotly-plot" in dom and "<svg" in dom
