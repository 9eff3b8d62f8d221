"""Linear probes: the solvers against scikit-learn, metrics against scikit-learn, the protocol,
planted directions and random labels, ground truth on the organism, real text on MiniLM."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

import interp
from interp.analyses.probes import (
    CCSProbe,
    KMeansBaseline,
    LogisticProbe,
    MassMeanProbe,
    PCABaseline,
    RidgeProbe,
    sweep,
)
from interp.analyses.probes import protocol as P
from interp.analyses.probes.ccs import contrast_differences, sign_free_accuracy
from interp.analyses.probes.contrastive import orient_folds
from interp.errors import InterpError
from interp.stats import accuracy, f1, r2, roc_auc
from interp.stats import metrics as stat_metrics


def planted(n=600, d=32, margin=1.5, seed=0):
    """Features whose label is readable along one unit direction `u` (plus isotropic noise)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    u /= u.norm()
    y = torch.arange(n) % 2
    X = torch.randn(n, d, generator=g, dtype=torch.float64) + margin * (2 * y[:, None] - 1) * u
    return X, y, u


def fake_cache(X_by_layer):
    """A dict cache of layer representations: layer 0 = resid_pre of block 0."""
    out = {"blocks.0.hook_resid_pre": X_by_layer[0]}
    for l, X in enumerate(X_by_layer[1:]):
        out[f"blocks.{l}.hook_resid_post"] = X
    return out


# ----------------------------------------------------------------- solvers against sklearn


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("d", [20, 400])  # Newton in feature space, and in example space (d > n)
def test_logistic_probe_equals_sklearn_on_every_unit(d, fit_intercept):
    X, y, _ = planted(n=300, d=d)
    perm = torch.randperm(d, generator=torch.Generator().manual_seed(0))
    Xs = torch.stack([X, X[:, perm] * 3 + 1, torch.randn(300, d, dtype=X.dtype)])
    probe = LogisticProbe(C=0.5, fit_intercept=fit_intercept).fit(Xs, y)
    for u in range(3):
        Z = StandardScaler().fit_transform(Xs[u].numpy())
        sk = LogisticRegression(C=0.5, fit_intercept=fit_intercept, tol=1e-10, max_iter=10_000).fit(
            Z, y.numpy()
        )
        # our coef_ lives in the raw space: map sklearn's back through the scaler
        scale = Xs[u].std(0, unbiased=False).numpy()
        mean = Xs[u].mean(0).numpy()
        w_raw = sk.coef_[0] / scale
        b_raw = sk.intercept_[0] - (w_raw * mean).sum()
        np.testing.assert_allclose(probe.coef_[u].numpy(), w_raw, atol=1e-5, rtol=1e-5)
        assert abs(float(probe.intercept_[u]) - b_raw) < 1e-5
        np.testing.assert_array_equal(probe.predict(Xs)[u].numpy(), sk.predict(Z))


