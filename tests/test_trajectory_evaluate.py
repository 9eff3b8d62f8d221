"""`interp.trajectories.evaluate`, sequential acceptance and the on-disk trace store."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

import interp
from interp.analyses.trajectories.acceptance import sequential_acceptance
from interp.analyses.trajectories.store import TraceStore, load_traces
from interp.errors import InterpError


def _accept_by_loop(df: pd.DataFrame, signal: str, tau: float, prompts, sign: int = 1):
    """Independent reading of the protocol: samples in draw order, first one >= tau, else the
    most common answer (first drawn among ties)."""
    right, tokens = [], []
    for p in prompts:
        g = df[df["prompt"] == p].sort_values("sample")
        spent = 0
        for _, row in g.iterrows():
            spent += row["n_tokens"]
            v = row[signal] * sign
            if not np.isnan(v) and v >= tau:
                right.append(bool(row["correct"]))
                tokens.append(spent)
                break
        else:
            answers = list(g["answer"])
            top = max(answers, key=lambda a: (answers.count(a), -answers.index(a)))
            right.append(bool(g.loc[g["answer"] == top, "correct"].iloc[0]))
            tokens.append(spent)
    return float(np.mean(right)), float(np.mean(tokens))


def _table(seed: int = 0, prompts: int = 12, n: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(prompts):
        for s in range(n):
            correct = bool(rng.random() < 0.6)
            rows.append(
                {
                    "prompt": p,
                    "sample": s,
                    "correct": correct,
                    "n_tokens": int(rng.integers(5, 30)),
                    # a noisy signal that leans towards right answers, undefined now and then
                    "net_change": float(rng.normal(1.0 if correct else 0.0))
                    if rng.random() > 0.1
                    else np.nan,
                    "answer": "right" if correct else str(int(rng.integers(0, 3))),
                }
            )
    return pd.DataFrame(rows)


def test_sequential_acceptance_equals_a_loop_and_calibrates_on_held_out_prompts():
    df = _table()
    out = sequential_acceptance(df, ["net_change", "cumulative_change"], calibration=0.5, seed=3)
    cal, test = out.attrs["calibration_prompts"], out.attrs["test_prompts"]
    assert sorted(cal + test) == list(range(12)) and len(cal) == 6 and not set(cal) & set(test)
    rows = out.set_index("method")
    assert "cumulative_change" not in rows.index  # absent from the table: skipped
    tau = rows.loc["net_change", "threshold"]
    acc, tok = _accept_by_loop(df, "net_change", tau, test)
    assert rows.loc["net_change", "accuracy"] == pytest.approx(acc)
    assert rows.loc["net_change", "tokens_per_prompt"] == pytest.approx(tok)
    # The threshold is the best on the calibration prompts, over every candidate value.
    candidates = [*df.loc[df["prompt"].isin(cal), "net_change"].dropna().unique(), np.inf]
    scored = [(_accept_by_loop(df, "net_change", t, cal), t) for t in candidates]
    best_acc = max(a for (a, _), _ in scored)
    assert rows.loc["net_change", "calibration_accuracy"] == pytest.approx(best_acc)
    fewest = min(t for (a, t), _ in scored if a == best_acc)
    assert _accept_by_loop(df, "net_change", tau, cal) == pytest.approx((best_acc, fewest))
    # Baselines on the same test prompts: never accepting is majority vote.
    assert rows.loc["majority_vote", "accuracy"] == pytest.approx(
        _accept_by_loop(df, "net_change", np.inf, test)[0]
    )
    first = df[df["prompt"].isin(test) & (df["sample"] == 0)]
    assert rows.loc["first_sample", "accuracy"] == pytest.approx(first["correct"].mean())
    assert rows.loc["first_sample", "tokens_per_prompt"] == pytest.approx(first["n_tokens"].mean())
    # Early and per-layer versions keep their signal's direction: lower cumulative change
    # means right, so the threshold is on -value.
    df["early_cumulative_change_L1"] = -df["net_change"]
    flipped = sequential_acceptance(df, ["early_cumulative_change_L1"], calibration=0.5, seed=3)
    row = flipped.set_index("method").loc["early_cumulative_change_L1"]
    assert (row["accuracy"], row["tokens_per_prompt"]) == pytest.approx(
        (rows.loc["net_change", "accuracy"], rows.loc["net_change", "tokens_per_prompt"])
    )
    assert row["threshold"] == pytest.approx(tau)
    with pytest.raises(InterpError, match="fraction"):
        sequential_acceptance(df, ["net_change"], calibration=1.0)
    with pytest.raises(InterpError, match="sample more prompts"):
        sequential_acceptance(df[df["prompt"] == 0], ["net_change"])


def test_trace_store_resumes_to_the_same_traces(organism, tmp_path):
    from interp.analyses.trajectories.sampling import sample

    task = interp.tasks.arithmetic(organism, n=3, seed=1)
    kw = {"n": 2, "max_new_tokens": 24, "chunk": 4, "seed": 5, "progress": False}
    whole = sample(organism, task, **kw)

    calls = {"n": 0}
    check = task.checker

    def flaky(text, target):  # dies on the second prompt, as an interrupted run would
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return check(text, target)

    store = tmp_path / "traces"
    task.checker = flaky
    with pytest.raises(KeyboardInterrupt):
        sample(organism, task, store=store, **kw)
    assert sorted(p.name for p in store.iterdir()) == ["prompt-00000.safetensors", "traces.json"]
    task.checker = check
    resumed = sample(organism, task, store=store, **kw)
    assert calls["n"] == 3  # prompt 0 was read back, not sampled again
    for a, b in zip(resumed, whole, strict=True):
        assert (a.prompt_index, a.sample_index, a.tokens, a.text) == (
            b.prompt_index,
            b.sample_index,
            b.tokens,
            b.text,
        )
        assert a.correct == b.correct and a.answer == b.answer
        torch.testing.assert_close(a.chunks, b.chunks, atol=1e-6, rtol=0)
        torch.testing.assert_close(a.logprobs, b.logprobs, atol=1e-6, rtol=0)
    loaded = load_traces(store)
    assert [t.tokens for t in loaded] == [t.tokens for t in whole]
    with pytest.raises(InterpError, match=r"other settings.*seed"):
        sample(organism, task, store=store, **{**kw, "seed": 6})
    with pytest.raises(InterpError, match="not a trace store"):
        TraceStore(tmp_path)


@pytest.fixture(scope="module")
def evaluated(organism):
    task = interp.tasks.arithmetic(organism, n=24, seed=3)
    traces = interp.trajectories.sample(
        organism, task, n=4, max_new_tokens=48, chunk=4, seed=0, progress=False
    )
    res = interp.trajectories.evaluate(traces, task, early=3, n_boot=200, seed=0)
    return traces, res


def test_evaluate_on_the_organism(organism, evaluated, tmp_path):
    traces, res = evaluated
    df = res.table
    assert len(df) == len(traces) == 96
    assert 0 < df["correct"].mean() < 1  # both right and wrong samples
    # Ground truth: the organism's wrong answers come from sampling one unlikely column total
    # (it was trained on chains with 10% wrong totals), so mean log-prob separates them.
    aur = res.auroc().set_index("signal")
    assert aur.loc["mean_logprob", "auroc"] > 0.9
    # Every ROC-AUC equals scikit-learn's on the per-trace table, with the signal's orientation.
    for signal, sign in res.orientation.items():
        sub = df[df[signal].notna()]
        want = roc_auc_score(sub["correct"], sign * sub[signal])
        assert aur.loc[signal, "auroc"] == pytest.approx(want, abs=1e-9), signal
        assert (
            aur.loc[signal, "auroc_low"]
            <= aur.loc[signal, "auroc"]
            <= aur.loc[signal, "auroc_high"]
        )
    # Per layer: the change signals of each layer alone, against scikit-learn as well.
    la = res.layer_auroc
    assert la.shape == (3, organism.n_layers, 3)
    for i, (name, sign) in enumerate(
        (("net_change", 1), ("cumulative_change", -1), ("aligned_change", 1))
    ):
        for layer in range(organism.n_layers):
            col = df[f"{name}_L{layer}"]
            want = roc_auc_score(df.loc[col.notna(), "correct"], sign * col.dropna())
            assert float(la[i, layer, 0]) == pytest.approx(want, abs=1e-9)
    assert not np.isnan(aur.loc["net_change", "projection_auroc"])
    assert np.isnan(aur.loc["mean_logprob", "projection_auroc"])
    # Majority vote against an independent count over the traces.
    votes = []
    for p in sorted({t.prompt_index for t in traces}):
        ts = [t for t in traces if t.prompt_index == p]
        answers = [t.answer for t in ts]
        top = max(answers, key=lambda a: (answers.count(a), -answers.index(a)))
        votes.append(next(t.correct for t in ts if t.answer == top))
    sel = res.selection.set_index("method")
    assert sel.loc["majority_vote", "accuracy"] == pytest.approx(np.mean(votes))
    assert sel.loc["majority_vote", "tokens_per_prompt"] == pytest.approx(
        sum(len(t.tokens) for t in traces) / 24
    )
    assert (
        sel.loc["early_net_change", "tokens_per_prompt"]
        < sel.loc["net_change", "tokens_per_prompt"]
    )
    acc = res.acceptance.set_index("method")
    assert {"majority_vote", "first_sample", "net_change", "early_net_change"} <= set(acc.index)
    # Paths: the PCA coordinates of each chunk, NaN past a trace's end.
    paths = res.paths
    assert paths.shape[:2] == (organism.n_layers, 96)
    n_chunks = [len(t.chunks) for t in traces]
    assert all((~paths[0, i, :, 0].isnan()).sum() == n_chunks[i] for i in range(len(traces)))
    # Views and exact save / load.
    figs = [
        res.plot(),
        res.plot_roc(),
        res.plot_distributions(),
        res.plot_trajectories(0),
        res.plot_tokens(),
        res.plot_layers(),
    ]
    assert len(figs[-1].data) == 6  # three signals, each a band and a line
    assert len(figs[0].data) == 3 and len(figs[1].data) == 5
    path = res.save(tmp_path / "traj")
    back = interp.load_result(path)
    assert type(back).__name__ == "TrajectoryResult"
    pd.testing.assert_frame_equal(back.table, df)
    pd.testing.assert_frame_equal(back.acceptance, res.acceptance)
    assert torch.equal(back.values.nan_to_num(-9), res.values.nan_to_num(-9))


def _same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert type(a) is type(b)
    assert a.dtypes.to_dict() == b.dtypes.to_dict()
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_tables_are_data_frames_that_save_and_load_exactly(evaluated, tmp_path):
    _, res = evaluated
    table = res.table
    assert table["prompt"].dtype == "int64" and table["n_tokens"].dtype == "int64"
    assert table["correct"].dtype == bool and pd.api.types.is_string_dtype(table["answer"])
    signals = table.columns.drop(["prompt", "sample", "correct", "n_tokens", "answer"])
    assert (table[signals].dtypes == "float64").all()
    assert res.selection["prompts"].dtype == "int64"
    assert {"method", "accuracy", "tokens_per_prompt"} <= set(res.acceptance.columns)
    back = interp.load_result(res.save(tmp_path / "traj"))
    for name in ("table", "selection", "acceptance"):
        _same_table(getattr(back, name), getattr(res, name))
    for name in ("paths", "layer_auroc"):
        a, b = getattr(back, name), getattr(res, name)
        assert a.dtype == b.dtype and torch.equal(a.isnan(), b.isnan())
        assert torch.equal(a.nan_to_num(), b.nan_to_num())
    for name in ("path_explained", "orientation", "calibration_prompts", "fraction_right"):
        assert getattr(back, name) == getattr(res, name), name
    assert "show_top" not in dict(back.meta) and not back.extras


def _old_layout(res) -> interp.results.base.Result:
    """The result as the code before declared fields saved it: tables as float tensors with
    their column names and methods in meta, the rest in extras and meta."""
    table = res.table.drop(columns="answer")
    cols = {"selection": ["prompts", "accuracy", "tokens_per_prompt"]}
    cols["acceptance"] = [c for c in res.acceptance.columns if c != "method"]
    meta = dict(res.meta) | {
        "show_top": False,
        "table_columns": list(table.columns),
        "fraction_right": res.fraction_right,
        "calibration_prompts": res.calibration_prompts,
        "path_explained": res.path_explained,
        "orientation": res.orientation,
    }
    for name, c in cols.items():
        meta[f"{name}_methods"] = list(getattr(res, name)["method"])
        meta[f"{name}_columns"] = c
    extras = {
        "table": torch.tensor(table.astype(float).to_numpy()),
        "paths": res.paths,
        "layer_auroc": res.layer_auroc,
    }
    for name, c in cols.items():
        extras[name] = torch.tensor(getattr(res, name)[c].to_numpy(dtype=float))
    return interp.results.base.Result(
        values=res.values, dims=res.dims, coords=res.coords, ci_low=res.ci_low,
        ci_high=res.ci_high, extras=extras, meta=meta, title=res.title,
    )  # fmt: skip


def test_results_saved_before_declared_fields_load_into_them(evaluated, tmp_path):
    import json

    _, res = evaluated
    path = tmp_path / "old"
    _old_layout(res).save(path)
    header = json.loads((path / "result.json").read_text())
    (path / "result.json").write_text(json.dumps({**header, "kind": "trajectories"}))
    back = interp.load_result(path)
    _same_table(back.table, res.table.drop(columns="answer"))
    _same_table(back.selection, res.selection)
    _same_table(back.acceptance, res.acceptance)
    assert torch.equal(back.layer_auroc.nan_to_num(-9), res.layer_auroc.nan_to_num(-9))
    assert back.orientation == res.orientation and back.path_explained == res.path_explained
    assert (
        "table_columns" not in back.meta and "show_top" not in dict(back.meta) and not back.extras
    )
    assert len(back.plot_tokens().data) == 2


def test_old_spellings_still_read_with_a_warning(evaluated):
    _, res = evaluated
    with pytest.warns(DeprecationWarning, match=r"\.selection"):
        pd.testing.assert_frame_equal(res.selection(), pd.DataFrame(res.selection))
    with pytest.warns(DeprecationWarning, match=r"\.acceptance"):
        pd.testing.assert_frame_equal(res.acceptance(), pd.DataFrame(res.acceptance))
    with pytest.warns(DeprecationWarning, match=r"\.table"):
        pd.testing.assert_frame_equal(res.traces(), res.table)
    with pytest.warns(DeprecationWarning, match=r"\.layer_auroc"):
        assert res.extras["layer_auroc"] is res.layer_auroc
    # Derived frames are plain DataFrames: nothing else of the table can be called.
    assert type(res.selection.round(3)) is pd.DataFrame


def test_default_arguments_run_on_the_organisms_arithmetic(organism):
    from interp.analyses.trajectories.sampling import MAX_NEW_TOKENS, new_token_budget

    # The default task fits the fixed part of the default; longer prompts get what is left.
    assert new_token_budget(organism, interp.tasks.arithmetic(organism), None) == MAX_NEW_TOKENS
    long = interp.tasks.arithmetic(organism, n=2, seed=0, digits=7)
    room = organism.n_ctx - int(long.answer_pos.max()) - 1
    assert 0 < room < MAX_NEW_TOKENS and new_token_budget(organism, long, None) == room
    with pytest.raises(InterpError, match=rf"max_new_tokens <= {room} \(or leave it unset"):
        interp.trajectories.evaluate(organism, long, max_new_tokens=room + 1)
    # Every sampling default (n, max_new_tokens, temperature, chunk, seed) and evaluate's own.
    task = interp.tasks.arithmetic(organism, n=4, seed=0)
    res = interp.trajectories.evaluate(organism, task, n_boot=50, progress=False)
    assert res.meta["params"]["max_new_tokens"] == MAX_NEW_TOKENS
    assert res.meta["params"]["n"] == 6 and len(res.table) == 24
    assert 0 < res.fraction_right < 1
    traces = interp.trajectories.sample(organism, long, n=2, progress=False)
    assert max(len(t.tokens) for t in traces) <= room


def test_evaluate_rejects_bad_input(organism, evaluated):
    traces, _ = evaluated
    with pytest.raises(InterpError, match="early must be at least 2"):
        interp.trajectories.evaluate(traces, early=1)
    with pytest.raises(InterpError, match="non-empty list"):
        interp.trajectories.evaluate([])
    with pytest.raises(InterpError, match="give the task"):
        interp.trajectories.evaluate(organism)
    with pytest.raises(InterpError, match="multiple of 4"):
        interp.trajectories.evaluate(traces, k=6)
    with pytest.raises(InterpError, match="calibration must be a fraction"):
        interp.trajectories.evaluate(traces, calibration=0)
    task = interp.tasks.arithmetic(organism, n=2, seed=0)
    with pytest.raises(InterpError, match="multiple of the sampling chunk"):
        interp.trajectories.evaluate(organism, task, chunk=4, k=6)
    with pytest.raises(InterpError, match="at least 2 prompts"):
        interp.trajectories.evaluate(organism, task[[0]])
    mixed = [*traces[:4], dataclasses.replace(traces[4], chunk=8)]
    with pytest.raises(InterpError, match="sampled differently"):
        interp.trajectories.evaluate(mixed)
    res = interp.trajectories.evaluate(traces, n_boot=50)
    with pytest.raises(InterpError, match="Unknown signal"):
        res.plot_roc(["nope"])
    with pytest.raises(InterpError, match="out of range"):
        res.plot_trajectories(layer=9)


def test_cli_trajectories_resumes_from_its_store(tmp_path):
    from typer.testing import CliRunner

    from interp.cli import app

    runner = CliRunner()
    args = ["run", "trajectories", "--n", "8", "--samples", "3", "--max-new-tokens", "40"]
    store = tmp_path / "traces"
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "a"), "--store", str(store)])
    assert first.exit_code == 0, first.output
    assert "net_change" in first.output and "sequential acceptance" in first.output
    for view in ("figure", "roc", "distributions", "trajectories", "tokens", "layers"):
        assert (tmp_path / "a" / f"{view}.html").exists()
    assert len(list(store.glob("prompt-*.safetensors"))) == 8
    again = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--store", str(store)])
    assert again.exit_code == 0, again.output
    a, b = interp.load_result(tmp_path / "a"), interp.load_result(tmp_path / "b")
    pd.testing.assert_frame_equal(a.table, b.table)
    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "c"), "--task", "ioi"])
    assert isinstance(bad.exception, InterpError) and "no checker" in str(bad.exception)
    assert not (tmp_path / "c").exists()
