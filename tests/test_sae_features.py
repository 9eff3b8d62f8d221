"""Feature views of SAE latents (interp.sae.features): every number against an independent
computation from ``sae.encode`` of the cached residual stream at the content positions, the
output tokens against ``W_dec`` through the unembedding, escaping, save/load, the CLI."""

from __future__ import annotations

import dataclasses
import html
import math

import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from typer.testing import CliRunner

import interp
from interp.analyses.sae.features import _Running
from interp.cli import app
from interp.errors import InterpError
from interp.results.io import tensors_equal
from interp.results.sae import METRICS, LatentFeatures

SITE = "blocks.2.hook_resid_post"
runner = CliRunner()


@pytest.fixture(scope="module")
def ioi(organism):
    return interp.tasks.ioi(organism, n=64, seed=0)


@pytest.fixture(scope="module")
def sae_dir(organism, ioi, tmp_path_factory):
    out = tmp_path_factory.mktemp("sae") / "L2"
    interp.sae.train(
        organism, SITE, ioi, d_sae=256, k=8, training_tokens=20000, batch_size=512, out=out
    )
    return out


@pytest.fixture(scope="module")
def sae(organism, sae_dir):
    return interp.sae.load(sae_dir, model=organism)


@pytest.fixture(scope="module")
def res(organism, ioi, sae):
    # 24 rows a batch: three batches, the last one short (running top-n and histogram merges).
    return interp.sae.features(organism, ioi, sae, batch_size=24, progress=False)


@pytest.fixture(scope="module")
def direct(organism, ioi, sae):
    """Latents of every token from sae.encode of the cached residual, and the content mask
    written out here: every token but padding and the tokenizer's special tokens."""
    tokens = ioi.clean_tokens
    with torch.no_grad():
        _, cache = organism.run_with_cache(tokens, names_filter=[SITE])
        f = sae.encode(cache[SITE]).float()  # [row, seq, latent]
    skip = torch.tensor(sorted({organism.pad_id, *organism.special_ids}))
    mask = ~torch.isin(tokens, skip)
    return tokens, f, mask


def test_statistics_match_a_direct_encoding(res, direct):
    _, f, mask = direct
    acts = f[mask]  # [content token, latent]
    assert res.n_tokens == int(mask.sum()) and res.n_rows == 64
    active = acts > 0
    count = active.sum(0)
    density = count.double() / len(acts)
    mean = torch.where(count > 0, acts.double().clamp(min=0).sum(0) / count, torch.nan)
    assert res.latents == list(range(256))
    torch.testing.assert_close(res.metric("density").double(), density, rtol=0, atol=1e-7)
    torch.testing.assert_close(res.metric("max"), acts.max(0).values, rtol=1e-5, atol=1e-5)
    got = res.metric("mean_active").double()
    assert torch.equal(got.isnan(), mean.isnan())
    torch.testing.assert_close(got.nan_to_num(), mean.nan_to_num(), rtol=1e-5, atol=1e-5)
    assert (count > 0).sum() > 50  # the SAE is alive: the checks above compared real numbers