@pytest.mark.parametrize("d", [20, 400])
def test_logistic_units_fitted_together_equal_units_fitted_alone(d):
    """Units converge at different iterations and leave the batch; each must still reach the
    solution it reaches alone (and both the float64 optimum, to the solver's tolerance)."""
    X, y, _ = planted(n=300, d=d)
    g = torch.Generator().manual_seed(3)
    units = [
        X,  # readable: several Newton iterations
        torch.randn(300, d, generator=g, dtype=X.dtype),  # noise
        X * 0 + torch.randn(1, d, generator=g, dtype=X.dtype),  # constant: converged at once
        X + 5 * (2 * y[:, None] - 1).double(),  # separable by a wide margin: many iterations
    ]
    together = LogisticProbe().fit(torch.stack(units), y)
    for u, Xu in enumerate(units):
        alone = LogisticProbe().fit(Xu, y)
        np.testing.assert_allclose(together.coef_[u], alone.coef_[0], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(together.intercept_[u], alone.intercept_[0], atol=1e-7)


@pytest.mark.parametrize("d", [20, 400])
@pytest.mark.parametrize("spread, C", [(1e4, 1.0), (1e2, 1e3), (1.0, 1e6)])
def test_logistic_probe_is_optimal_on_raw_badly_scaled_features(d, spread, C):
    """Unstandardised features with wildly different scales, and large C: systems too
    ill-conditioned for float32. The fit must still reach the optimum: gradient ~ 0."""
    X, y, _ = planted(n=300, d=d)
    X = X.clone()
    X[:, 0] *= spread
    X[:, 1] = X[:, 1] * 30 + 500
    probe = LogisticProbe(C=C, standardize=False).fit(X, y)
    w, b = probe.coef_[0], probe.intercept_[0]

    def gradient(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        r = torch.sigmoid(X @ w + b) - y
        return torch.cat([X.T @ r + w / C, r.sum()[None]])

    g0 = gradient(torch.zeros(d, dtype=X.dtype), torch.zeros((), dtype=X.dtype))
    assert gradient(w, b).norm() <= 1e-6 * g0.norm()


def test_logistic_probe_warns_when_it_does_not_converge():
    X, y, _ = planted(n=200, d=10)
    with pytest.warns(RuntimeWarning, match="did not converge in 1 Newton"):
        LogisticProbe(max_iter=1).fit(X, y)
    with pytest.raises(InterpError, match="max_iter"):
        LogisticProbe(max_iter=0)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_logistic_warm_start_reaches_the_same_optimum_in_fewer_iterations(fit_intercept):
    X, y, _ = planted(n=400, d=30)
    Xs = torch.stack([X, X[:, torch.randperm(30, generator=torch.Generator().manual_seed(1))]])
    cold = LogisticProbe(fit_intercept=fit_intercept).fit(Xs, y)
    warm = LogisticProbe(fit_intercept=fit_intercept, warm_start=True).fit(Xs[:, :300], y[:300])
    warm.fit(Xs, y)  # refit on all examples from the 300-example solution
    assert warm.n_iter_ < cold.n_iter_
    np.testing.assert_allclose(warm.coef_, cold.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(warm.intercept_, cold.intercept_, atol=1e-7)
    with pytest.raises(InterpError, match="warm_start"):
        warm.fit(Xs[:, :, :10], y)


@pytest.mark.parametrize("top", [10.0, 3.0])  # a dominant component (iterated), none (exact)
def test_projection_view_is_the_direction_and_the_top_orthogonal_component(top):
    from interp.analyses.probes.views import project

    g = torch.Generator().manual_seed(0)
    # covariance side (small d, exact), covariance side iterated, Gram side (d > n)
    for n, d in ((300, 20), (300, 60), (50, 100)):
        X = torch.randn(3, n, d, generator=g, dtype=torch.float64)
        scale = torch.linspace(3, 0.1, d, dtype=torch.float64)
        scale[0] = top
        X = X * scale
        dirs = torch.randn(3, d, generator=g, dtype=torch.float64)
        dirs /= dirs.norm(dim=-1, keepdim=True)
        view = project(X, dirs)
        for u in range(3):
            Xc = X[u] - X[u].mean(0)
            a = Xc @ dirs[u]
            rest = Xc - a[:, None] * dirs[u]
            b = rest @ torch.linalg.svd(rest, full_matrices=False)[2][0]
            b = b if b[b.abs().argmax()] > 0 else -b  # the documented sign
            torch.testing.assert_close(view[u, :, 0], a, rtol=0, atol=1e-12)
            torch.testing.assert_close(view[u, :, 1], b, rtol=0, atol=1e-9)


def test_top_eigenpair_iterates_where_there_is_a_gap_and_is_exact_where_not(monkeypatch):
    from interp.analyses.probes import views

    g = torch.Generator().manual_seed(1)
    Q = torch.linalg.qr(torch.randn(3, 100, 100, generator=g, dtype=torch.float64)).Q
    spectra = torch.linspace(1.0, 0.01, 100, dtype=torch.float64).repeat(3, 1)
    spectra[0, 0] = 20.0  # a clear gap: converges in a few steps
    spectra[1, 1] = 0.999  # the top eigenvalue 0.1% above the next: left to the exact solver
    spectra[2, 0] = 3.0  # a moderate gap
    G = Q @ torch.diag_embed(spectra) @ Q.mT
    exact, eigh = [], torch.linalg.eigh

    def counting(M: torch.Tensor):  # records the full-size decompositions
        if M.shape[-1] == 100:
            exact.append(M.shape[0])
        return eigh(M)

    monkeypatch.setattr(torch.linalg, "eigh", counting)
    lam, v = views.top_eigenpair(G)
    assert exact == [1]  # only the gapless matrix
    torch.testing.assert_close(lam, spectra.amax(-1), rtol=1e-12, atol=0)
    cos = (v * Q[..., :, 0]).sum(-1).abs()  # column 0 of Q is the top eigenvector
    torch.testing.assert_close(cos, torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-10)


@pytest.mark.parametrize("d", [10, 80])  # primal (d < n) and dual (d > n) solutions
def test_ridge_probe_equals_sklearn(d):
    g = torch.Generator().manual_seed(1)
    X = torch.randn(2, 50, d, generator=g, dtype=torch.float64)
    t = X[0, :, 0] * 2 - X[0, :, 1] + 0.1 * torch.randn(50, generator=g, dtype=torch.float64)
    probe = RidgeProbe(alpha=3.0).fit(X, t)
    for u in range(2):
        Z = StandardScaler().fit_transform(X[u].numpy())
        sk = Ridge(alpha=3.0).fit(Z, t.numpy())
        np.testing.assert_allclose(probe.predict(X)[u].numpy(), sk.predict(Z), atol=1e-8)
        assert abs(float(probe.score(X, t)[u]) - sk.score(Z, t.numpy())) < 1e-8


def test_mass_mean_probe_is_the_difference_of_class_means():
    X, y, _ = planted()
    probe = MassMeanProbe().fit(X, y)
    want = X[y == 1].mean(0) - X[y == 0].mean(0)
    torch.testing.assert_close(probe.coef_[0], want)
    mid = (X[y == 1].mean(0) + X[y == 0].mean(0)) / 2
    torch.testing.assert_close(
        probe.decision_function(mid[None])[0, 0],
        torch.tensor(0.0, dtype=X.dtype),
        atol=1e-9,
        rtol=0,
    )


@pytest.mark.parametrize("pairwise", [True, False])  # both exact AUROC paths
def test_metrics_equal_sklearn_including_ties(pairwise, monkeypatch):
    if not pairwise:
        monkeypatch.setattr(stat_metrics, "PAIRWISE_MAX", 0)
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 2, (3, 60), generator=g)
    s = torch.randint(0, 5, (3, 60), generator=g).double()  # many ties
    pred = (s > 2).long()
    for u in range(3):
        assert abs(float(roc_auc(s[u], y[u])) - roc_auc_score(y[u], s[u])) < 1e-12
        assert abs(float(f1(pred[u], y[u])) - f1_score(y[u], pred[u])) < 1e-12
    assert torch.isnan(roc_auc(s[0], torch.ones(60, dtype=torch.long)))
    # Bootstrap weights (resample counts) equal the metric on the resampled copy.
    yy = y[0]
    idx = torch.randint(0, 60, (60,), generator=g)
    w = torch.bincount(idx, minlength=60).double()[None]
    for fn, x in ((roc_auc, s), (f1, pred), (accuracy, pred), (r2, s)):
        weighted = fn(x, yy, w)[0]
        copied = fn(x[:, idx], yy[idx])
        torch.testing.assert_close(weighted, copied.double(), atol=1e-12, rtol=0)
    # Many resamples at once ([B, m] weights) equal one resample at a time.
    W = torch.stack(
        [torch.bincount(torch.randint(0, 60, (60,), generator=g), minlength=60) for _ in range(7)]
    ).double()
    every = roc_auc(s, yy, W)
    for b in range(7):
        torch.testing.assert_close(every[b], roc_auc(s, yy, W[b : b + 1])[0], atol=1e-12, rtol=0)
        for u in range(3):
            ref = roc_auc_score(yy.numpy(), s[u].numpy(), sample_weight=W[b].numpy())
            assert abs(float(every[b, u]) - ref) < 1e-12


# ----------------------------------------------------------------- protocol


def test_splits_are_stratified_and_folds_partition_the_examples():
    y = torch.tensor([0] * 30 + [1] * 10)
    hold = P.make_split(y, "holdout", test_size=0.25, seed=0)
    train, test = hold.folds[0]
    assert set(train.tolist()).isdisjoint(test.tolist()) and len(train) + len(test) == 40
    assert int(y[test].sum()) == 2 and len(test) == 10  # 25% of each class
    kf = P.make_split(y, 5, seed=0)
    seen = torch.cat([te for _, te in kf.folds]).sort().values
    assert torch.equal(seen, torch.arange(40))
    assert all(int(y[te].sum()) == 2 for _, te in kf.folds)
    with pytest.raises(InterpError, match="at least 20"):
        P.make_split(y, 20)


def test_control_labels_are_fixed_per_type():
    y = torch.tensor([0, 1] * 20)
    types = [f"t{i % 7}" for i in range(40)]
    c = P.control_labels(y, types, seed=0)
    for t in set(types):
        vals = {int(c[i]) for i in range(40) if types[i] == t}
        assert len(vals) == 1
    assert torch.equal(c, P.control_labels(y, types, seed=0))


def test_jump_and_plateau():
    acc = torch.tensor([0.5, 0.52, 0.55, 0.8, 0.93, 0.94, 0.935])
    assert P.jump_and_plateau(acc) == (3, 4)  # halfway to 0.94 is 0.72
    noisy_start = torch.tensor([0.38, 0.56, 0.55, 0.64, 0.91])  # below-chance noise at layer 0
    assert P.jump_and_plateau(noisy_start) == (4, 4)


# ----------------------------------------------------------------- planted direction


@pytest.mark.parametrize("probe", ["logistic", "mass_mean"])
def test_planted_direction_is_recovered_and_random_labels_stay_at_chance(probe):
    X, y, u = planted()
    noise = torch.randn(
        len(y), X.shape[1], generator=torch.Generator().manual_seed(9), dtype=X.dtype
    )
    cache = fake_cache([noise, X])
    res = sweep(cache, y, probe=probe, n_boot=200, progress=False)
    acc, sel = res.metric("accuracy"), res.metric("selectivity")
    assert acc[1] > 0.9 and sel[1] > 0.35
    lo, hi = res.ci_low[0, 0], res.ci_high[0, 0]
    assert lo < 0.5 < hi + 0.03  # the noise layer is at chance
    cos = float(res.direction(1).vector.double() @ u)
    assert cos >= 0.95, cos
    # sign convention: label 1 projects positive
    proj = res.direction(1).project(X)
    assert proj[y == 1].mean() > proj[y == 0].mean()
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(4))]
    rnd = sweep(cache, shuffled, probe=probe, n_boot=200, progress=False)
    assert (rnd.metric("accuracy") - 0.5).abs().max() < 0.1
    assert rnd.metric("selectivity").abs().max() < 0.12
    assert (rnd.metric("auroc") - 0.5).abs().max() < 0.12


