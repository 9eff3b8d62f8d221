"""interp.stats against independent computations: resamples against the generator's own draws,
bootstrap intervals against a loop over resampled copies, ROC-AUC against a brute-force pairwise
count, the ROC curve's area against ROC-AUC, ranks and Spearman against scipy (or brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from interp.errors import InterpError
from interp.stats import (
    bootstrap,
    bootstrap_mean,
    bootstrap_ratio,
    percentile_interval,
    ranks,
    resample_counts,
    roc_auc,
    roc_curve,
    spearman,
)
from interp.stats import metrics as stat_metrics


def draws(n, n_boot, seed):
    """The resample indices every bootstrap in the package is built on, drawn directly."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, n, (n_boot, n), generator=gen)


def quantiles(vals, alpha, nan_omit=False):
    q = torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64)
    return (torch.nanquantile if nan_omit else torch.quantile)(vals.double(), q, dim=0)


# ----------------------------------------------------------------- resampling


def test_resample_counts_are_the_generators_draws():
    idx = draws(23, 50, seed=4)
    counts = resample_counts(23, 50, seed=4)
    assert counts.dtype == torch.float64 and counts.shape == (50, 23)
    for b in range(50):
        assert torch.equal(counts[b], torch.bincount(idx[b], minlength=23).double())
    assert torch.equal(counts.sum(-1), torch.full((50,), 23.0, dtype=torch.float64))
    assert not torch.equal(counts, resample_counts(23, 50, seed=5))


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.3])
def test_bootstrap_percentiles_equal_torch_quantile(alpha):
    boots = torch.randn(999, 7, dtype=torch.float64)
    q = torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64)
    want = torch.quantile(boots, q, dim=0)
    for got, ref in zip(percentile_interval(boots, confidence=1 - alpha), want, strict=True):
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
    boots[3, 2] = float("nan")  # NaN columns give NaN, as torch.quantile does
    lo, hi = percentile_interval(boots, confidence=1 - alpha)
    assert lo[2].isnan() and hi[2].isnan() and not lo[:2].isnan().any()
    lo, hi = percentile_interval(boots, confidence=1 - alpha, nan="omit")  # ... or are left out
    want = quantiles(boots, alpha, nan_omit=True)
    assert torch.equal(lo, want[0]) and torch.equal(hi, want[1]) and not lo.isnan().any()


def test_percentile_interval_refuses_an_unknown_nan_policy():
    with pytest.raises(InterpError, match="Did you mean 'omit'"):
        percentile_interval(torch.randn(10, 2), nan="omitt")