def test_top_examples_are_the_largest_content_activations(res, direct):
    tokens, f, mask = direct
    seq = tokens.shape[1]
    for latent in res.ranked(12, "density") + res.ranked(5, "max"):
        col = torch.where(mask, f[..., latent], -torch.inf).reshape(-1)
        order = col.argsort(descending=True)
        n_active = int((col > 0).sum())
        examples = res.examples(latent)
        assert len(examples) == min(10, n_active)
        top = int(order[0])
        assert (examples[0]["row"], examples[0]["pos"]) == (top // seq, top % seq)  # argmax
        expected = col[order[: len(examples)]]
        values = torch.tensor([e["value"] for e in examples])
        torch.testing.assert_close(values, expected, rtol=1e-5, atol=1e-5)
        for e in examples:
            assert bool(mask[e["row"], e["pos"]])  # never BOS or padding
            row = f[e["row"], :, latent]
            want = torch.where(mask[e["row"]], row, torch.nan)[: len(e["tokens"])]
            got = torch.tensor(e["acts"])
            assert torch.equal(got.isnan(), want.isnan())
            torch.testing.assert_close(got.nan_to_num(), want.nan_to_num(), rtol=1e-5, atol=1e-5)
    # A latent that never fires has no examples.
    dead = [i for i, d in enumerate(res.metric("density").tolist()) if d == 0]
    assert all(res.examples(res.latents[i]) == [] for i in dead)
    assert bool(torch.isnan(res.example_value[dead]).all())
    assert bool((res.example_row[dead] == -1).all())


def test_example_tokens_are_the_rows_without_padding(res, organism, ioi):
    latent = res.ranked(1)[0]
    e = res.examples(latent)[0]
    row = ioi.clean_tokens[e["row"]].tolist()
    while row[-1] == organism.pad_id:
        row.pop()
    assert e["tokens"] == [organism.token_str(t) for t in row]
    assert e["tokens"][0] == "<bos>" and math.isnan(e["acts"][0])  # BOS shown, not measured


def test_histograms_count_active_values_in_power_of_two_bins(res, direct):
    _, f, mask = direct
    acts = f[mask]
    for latent in res.ranked(20, "density"):
        v = acts[:, latent]
        v = v[v > 0].double()
        edges, counts = res.histogram(latent)
        width = float(edges[1])
        assert width == 2.0 ** math.floor(math.log2(width))  # a power of two
        assert float(v.max()) < width * 40 and float(v.max()) >= width * 20  # the smallest
        expected = torch.bincount(torch.floor(v / width).long(), minlength=40)
        assert torch.equal(counts, expected)


def test_histogram_merges_bins_exactly_when_larger_values_arrive():
    """Small values first, then values 100x larger: the merged counts are those of one
    histogram over everything with the final width."""
    gen = torch.Generator().manual_seed(0)
    batches = [torch.rand(2, 5, 3, generator=gen) * s for s in (0.01, 1.0, 100.0)]
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[0, 0] = False
    run = _Running.empty(3, 4, 7, 5, torch.device("cpu"))  # an odd number of bins
    for k, b in enumerate(batches):
        b[1, 2, 1] = 0.0  # an inactive value is not counted
        run.update(b, mask, 2 * k)
    allv = torch.cat([b[mask] for b in batches])
    for latent in range(3):
        v = allv[:, latent]
        v = v[v > 0].double()
        width = 2.0 ** float(run.exponent[latent])
        assert float(v.max()) < width * 7 <= 2 * float(v.max())
        expected = torch.bincount(torch.floor(v / width).long(), minlength=7)
        assert torch.equal(run.hist[latent], expected)
    # The running top-n is the top-n of every content value seen (position [0, 0] is masked).
    assert torch.equal(run.top_value[:, 0], allv[:, 0].topk(4).values)


def test_output_tokens_are_the_decoder_row_through_the_unembedding(res, organism, sae):
    w, _, centre = organism.final_norm_params()
    for latent in [*res.ranked(5), 0, 255]:
        d = sae.W_dec[latent].detach().float()
        d = d - d.mean() if centre else d
        d = d * w if w is not None else d
        logits = d @ organism.W_U.float()
        i = res.index(latent)
        up, down = logits.topk(10), logits.topk(10, largest=False)
        assert res.boosted[i].tolist() == up.indices.tolist()
        assert res.suppressed[i].tolist() == down.indices.tolist()
        torch.testing.assert_close(res.boosted_logits[i], up.values, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(res.suppressed_logits[i], down.values, rtol=1e-4, atol=1e-5)
        toks = res.output_tokens(latent, "boosted")
        assert [t for t, _ in toks] == [organism.token_str(t) for t in up.indices.tolist()]
        assert float(res.sel(latent=latent, metric="top_boosted_logit")) == toks[0][1]


def test_table_sorts_latents_by_any_column(res):
    df = res.table()
    assert list(df.columns) == ["latent", "label", *METRICS, "top_boosted", "top_suppressed"]
    assert len(df) == 256 and df["density"].is_monotonic_decreasing
    assert df["label"][0] == f"L2#{df['latent'][0]}"
    by_max = res.table(sort_by="max")
    assert by_max["max"].is_monotonic_decreasing
    assert res.table("latent", ascending=True)["latent"].tolist() == list(range(256))
    with pytest.raises(InterpError, match="sort_by"):
        res.table(sort_by="densty")
    long = res.to_dataframe()
    assert len(long) == 256 * len(METRICS) and set(long["metric"]) == set(METRICS)
    assert len(res.top(3)) == 3


def _comparable(examples):
    """Examples with NaN (not content) as None, so == compares them."""
    return [{**e, "acts": [None if math.isnan(a) else a for a in e["acts"]]} for e in examples]


def test_a_subset_of_latents_matches_the_full_run(organism, ioi, sae, res):
    sub = interp.sae.features(organism, ioi, sae, latents=[17, 3], top_n=3, progress=False)
    assert sub.latents == [17, 3] and sub.labels["latent"] == ["L2#17", "L2#3"]
    for latent in (17, 3):
        want = res.values[res.index(latent)]
        torch.testing.assert_close(sub.values[sub.index(latent)], want, equal_nan=True)
        assert _comparable(sub.examples(latent)) == _comparable(res.examples(latent)[:3])


def test_bad_input_is_refused_before_any_forward_pass(organism, ioi, sae, monkeypatch):
    def no_forward(*a, **k):
        raise AssertionError("a forward pass ran")

    monkeypatch.setattr(type(organism), "run_with_cache", no_forward)
    with pytest.raises(InterpError, match=r"Latent 256 does not exist.*256 latents"):
        interp.sae.features(organism, ioi, sae, latents=[3, 256])
    with pytest.raises(InterpError, match="empty"):
        interp.sae.features(organism, ioi, sae, latents=[])
    with pytest.raises(InterpError, match="twice"):
        interp.sae.features(organism, ioi, sae, latents=[3, 3])
    with pytest.raises(InterpError, match="top_n"):
        interp.sae.features(organism, ioi, sae, top_n=0)
    with pytest.raises(InterpError, match="data must be"):
        interp.sae.features(organism, 42, sae)
    small = LatentFeatures(values=torch.zeros(1, 5), dims=("latent", "metric"))
    with pytest.raises(InterpError, match="Latent 9 is not in this result"):
        small.index(9)


def test_html_escapes_token_strings(res):
    """A token string such as <script> or a&b<b> shows literally in every HTML view."""
    latent = res.ranked(1)[0]
    i, e = res.index(latent), res.examples(latent)[0]
    ids = res.token_ids.tolist()
    peak = int(res.rows[res.row_index.tolist().index(e["row"]), e["pos"]])
    boosted = int(res.boosted[i, 0])
    evil, amp = "<script>alert(1)</script>", "a&b<b>"
    text = list(res.token_text)
    text[ids.index(peak)] = evil
    if boosted != peak:
        text[ids.index(boosted)] = amp
    bad = dataclasses.replace(res, token_text=text, title="<i>t</i>")
    card = bad.latent_html(latent)
    assert html.escape(evil) in card  # the example's token, shown as typed
    if boosted != peak:
        assert html.escape(repr(amp)) in card  # the boosted token's row
    for page in (card, bad.page_html([latent]), bad._repr_html_()):
        assert "<script>alert" not in page and "a&b<b>" not in page and "<i>t" not in page
    page = bad.page_html([latent])
    assert "<script" not in page.lower() and "://" not in page  # static and offline


def test_save_load_round_trip_is_exact(res, tmp_path):
    res.save(tmp_path / "f")
    back = interp.load_result(tmp_path / "f")
    assert type(back) is LatentFeatures
    for name in ("values", *LatentFeatures.declared_fields()):
        a, b = getattr(res, name), getattr(back, name)
        if isinstance(a, torch.Tensor):
            assert tensors_equal(a, b), name
        else:
            assert a == b, name
    assert back.coords == res.coords and back.labels == res.labels and back.dims == res.dims
    pd.testing.assert_frame_equal(back.table(), res.table())
    latent = res.ranked(1)[0]
    assert back.latent_html(latent) == res.latent_html(latent)


def test_views(res):
    assert LatentFeatures.views() == ("plot", "plot_histogram")
    fig = res.plot()
    assert isinstance(fig, go.Figure) and fig.layout.xaxis.type == "log"
    alive = int((res.metric("density") > 0).sum())
    assert len(fig.data[0].x) == alive
    latent = res.ranked(1)[0]
    hist = res.plot_histogram(latent)
    assert sum(hist.data[0].y) == round(
        float(res.sel(latent=latent, metric="density")) * res.n_tokens
    )
    assert res.plot_histogram().data[0].y == hist.data[0].y  # default: the densest latent
    assert "sae-latent" in res._repr_html_()


def test_cli_writes_the_result_and_an_offline_page(sae_dir, tmp_path):
    out = tmp_path / "feat"
    args = ["sae", "features", str(sae_dir), "--out", str(out), "--rows", "16"]
    got = runner.invoke(app, [*args, "--latents", "3,17", "--sort-by", "max"])
    assert got.exit_code == 0, got.output
    res = interp.load_result(out)
    assert isinstance(res, LatentFeatures) and res.latents == [3, 17] and res.n_rows == 16
    assert res.meta["command"].startswith("interp sae features")
    page = (out / "features.html").read_text(encoding="utf-8")
    assert "L2#3" in page and "L2#17" in page and "<script" not in page.lower()
    out2 = tmp_path / "all"
    got = runner.invoke(app, ["sae", "features", str(sae_dir), "--out", str(out2), "--rows",
                              "16", "--top", "4", "--sort-by", "max"])  # fmt: skip
    assert got.exit_code == 0, got.output
    res = interp.load_result(out2)
    page = (out2 / "features.html").read_text(encoding="utf-8")
    order = [page.index(f"id='latent-{l}'") for l in res.ranked(4, "max")]
    assert order == sorted(order) and page.count("class='sae-latent'") == 4


def test_cli_bad_input_fails_before_writing(sae_dir, tmp_path):
    out = tmp_path / "x"
    cases = [
        ([str(sae_dir), "--latents", "3,999"], "Latent 999 does not exist"),
        ([str(sae_dir), "--latents", "3,a"], "latent indices separated by commas"),
        ([str(tmp_path / "missing"), "--latents", "3"], "is not a directory"),
        ([str(sae_dir), "--sort-by", "dens"], "sort-by"),
    ]
    for args, message in cases:
        got = runner.invoke(app, ["sae", "features", *args, "--out", str(out)])
        assert got.exit_code != 0
        assert isinstance(got.exception, InterpError), got.output
        assert message in str(got.exception)
        assert not out.exists()