def test_kfold_ridge_reads_a_continuous_target():
    X, _, u = planted(n=200)
    t = X @ u + 0.05 * torch.randn(200, generator=torch.Generator().manual_seed(2), dtype=X.dtype)
    res = sweep(
        fake_cache([X[:, torch.randperm(32)] * 0 + torch.randn_like(X), X]),
        t,
        probe="ridge",
        split=5,
        n_boot=100,
        progress=False,
    )
    assert res.coords["metric"] == ["r2", "control_r2", "selectivity"]
    assert res.metric("r2")[1] > 0.95 and res.metric("r2")[0] < 0.1
    assert res.split["kind"] == "kfold" and res.split["k"] == 5
    assert float(res.direction(1).vector.double() @ u) > 0.95


def test_ccs_and_baselines_find_a_planted_contrast():
    g = torch.Generator().manual_seed(5)
    n, d = 400, 24
    u = torch.randn(d, generator=g)
    u /= u.norm()
    y = torch.arange(n) % 2
    base = torch.randn(n, d, generator=g)
    # "x+ is true" moves x+ along +u and x- along -u; the other way for false statements
    s = (2 * y - 1)[:, None].float()
    xp = base + 2 * s * u + 0.3 * torch.randn(n, d, generator=g)
    xn = base - 2 * s * u + 0.3 * torch.randn(n, d, generator=g)
    ccs = CCSProbe(n_restarts=4, n_steps=300).fit(xp, xn)
    assert float(sign_free_accuracy(ccs.predict(xp, xn), y)[0]) > 0.95
    diffs = contrast_differences(xp, xn)
    assert float(sign_free_accuracy(PCABaseline().fit(diffs).predict(diffs), y)[0]) > 0.95
    assert float(sign_free_accuracy(KMeansBaseline().fit(diffs).predict(diffs), y)[0]) > 0.95
    cos = abs(float(ccs.coef_[0].float() @ u)) / float(ccs.coef_[0].norm())
    assert cos > 0.9