def test_percentile_interval_keeps_the_cell_shape():
    boots = torch.randn(200, 3, 4, dtype=torch.float64)
    lo, hi = percentile_interval(boots, confidence=0.9)
    want = quantiles(boots, 0.1)
    assert lo.shape == hi.shape == (3, 4)
    torch.testing.assert_close(lo, want[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(hi, want[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_bootstrap_mean_equals_a_loop_over_resampled_copies(seed):
    x = torch.randn(40, 2, 3, dtype=torch.float64)
    idx = draws(40, 300, seed)
    boots = torch.stack([x[idx[b]].mean(0) for b in range(300)])
    want = quantiles(boots, 0.1)
    mean, lo, hi = bootstrap_mean(x, n_boot=300, confidence=0.9, seed=seed)
    torch.testing.assert_close(mean, x.mean(0), rtol=0, atol=1e-12)
    torch.testing.assert_close(lo, want[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(hi, want[1], rtol=0, atol=1e-12)


def test_bootstrap_ratio_equals_a_loop_over_resampled_copies():
    num = torch.randn(30, 4, dtype=torch.float64)
    den = torch.rand(30, dtype=torch.float64) + 0.5
    idx = draws(30, 200, seed=1)
    boots = torch.stack([num[i].mean(0) / den[i].mean() for i in idx])
    want = quantiles(boots, 0.05)
    ratio, lo, hi = bootstrap_ratio(num, den, n_boot=200, seed=1)
    torch.testing.assert_close(ratio, (num.mean(0) / den.mean()).float())
    torch.testing.assert_close(lo, want[0].float(), rtol=0, atol=1e-6)
    torch.testing.assert_close(hi, want[1].float(), rtol=0, atol=1e-6)


def test_single_sample_collapses_the_interval():
    mean, lo, hi = bootstrap_mean(torch.tensor([[2.0, -1.0]]))
    assert torch.equal(mean, lo) and torch.equal(lo, hi)
    r, rlo, rhi = bootstrap_ratio(torch.tensor([[3.0]]), torch.tensor([2.0]))
    assert float(r) == float(rlo) == float(rhi) == 1.5


def test_bootstrap_of_auc_equals_a_loop_skipping_one_class_resamples():
    """`bootstrap` with weights = the metric of each resampled copy; resamples with one class
    (AUC undefined) are left out of the interval."""
    g = torch.Generator().manual_seed(0)
    y = torch.tensor([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    s = torch.randint(0, 4, (2, 10), generator=g).double()
    idx = draws(10, 250, seed=2)
    copies = torch.stack([roc_auc(s[:, i], y[i]) for i in idx])  # [B, U]
    assert copies.isnan().any()  # some resamples draw no positive
    want = quantiles(copies, 0.05, nan_omit=True)
    lo, hi = bootstrap(lambda w: roc_auc(s, y, w), 10, 250, seed=2)
    torch.testing.assert_close(lo, want[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(hi, want[1], rtol=0, atol=1e-12)


# ----------------------------------------------------------------- ROC-AUC


def brute_auc(score, y, w=None):
    """Sum over every (positive, negative) pair: 1 ranked right, 1/2 tied, each pair weighted
    by the product of its examples' weights."""
    w = [1.0] * len(y) if w is None else list(map(float, w))
    pos = [i for i in range(len(y)) if y[i] == 1]
    neg = [i for i in range(len(y)) if y[i] == 0]
    num = den = 0.0
    for i, j in itertools.product(pos, neg):
        a, b = float(score[i]), float(score[j])
        num += w[i] * w[j] * (1.0 if a > b else 0.5 if a == b else 0.0)
        den += w[i] * w[j]
    return num / den if den > 0 else float("nan")


@pytest.mark.parametrize("pairwise", [True, False])  # both exact ROC-AUC paths
def test_roc_auc_equals_brute_force_pair_count_with_ties(pairwise, monkeypatch):
    if not pairwise:
        monkeypatch.setattr(stat_metrics, "PAIRWISE_MAX", 0)
    g = torch.Generator().manual_seed(7)
    for m in (2, 5, 13, 40):
        y = torch.randint(0, 2, (m,), generator=g)
        y[0], y[1] = 0, 1  # both classes present
        for s in (
            torch.randint(0, 3, (3, m), generator=g).double(),  # many ties
            torch.randn(3, m, generator=g, dtype=torch.float64),
        ):
            w = resample_counts(m, 6, seed=m)
            got, weighted = roc_auc(s, y), roc_auc(s, y, w)
            assert got.shape == (3,) and weighted.shape == (6, 3)
            for u in range(3):
                assert abs(float(got[u]) - brute_auc(s[u], y)) < 1e-12
                assert abs(float(roc_auc(s[u], y)) - brute_auc(s[u], y)) < 1e-12
                for b in range(6):
                    want = brute_auc(s[u], y, w[b])
                    if np.isnan(want):
                        assert weighted[b, u].isnan()
                    else:
                        assert abs(float(weighted[b, u]) - want) < 1e-12


def test_roc_auc_without_both_classes_is_nan():
    assert roc_auc(torch.randn(5), torch.ones(5, dtype=torch.long)).isnan()
    assert roc_auc(torch.randn(2, 5), torch.zeros(5, dtype=torch.long)).isnan().all()


def test_roc_curve_area_is_roc_auc():
    """The curve moves tied examples together, so its trapezoidal area counts ties as half."""
    g = torch.Generator().manual_seed(1)
    for m in (3, 20, 101):
        y = torch.randint(0, 2, (m,), generator=g)
        y[0], y[1] = 0, 1
        for s in (torch.randint(0, 4, (m,), generator=g).double(), torch.randn(m, generator=g)):
            fpr, tpr = roc_curve(s.double(), y.double())
            assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
            assert (fpr.diff() >= 0).all() and (tpr.diff() >= 0).all()
            area = float(((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2).sum())
            assert abs(area - float(roc_auc(s, y))) < 1e-12


# ----------------------------------------------------------------- rank correlation


def brute_ranks(v):
    """0-based average ranks: values below, plus half of the other equal values."""
    return torch.tensor(
        [float((v < x).sum()) + (float((v == x).sum()) - 1) / 2 for x in v], dtype=torch.float64
    )


def test_ranks_are_exact_average_ranks():
    g = torch.Generator().manual_seed(2)
    for v in (
        torch.randint(0, 5, (50,), generator=g).double(),
        torch.randn(30, generator=g, dtype=torch.float64),
        torch.tensor([3.0, 3.0, 3.0], dtype=torch.float64),
        torch.tensor([1.0], dtype=torch.float64),
        torch.tensor([-0.0, 0.0, 1.0, 0.0], dtype=torch.float64),
    ):
        assert torch.equal(ranks(v), brute_ranks(v))
    assert ranks(torch.zeros(0, dtype=torch.float64)).shape == (0,)


def test_spearman_matches_an_independent_computation():
    g = torch.Generator().manual_seed(5)
    try:
        from scipy.stats import spearmanr
    except ImportError:  # brute force: Pearson correlation of the average ranks
        spearmanr = None
    for n in (3, 10, 200):
        for a, b in (
            (torch.randn(n, generator=g), torch.randn(n, generator=g)),
            (
                torch.randint(0, 3, (n,), generator=g).float(),
                torch.randint(0, 4, (n,), generator=g),
            ),
        ):
            got = spearman(a, b)
            if spearmanr is not None:
                want = float(spearmanr(a.numpy(), b.numpy()).statistic)
            else:
                ra, rb = brute_ranks(a.double()), brute_ranks(b.double())
                want = float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])
            assert abs(got - want) < 1e-12
    x = torch.randn(4, 5, generator=g)
    assert abs(spearman(x, x.reshape(-1) * 2 + 1) - 1) < 1e-12  # flattened, monotone
    assert abs(spearman(x, -x) + 1) < 1e-12
    assert np.isnan(spearman(x, torch.ones(20)))  # a constant has no ranking


def test_ranks_of_integers_are_float_average_ranks():
    # empty_like kept the int dtype: the half ranks of ties were truncated
    got = ranks(torch.tensor([1, 1, 2]))
    assert got.dtype == torch.float64
    assert torch.equal(got, torch.tensor([0.5, 0.5, 2.0], dtype=torch.float64))
    assert torch.equal(
        ranks(torch.tensor([True, False, True])), torch.tensor([1.5, 0.0, 1.5]).double()
    )


def test_spearman_of_a_tensor_with_nan_is_nan():
    # NaN ranked above every number: [1, nan, 3] read as perfectly monotone-ish (0.5)
    assert np.isnan(spearman(torch.tensor([1.0, float("nan"), 3.0]), torch.tensor([1.0, 2.0, 3.0])))
    assert np.isnan(spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([float("nan")] * 3)))


@pytest.mark.parametrize("level", [0.0, 1.0, -0.1, 1.5, float("nan")])
def test_every_bootstrap_refuses_a_confidence_outside_the_unit_interval(level):
    x = torch.randn(10, 3)
    with pytest.raises(InterpError, match="confidence"):
        percentile_interval(x, confidence=level)
    with pytest.raises(InterpError, match="confidence"):
        bootstrap(lambda w: w @ x.double(), 10, 20, 0, confidence=level)
    with pytest.raises(InterpError, match="confidence"):
        bootstrap_ratio(x, torch.ones(10), n_boot=20, confidence=level)
    for n in (1, 10):  # one sample has no interval, but a wrong level is still wrong
        with pytest.raises(InterpError, match="confidence"):
            bootstrap_mean(x[:n], n_boot=20, confidence=level)
    with pytest.raises(InterpError, match="confidence"):
        bootstrap_ratio(x[:1], torch.ones(1), n_boot=20, confidence=level)


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.3])
def test_the_old_alpha_keyword_is_the_tail_mass_and_warns(alpha):
    x = torch.randn(40, 3, dtype=torch.float64)
    new = bootstrap_mean(x, n_boot=200, confidence=1 - alpha, seed=1)
    with pytest.warns(DeprecationWarning, match="confidence="):
        old = bootstrap_mean(x, n_boot=200, alpha=alpha, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(old, new, strict=True))
    # the default 0.95 reads as the 2.5% and 97.5% quantiles, as alpha=0.05 did
    boots = torch.randn(999, 2, dtype=torch.float64)
    got = percentile_interval(boots)
    with pytest.warns(DeprecationWarning):
        old = percentile_interval(boots, alpha=0.05)
    assert all(torch.equal(g, o) for g, o in zip(got, old, strict=True))
    with pytest.raises(TypeError):  # an old positional tail mass fails loudly, never reads as 5%
        percentile_interval(boots, 0.05)  # type: ignore[misc]
    want = torch.quantile(boots, torch.tensor([0.025, 0.975], dtype=torch.float64), dim=0)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


def test_the_weighted_metrics_stay_on_the_inputs_device():
    # The "meta" device has shapes and no data: any tensor made on the CPU inside would clash.
    pred = torch.zeros(3, 8, dtype=torch.long, device="meta")
    y = torch.zeros(8, dtype=torch.long, device="meta")
    score = torch.zeros(3, 8, device="meta")
    m = stat_metrics
    for fn, x in ((m.accuracy, pred), (m.f1, pred), (m.r2, score)):
        out = fn(x, y.double() if fn is m.r2 else y)
        assert out.device.type == "meta" and out.shape == (3,)


@pytest.mark.parametrize("alpha", [0.05, 0.05 / 3, 0.01 / 7, 1e-13])
def test_the_old_alpha_reaches_the_quantiles_exactly(alpha):
    from interp.stats.resampling import _from_alpha, tail_mass

    assert tail_mass(_from_alpha(alpha), "test") == alpha  # not 1 - (1 - alpha)
    assert tail_mass(0.95, "test") == 0.05  # a written level reads as its decimal tail


def test_weighted_metrics_take_one_weight_vector_and_per_unit_labels():
    pred = torch.tensor([[1, 0, 1, 1], [0, 0, 1, 1]])
    y = torch.tensor([1, 0, 0, 1])
    w = torch.tensor([1.0, 2.0, 1.0, 1.0])
    want = (w * (pred == y).double()).sum(-1) / w.sum()
    torch.testing.assert_close(stat_metrics.accuracy(pred, y, w), want.double())
    per_unit = torch.stack([y, 1 - y])
    torch.testing.assert_close(
        stat_metrics.accuracy(pred, per_unit), (pred == per_unit).double().mean(-1)
    )