def test_kfold_ccs_orients_every_fold_before_pooling():
    # A separable contrast; under 4-fold CV two folds' CCS directions come out with the other
    # sign. Pooling first and taking max(acc, 1 - acc) then read 0.5; each fold is perfect.
    g = torch.Generator().manual_seed(4)
    n, d = 120, 8
    u = torch.randn(d, generator=g)
    u /= u.norm()
    y = torch.arange(n) % 2
    base = torch.randn(n, d, generator=g)
    s = (2 * y - 1)[:, None].float()
    xp = (base + 2 * s * u + 0.3 * torch.randn(n, d, generator=g))[None]
    xn = (base - 2 * s * u + 0.3 * torch.randn(n, d, generator=g))[None]
    spl = P.make_split(y, 4, seed=0)
    parts = []
    for train, test in spl.folds:
        ccs = CCSProbe(n_restarts=2, n_steps=200, seed=0).fit(xp[:, train], xn[:, train])
        parts.append(ccs.predict(xp[:, test], xn[:, test]))
    per_fold = [
        float((p[0] == y[te]).double().mean()) for p, (_, te) in zip(parts, spl.folds, strict=True)
    ]
    assert sorted(per_fold) == [0.0, 0.0, 1.0, 1.0]  # two folds flipped, none wrong
    pred, target = torch.cat(parts, -1), y[spl.eval_index]
    assert float(sign_free_accuracy(pred, target)[0]) == 0.5  # the pooled reading
    oriented = orient_folds(pred, target, [len(te) for _, te in spl.folds])
    assert float(accuracy(oriented, target)[0]) == 1.0
    # One fold (holdout): orienting is max(acc, 1 - acc) of that fold.
    flipped = 1 - pred[:, :30]
    assert float(accuracy(orient_folds(flipped, target[:30], [30]), target[:30])[0]) == 1.0


def test_contrast_pairs_that_differ_by_a_constant_are_ties():
    """x- = x+ + c rounded in float32 (the embedding layer: one fixed completion token): the
    mean-normalised sides are equal up to rounding, so CCS, PCA and k-means must tie (one
    class for every pair) instead of fitting the rounding noise."""
    g = torch.Generator().manual_seed(0)
    n, d = 200, 48
    xp = torch.randn(n, d, generator=g) * torch.linspace(0.1, 30, d)
    xn = xp + torch.randn(d, generator=g)  # float32 sums: rounding differs row by row
    assert not torch.equal(xn - xn.mean(0), xp - xp.mean(0))
    y = (torch.rand(n, generator=g) < 0.4).long()
    diffs = contrast_differences(xp, xn)
    assert torch.count_nonzero(diffs) == 0
    ccs = CCSProbe(n_restarts=2, n_steps=100).fit(xp, xn)
    assert torch.equal(ccs.predict_proba(xp, xn), torch.full((1, n), 0.5, dtype=torch.float64))
    for pred in (
        ccs.predict(xp, xn),
        PCABaseline().fit(diffs).predict(diffs),
        KMeansBaseline().fit(diffs).predict(diffs),
    ):
        assert pred.unique().numel() == 1
        balance = float(y.double().mean())
        assert float(sign_free_accuracy(pred, y)[0]) == max(balance, 1 - balance)
    # A real contrast of one part in a million survives.
    xn2 = xp.double() + 1e-6 * xp.double().abs().mean() * (2 * y[:, None] - 1)
    assert torch.count_nonzero(contrast_differences(xp.double(), xn2)) == n * d


# ----------------------------------------------------------------- organism ground truth


@pytest.fixture(scope="module")
def statements(organism):
    return interp.tasks.facts(organism, n=256, seed=0)


def test_organism_truth_is_readable_but_not_from_the_embedding(organism, statements):
    res = sweep(organism, statements, split=5, n_boot=300, progress=False)
    acc, ctrl = res.metric("accuracy"), res.metric("control_accuracy")
    assert res.labels["layer"][0] == "embed"
    # The last prompt token (":") is the same word in every prompt: its embedding carries only
    # the position (prompt length), not the truth of the statement.
    assert float(acc[0]) <= 0.6
    assert float(acc.max()) >= 0.85 and res.best_layer == organism.n_layers
    assert float(res.metric("selectivity").max()) >= 0.3
    assert (ctrl - 0.5).abs().max() < 0.1
    assert res.jump_layer <= res.best_layer
    df = res.to_dataframe()
    assert set(df.columns) >= {"layer", "metric", "value", "ci_low", "ci_high"}
    assert set(df.metric) == {"accuracy", "f1", "auroc", "control_accuracy", "selectivity"}


def test_organism_head_sweep_equals_a_hand_built_probe_and_disk_cache_agrees(
    organism, statements, tmp_path
):
    heads = sweep(organism, statements, over="heads", n_boot=50, progress=False)
    assert heads.dims == ("layer", "head", "metric") and heads.values.shape == (4, 8, 5)
    d = heads.direction(2, 3)
    assert d.hook == "blocks.2.attn.hook_z" and d.vector.shape == (organism.cfg.d_head,)
    # Independent path: z of head L2H3 at the last token from run_with_cache, the same split.
    _, cache = organism.tl.run_with_cache(statements.clean_tokens)
    rows = torch.arange(len(statements))
    z = cache["blocks.2.attn.hook_z"][rows, statements.answer_pos, 3].double()
    y = statements.labels
    train, test = P.make_split(y, "holdout", seed=0).folds[0]
    want = LogisticProbe().fit(z[train], y[train]).score(z[test], y[test])
    assert abs(float(heads.sel(layer=2, head=3, metric="accuracy")) - float(want[0])) < 1e-9
    store = interp.cache(
        organism,
        statements,
        names=["resid_pre", "resid_post"],
        store=tmp_path / "acts",
        progress=False,
    )
    from_disk = sweep(store, statements.labels, n_boot=50, progress=False)
    from_model = sweep(organism, statements, n_boot=50, progress=False)
    torch.testing.assert_close(from_disk.values, from_model.values, atol=1e-6, rtol=0)


def test_organism_ccs_finds_the_distractor_instead_of_truth(organism, statements):
    kw = {"n_boot": 50, "ccs_restarts": 3, "ccs_steps": 300, "progress": False}
    plain = sweep(organism, statements, probe="ccs", **kw)
    noisy = sweep(organism, statements, probe="ccs", distractor=("red", "blue"), **kw)
    assert plain.coords["metric"] == ["accuracy", "pca_accuracy", "kmeans_accuracy"]
    assert noisy.coords["metric"][3:] == [
        "distractor_accuracy",
        "distractor_pca_accuracy",
        "distractor_kmeans_accuracy",
    ]
    for res in (plain, noisy):
        assert ((res.values >= 0.5) & (res.values <= 1)).all()  # sign-free accuracies
    # At the embedding the two sides differ by one fixed token: nothing to find.
    assert float(plain.sel(layer=0, metric="accuracy")) == 0.5
    # Farquhar et al.: with a salient distractor every method finds it, not the truth.
    for m in ("distractor_accuracy", "distractor_pca_accuracy", "distractor_kmeans_accuracy"):
        assert float(noisy.metric(m).max()) >= 0.95
    found = noisy.metric("distractor_accuracy") >= 0.95
    assert float(noisy.metric("accuracy")[found].max()) <= 0.65


# ----------------------------------------------------------------- real text


def test_minilm_layer_sweep_on_real_text(minilm):
    animals = "dog cat horse cow sheep lion tiger bear wolf fox rabbit mouse".split()
    vehicles = "car bus train truck bicycle plane boat ship taxi tram van scooter".split()
    frames = ["I saw a {} today.", "There is a {} near the house.", "The {} was very old."]
    prompts, labels = [], []
    for f in frames:
        for w in animals:
            prompts.append(f.format(w))
            labels.append(1)
        for w in vehicles:
            prompts.append(f.format(w))
            labels.append(0)
    task = interp.Task.from_prompts(minilm, prompts, labels=labels, name="animals")
    res = sweep(minilm, task, positions="last", split=3, n_boot=100, progress=False)
    assert res.values.shape == (minilm.n_layers + 1, 5)
    assert torch.isfinite(res.values).all()
    assert float(res.metric("accuracy")[1:].max()) >= 0.8


# ----------------------------------------------------------------- errors, persistence, views


def test_bad_input_gets_clear_errors():
    X, y, _ = planted(n=40, d=4)
    cache = fake_cache([X, X])
    with pytest.raises(InterpError, match="39 labels for 40 examples"):
        sweep(cache, y[:-1], progress=False)
    with pytest.raises(InterpError, match="both classes"):
        sweep(cache, torch.zeros(40), progress=False)
    bad = X.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InterpError, match="NaN"):
        sweep(fake_cache([X, bad]), y, progress=False)
    for value in (float("inf"), float("-inf")):
        bad[3, 1] = value
        for standardize in (True, False):
            with pytest.raises(InterpError, match="NaN or inf"):
                LogisticProbe(standardize=standardize).fit(bad, y)
    with pytest.raises(InterpError, match=r"probe=...\): got 'svm'"):
        sweep(cache, y, probe="svm", progress=False)  # type: ignore[arg-type]
    with pytest.raises(InterpError, match="split"):
        sweep(cache, y, split="loo", progress=False)
    with pytest.raises(InterpError, match="lacks"):
        sweep({"blocks.0.hook_resid_pre": X}, y, over="heads", progress=False)
    with pytest.raises(InterpError, match="3 classes"):
        sweep(cache, torch.arange(40) % 3, progress=False)
    with pytest.raises(InterpError, match="at least 2 examples of each class"):
        sweep(cache, (torch.arange(40) == 7).long(), progress=False)


def test_probe_results_save_load_and_plot(tmp_path):
    X, y, _ = planted(n=120, d=8)
    res = sweep(fake_cache([X, X * 2]), y, n_boot=20, progress=False)
    res.save(tmp_path / "p")
    back = interp.load_result(tmp_path / "p")
    torch.testing.assert_close(back.values, res.values)
    torch.testing.assert_close(back.directions, res.directions)
    assert back.split == res.split
    fig = back.plot()
    assert {t.name for t in fig.data if t.name} >= {"accuracy", "control_accuracy", "selectivity"}
    assert len(back.plot_projection().data) == 2


def test_cli_probe(tmp_path):
    from typer.testing import CliRunner

    from interp.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["run", "probe", "--out", str(tmp_path / "p"), "--n", "96"])
    assert out.exit_code == 0, out.output
    assert "accuracy first jumps at layer" in out.output
    assert (tmp_path / "p" / "figure.html").exists()
    res = interp.load_result(tmp_path / "p")
    assert res.probe == "logistic" and res.values.shape == (5, 5)
    out = runner.invoke(
        app,
        [
            "run",
            "probe",
            "--out",
            str(tmp_path / "h"),
            "--n",
            "96",
            "--over",
            "heads",
            "--split",
            "4",
        ],
    )
    assert out.exit_code == 0, out.output
    assert interp.load_result(tmp_path / "h").split["k"] == 4
    bad = runner.invoke(
        app, ["run", "probe", "--out", str(tmp_path / "b"), "--probe", "ccs", "--distractor", "red"]
    )
    assert isinstance(bad.exception, InterpError) and "two words" in str(bad.exception)
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------- declared fields

FIELDS = (
    "probe",
    "over",
    "positions",
    "split",
    "control",
    "n_examples",
    "class_balance",
    "hooks",
    "direction_sign",
    "jump_layer",
    "plateau_layer",
    "best_layer",
    "contrast",
    "distractor",
    "ccs_loss",
    "directions",
    "projection",
    "example_labels",
    "eval_index",
)


def assert_fields_equal(a, b):
    from interp.results.io import tensors_equal

    assert a.declared_fields() == FIELDS
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, torch.Tensor):
            assert tensors_equal(x, y), name
        else:
            assert x == y and type(x) is type(y), name


def head_cache(n=120, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    z = torch.randn(n, 3, 4, generator=g, dtype=torch.float64)
    z[:, 1, 0] += 2 * y
    return {"blocks.0.attn.hook_z": z, "blocks.1.attn.hook_z": z * 3}, y


def test_declared_fields_save_and_load_exactly(tmp_path):
    X, y, _ = planted(n=120, d=8)
    noise = torch.randn(120, 8, generator=torch.Generator().manual_seed(2), dtype=X.dtype)
    cache, hy = head_cache()
    made = [
        sweep(fake_cache([noise, X]), y, split=3, n_boot=20, progress=False),
        sweep(cache, hy, over="heads", n_boot=20, progress=False),
        sweep(fake_cache([X, X * 2]), X[:, 0], probe="ridge", n_boot=20, progress=False),
    ]
    ccs_like = dataclasses.replace(
        made[0],
        probe="ccs",
        control=None,
        contrast=[" true", " false"],
        distractor=["red", "blue"],
        ccs_loss=[0.25, float("nan")],
    )
    assert made[0].best_layer == 1 and made[0].split["k"] == 3
    assert made[1].over == "heads" and made[1].best_layer is None
    assert made[2].class_balance is None and made[2].example_labels.dtype == torch.float32
    for i, res in enumerate([*made, ccs_like]):
        back = interp.load_result(res.save(tmp_path / str(i)))
        assert type(back) is type(res)
        torch.testing.assert_close(back.values, res.values, rtol=0, atol=0)
        assert back.meta == res.meta
        if res.ccs_loss is not None:  # NaN != NaN: the loss is compared apart
            assert back.ccs_loss[0] == 0.25 and np.isnan(back.ccs_loss[1])
            back, res = (dataclasses.replace(r, ccs_loss=None) for r in (back, res))
        assert_fields_equal(back, res)


def test_old_keys_warn_and_read_the_declared_fields(tmp_path):
    X, y, _ = planted(n=120, d=8)
    res = sweep(fake_cache([X, X * 2]), y, n_boot=20, progress=False)
    with pytest.warns(DeprecationWarning, match=r'extras\["directions"\].*\.directions'):
        assert res.extras["directions"] is res.directions
    with pytest.warns(DeprecationWarning, match=r'extras\["labels"\].*\.example_labels'):
        assert res.extras["labels"] is res.example_labels
    for key in ("split", "best_layer", "jump_layer", "plateau_layer", "probe", "hooks"):
        with pytest.warns(DeprecationWarning, match=rf'meta\["{key}"\]'):
            assert res.meta[key] == getattr(res, key)
    # A result saved by the previous code (data in extras and meta) loads into the fields.
    old_meta = {**res.meta, **{k: getattr(res, k) for k in FIELDS[:15]}}
    old_extras = {
        "directions": res.directions,
        "projection": res.projection,
        "labels": res.example_labels,
        "eval_index": res.eval_index,
    }
    old = interp.Result(
        values=res.values,
        dims=res.dims,
        coords=res.coords,
        labels=res.labels,
        ci_low=res.ci_low,
        ci_high=res.ci_high,
        extras=old_extras,
        meta=old_meta,
        title=res.title,
    )
    old.save(tmp_path / "old")
    header = json.loads((tmp_path / "old" / "result.json").read_text())
    header["kind"] = "probe"  # what the previous code wrote for a ProbeResult
    (tmp_path / "old" / "result.json").write_text(json.dumps(header))
    back = interp.load_result(tmp_path / "old")
    assert isinstance(back, type(res))
    assert_fields_equal(back, res)
    assert back.meta == res.meta and not back.extras
    assert back.labels == res.labels  # the axis labels stay the base's
    assert torch.equal(back.direction(1).vector, res.direction(1).vector)


def test_heads_are_named_through_interp_nodes():
    from interp.nodes import Node

    cache, y = head_cache()
    res = sweep(cache, y, over="heads", n_boot=20, progress=False)
    want = res.direction(1, 2)
    for spec in ("L1H2", (1, 2), Node("z", 1, 2)):
        got = res.direction(spec)
        assert torch.equal(got.vector, want.vector) and (got.layer, got.head) == (1, 2)
    with pytest.raises(InterpError, match="give layer and head"):
        res.direction(1)
    hover = res.plot().data[0].customdata
    assert str(hover[1][2]).startswith("L1H2 accuracy")
    assert res.plot_projection("L1H2").layout.title.text.startswith("logistic probe at L1H2")


def test_ccs_completions_come_from_the_task(organism):
    prompts = interp.tasks.facts(organism, n=32, seed=1)
    kw = {"n_boot": 10, "ccs_restarts": 1, "ccs_steps": 30, "progress": False}
    meta = {**prompts.metadata, "contrast": (" true", " false")}
    own = dataclasses.replace(prompts, metadata=meta)
    bare = dataclasses.replace(prompts, metadata={})
    given = sweep(organism, bare, probe="ccs", contrast=(" true", " false"), **kw)
    read = sweep(organism, own, probe="ccs", **kw)
    assert read.contrast == [" true", " false"]
    torch.testing.assert_close(read.values, given.values, rtol=0, atol=0)
    torch.testing.assert_close(read.directions, given.directions, rtol=0, atol=0)
    with pytest.raises(InterpError, match=r"contrast=\(' yes', ' no'\)"):
        sweep(organism, bare, probe="ccs", **kw)
