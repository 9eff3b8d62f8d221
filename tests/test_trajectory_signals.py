"""Trajectory signals against hand computations (METHODS.md section 8)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import interp
from interp.analyses.trajectories.signals import (
    change_signals,
    chunk_means,
    confidence,
    cross_layer_change,
    effective_rank,
    rank_dynamics,
)
from interp.errors import InterpError


def test_chunks_are_consecutive_means_with_a_shorter_last_chunk():
    h = torch.arange(5.0)[:, None, None].expand(5, 2, 3)
    c = chunk_means(h, 2)
    assert c.shape == (3, 2, 3)
    assert c[:, 0, 0].tolist() == [0.5, 2.5, 4.0]


def test_change_signals_by_hand():
    # one layer, chunks of one token: h1 = (0, 0), h2 = (1, 0), h3 = (1, 1)
    h = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])[:, None, :]
    s = change_signals(h, k=1)
    assert s.n_chunks == 3
    assert s.net.item() == pytest.approx(math.sqrt(2) / 2)  # ||h3 - h1|| / (N - 1)
    assert s.cumulative.item() == pytest.approx(2.0)
    assert s.aligned.item() == pytest.approx(1 / math.sqrt(2))
    early = change_signals(h, k=1, first_chunks=2)
    assert (early.net.item(), early.cumulative.item(), early.aligned.item()) == pytest.approx(
        (1.0, 1.0, 1.0)
    )


def test_net_change_is_normalised_by_n_minus_one_and_layers_are_averaged():
    v = torch.tensor([3.0, 4.0])
    for N in (2, 5, 9):
        straight = torch.stack([n * v for n in range(N)])[:, None, :]  # a straight path
        s = change_signals(straight, k=1)
        assert s.net.item() == pytest.approx(5.0)  # ||(N-1) v|| / (N-1)
        assert s.cumulative.item() == pytest.approx(5.0 * (N - 1))
        assert s.aligned.item() == pytest.approx(1.0)
    two = torch.stack([torch.stack([n * v, 2 * n * v]) for n in range(3)])  # L = 2
    assert change_signals(two, k=1).layer_mean["net_change"] == pytest.approx(7.5)


def test_fewer_than_two_chunks_is_undefined():
    h = torch.randn(6, 2, 4)
    with pytest.raises(InterpError, match="at least two chunks"):
        change_signals(h, k=6)
    with pytest.raises(InterpError, match="at least 1"):
        chunk_means(h, 0)


def test_effective_rank_of_known_singular_values():
    # Centred orthonormal columns, so centring keeps the singular values (3, 1).
    U = torch.tensor([[1.0, 0], [-1, 0], [0, 1], [0, -1]], dtype=torch.float64) / math.sqrt(2)
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))
    H = U @ torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64)) @ Q[:2]
    p = np.array([0.75, 0.25])
    assert effective_rank(H) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)
    equal = U @ torch.diag(torch.tensor([2.0, 2.0], dtype=torch.float64)) @ Q[:2]
    assert effective_rank(equal) == pytest.approx(2.0, rel=1e-9)


def test_rank_dynamics_equals_an_independent_numpy_computation():
    H = torch.randn(24, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    stride = 4
    res = rank_dynamics(H, stride)

    def er(M):
        s = np.linalg.svd(M - M.mean(0), compute_uv=False)
        p = s / s.sum()
        p = p[p > 0]
        return float(np.exp(-(p * np.log(p)).sum()))

    ers = [er(H.numpy()[: j * stride]) for j in range(1, 24 // stride + 1)]
    d1 = [ers[j] - np.mean(ers[:j]) for j in range(1, len(ers))]
    d2 = [d1[j] - d1[j - 1] for j in range(1, len(d1))]
    np.testing.assert_allclose(res.er.numpy(), ers, rtol=1e-6)
    assert res.erv == pytest.approx(np.mean(d1), rel=1e-9)
    assert res.era == pytest.approx(np.mean(d2), rel=1e-9, abs=1e-12)
    with pytest.raises(InterpError, match="smaller stride"):
        rank_dynamics(H[:8], stride=4)


def test_confidence_and_cross_layer_baselines_by_hand():
    lp = torch.tensor([-0.1, -0.5])
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    out = confidence(lp, logits)
    assert out["mean_logprob"] == pytest.approx(-0.3)
    assert out["perplexity"] == pytest.approx(math.exp(0.3))
    assert out["logit_margin"] == pytest.approx(2.0)
    probs = torch.softmax(logits.double(), -1).numpy()
    assert out["entropy"] == pytest.approx(float((-(probs * np.log(probs)).sum(-1)).mean()))
    h = torch.zeros(2, 3, 2)
    h[:, 1, 0] = 3.0
    h[:, 2, 0] = 3.0
    h[:, 2, 1] = 4.0
    assert cross_layer_change(h) == pytest.approx((3.0 + 4.0) / 2)


def test_signals_of_given_texts_on_the_organism_and_on_minilm(organism, minilm):
    from interp.analyses.trajectories.texts import text_signals, text_states

    prompt, trace = "12 + 34 =", " 2 + 4 = 6 , 1 + 3 = 4 , so 46"
    for model in (organism, minilm):
        hidden = text_states(model, prompt, trace)
        n_trace = len(model.tokenizer.encode(trace, add_special_tokens=False))
        assert hidden.shape == (n_trace, model.n_layers, model.d_model)
        # Independent path: one run_with_cache over the same ids, sliced by hand.
        tok = model.tokenizer
        p_ids = tok.encode(prompt, add_special_tokens=False)
        ids = model.prefix_ids + p_ids + tok.encode(trace, add_special_tokens=False)
        ids += model.suffix_ids
        _, cache = model.run_with_cache(torch.tensor([ids]))
        start = len(model.prefix_ids) + len(p_ids)
        for l in (0, model.n_layers - 1):
            want = cache[f"blocks.{l}.hook_resid_post"][0, start : start + n_trace]
            torch.testing.assert_close(hidden[:, l], want, atol=1e-5, rtol=1e-5)
        out = text_signals(model, prompt, trace, k=4)
        assert out["n_chunks"] == -(-n_trace // 4)
        expected = change_signals(hidden, 4).layer_mean
        assert out["net_change"] == pytest.approx(expected["net_change"])
        assert out["cumulative_change"] > 0 and -1 <= out["aligned_change"] <= 1
        # The rank family reads the per-token states, prefixes every k tokens.
        layers = range(model.n_layers)
        er = np.mean([effective_rank(hidden[:, l]) for l in layers])
        erv = np.mean([rank_dynamics(hidden[:, l], 4).erv for l in layers])
        assert out["effective_rank"] == pytest.approx(er) and out["erv"] == pytest.approx(erv)
    with pytest.raises(InterpError, match="at least two chunks"):
        text_signals(organism, prompt, trace, k=100)
    with pytest.raises(InterpError, match="empty"):
        text_states(organism, prompt, "")


def test_sampling_captures_the_states_a_full_forward_gives(organism):
    from interp.analyses.trajectories.sampling import sample

    task = interp.tasks.arithmetic(organism, n=3, seed=0)
    traces = sample(
        organism, task, n=3, max_new_tokens=40, temperature=1.0, chunk=4, seed=0, progress=False
    )
    assert len(traces) == 9 and {t.sample_index for t in traces} == {0, 1, 2}
    assert all(t.correct in (True, False) for t in traces)
    assert len({tuple(t.tokens) for t in traces}) > 1  # sampling, not one greedy answer
    names = [f"blocks.{l}.hook_resid_post" for l in range(organism.n_layers)]
    for t in traces[:4]:
        i = t.prompt_index
        prompt = task.clean_tokens[i, : int(task.answer_pos[i]) + 1]
        full = torch.cat([prompt, torch.tensor(t.tokens, dtype=torch.long)])[None]
        logits, cache = organism.tl.run_with_cache(full, names_filter=lambda n: n in names)
        P, T = len(prompt), len(t.tokens)
        states = torch.stack([cache[n][0, P : P + T] for n in names], 1)
        torch.testing.assert_close(
            t.chunks.float(), chunk_means(states, 4).float(), atol=1e-4, rtol=1e-4
        )
        logp = torch.log_softmax(logits[0].double(), -1)
        want = logp[P - 1 : P + T - 1].gather(-1, full[0, P:][:, None])[:, 0]
        torch.testing.assert_close(t.logprobs, want, atol=1e-4, rtol=0)
        assert t.text == organism.tokenizer.decode(t.tokens)
        assert t.correct == task.checker(t.text, task.targets[i])
    greedy = sample(organism, task, n=2, max_new_tokens=40, temperature=0, progress=False)
    assert greedy[0].tokens == greedy[1].tokens


def test_sampling_rejects_bad_input(organism):
    from interp.analyses.trajectories.sampling import sample

    task = interp.tasks.arithmetic(organism, n=2, seed=0)
    with pytest.raises(InterpError, match="at least 1"):
        sample(organism, task, n=0)
    with pytest.raises(InterpError, match="no checker"):
        sample(organism, interp.tasks.ioi(organism, n=2, seed=0), n=2)
    with pytest.raises(InterpError, match=r"max_new_tokens <= 5[0-9]"):
        sample(organism, task, n=2, max_new_tokens=64)


def test_sampling_defaults_are_evaluates_and_fit_the_organism(organism):
    import inspect

    from interp.analyses.trajectories.pipeline import evaluate
    from interp.analyses.trajectories.sampling import sample

    shared = ("n", "max_new_tokens", "temperature", "chunk", "seed")
    ev, sa = inspect.signature(evaluate).parameters, inspect.signature(sample).parameters
    assert {p: sa[p].default for p in shared} == {p: ev[p].default for p in shared}
    # With every default, the organism's own arithmetic task fits its 64-token context.
    traces = sample(organism, interp.tasks.arithmetic(organism, n=1, seed=0), progress=False)
    assert len(traces) == sa["n"].default


def _trace(chunks, correct, logprobs=(-0.1, -0.2), i=0, s=0):
    from interp.analyses.trajectories.sampling import Trace

    T = len(logprobs)
    return Trace(
        i,
        s,
        list(range(T)),
        "x",
        torch.tensor(logprobs, dtype=torch.float64),
        torch.ones(T, dtype=torch.float64),
        torch.ones(T, dtype=torch.float64),
        chunks.double(),
        correct,
    )


def test_trace_table_and_auroc_table():
    from interp.analyses.trajectories.scoring import auroc_table, trace_table

    g = torch.Generator().manual_seed(0)
    traces = []
    for j in range(20):
        ch = torch.randn(6, 2, 5, generator=g)
        traces.append(_trace(ch, correct=j % 2 == 0, logprobs=(-0.1 - (j % 2), -0.2), s=j))
    tab = trace_table(traces)
    want = change_signals(traces[3].chunks, 1).layer_mean
    assert tab.loc[3, "net_change"] == pytest.approx(want["net_change"])
    pairs = trace_table(traces, chunk_factor=2)  # chunks of two sampled chunks each
    regrouped = traces[3].chunks.reshape(3, 2, 2, 5).mean(1)
    assert pairs.loc[3, "net_change"] == pytest.approx(
        change_signals(regrouped, 1).layer_mean["net_change"]
    )
    early = trace_table(traces, early=3)
    assert early.loc[3, "net_change"] == pytest.approx(
        change_signals(traces[3].chunks[:3], 1).layer_mean["net_change"]
    )
    aur = auroc_table(tab, n_boot=100).set_index("signal")
    assert aur.loc["mean_logprob", "auroc"] == 1.0  # right answers have the higher log-prob
    assert aur.loc["perplexity", "auroc"] == 1.0  # oriented: lower perplexity = right
    assert aur.loc["mean_logprob", "null_auroc"] < 0.9
    one_class = tab.assign(correct=True)
    with pytest.raises(InterpError, match="both"):
        auroc_table(one_class)


def test_selection_against_majority_vote_by_hand():
    import pandas as pd

    from interp.analyses.trajectories.sampling import Trace
    from interp.analyses.trajectories.scoring import selection

    def tr(i, s, text, correct, n_tok):
        z = torch.zeros(n_tok, dtype=torch.float64)
        return Trace(i, s, list(range(n_tok)), text, z, z, z, torch.zeros(2, 1, 1), correct)

    # prompt 0: majority "5" is wrong, the right "7" has the best net change
    # prompt 1: majority "9" is right, net change picks the wrong "8"
    traces = [
        tr(0, 0, "so 5", False, 10),
        tr(0, 1, "so 5", False, 20),
        tr(0, 2, "so 7", True, 30),
        tr(1, 0, "so 9", True, 10),
        tr(1, 1, "so 9", True, 10),
        tr(1, 2, "so 8", False, 40),
    ]
    table = pd.DataFrame(
        {
            "prompt": [0, 0, 0, 1, 1, 1],
            "correct": [t.correct for t in traces],
            "n_tokens": [10, 20, 30, 10, 10, 40],
            "net_change": [0.1, 0.2, 0.9, 0.1, 0.2, 0.5],
        }
    )
    out = selection(traces, table, signals=["net_change"]).set_index("method")
    assert out.loc["majority_vote", "accuracy"] == 0.5
    assert out.loc["net_change", "accuracy"] == 0.5
    assert out.loc["majority_vote", "tokens_per_prompt"] == (60 + 60) / 2
    early = selection(traces, table, signals=["net_change"], early_tokens=15).set_index("method")
    # prompt 0: 10 + 15 + 15 read, chosen (30 tokens) finished: +15 -> 55; prompt 1: 10+10+15+25
    assert early.loc["net_change", "tokens_per_prompt"] == (55 + 60) / 2


def test_public_signals_checks_the_chunk_size(organism):
    task = interp.tasks.arithmetic(organism, n=2, seed=1)
    traces = interp.trajectories.sample(
        organism, task, n=2, max_new_tokens=30, chunk=2, progress=False
    )
    assert all(t.chunk == 2 for t in traces)
    at4 = interp.trajectories.signals(traces, chunk=4)
    direct = interp.trajectories.trace_table(traces, chunk_factor=2)
    assert at4["net_change"].tolist() == pytest.approx(direct["net_change"].tolist())
    with pytest.raises(InterpError, match="multiple of 2"):
        interp.trajectories.signals(traces, chunk=3)
    with pytest.raises(InterpError, match="longest generation"):
        interp.trajectories.signals(traces, chunk=1000)


def test_empty_and_one_chunk_traces_are_undefined_not_errors():
    from interp.analyses.trajectories import projected_paths
    from interp.analyses.trajectories.scoring import trace_table

    empty = _trace(torch.zeros(0, 2, 3), correct=False, logprobs=())
    one = _trace(torch.ones(1, 2, 3), correct=True, s=1)
    tab = trace_table([empty, one], chunk_factor=2)
    assert tab[["net_change", "effective_rank"]].isna().all().all()
    # Cross-layer change needs one chunk, not two: defined (both layers equal) for the second.
    assert np.isnan(tab.loc[0, "cross_layer_change"]) and tab.loc[1, "cross_layer_change"] == 0
    assert tab.loc[1, "mean_logprob"] == pytest.approx(-0.15)
    paths, explained = projected_paths([empty, one], chunk_factor=2)
    assert paths.shape == (2, 2, 1, 2) and paths[:, 0].isnan().all()
    assert not paths[:, 1].isnan().any() and explained[0] == [0.0, 0.0]


def test_text_states_take_token_ids_on_a_model_without_a_tokenizer(notok):
    from interp.analyses.trajectories.texts import text_signals, text_states

    prompt, trace = [3, 14, 15], torch.tensor([9, 2, 6, 5, 3, 5, 8, 9])
    hidden = text_states(notok, prompt, trace)
    assert hidden.shape == (8, notok.n_layers, notok.d_model)
    _, cache = notok.run_with_cache(torch.tensor([[3, 14, 15, *trace.tolist()]]))
    want = cache[notok.hook_name("resid_post", notok.n_layers - 1)][0, 3:]
    torch.testing.assert_close(hidden[:, -1], want, atol=1e-5, rtol=1e-5)
    assert text_signals(notok, prompt, trace, k=2)["n_chunks"] == 4
    with pytest.raises(InterpError, match="no tokenizer; give token ids"):
        text_states(notok, "some text", trace)
    with pytest.raises(InterpError, match=r"Token ids \[97\] are outside"):
        text_states(notok, prompt, [1, 97])


def test_sampling_without_a_tokenizer_labels_answers_by_id(notok):
    task = interp.Task.from_tokens(notok, clean=[[1, 2, 3, 4]])
    task.targets, task.checker = ["#7"], lambda text, target: target in text.split()
    traces = interp.trajectories.sample(
        notok, task, n=2, max_new_tokens=5, chunk=2, seed=0, progress=False
    )
    assert len(traces) == 2
    for tr in traces:
        assert len(tr.tokens) == 5 and tr.text == " ".join(f"#{t}" for t in tr.tokens)
        assert tr.chunks.shape == (3, notok.n_layers, notok.d_model)
        assert tr.correct == (7 in tr.tokens)


def test_auroc_table_equals_one_bootstrap_per_signal_and_label():
    # Signals are scored in groups sharing a NaN mask; each row must be what a bootstrap of
    # that signal alone gives (same seed, same resamples), bit for bit.
    import pandas as pd

    from interp.analyses.trajectories.scoring import ORIENTATION, auroc_table, orientation
    from interp.stats import bootstrap, roc_auc

    rng = np.random.default_rng(0)
    m = 80
    correct = rng.integers(0, 2, m).astype(bool)
    cols: dict[str, object] = {"correct": correct}
    for j, name in enumerate(ORIENTATION):
        v = np.round(rng.normal(size=m) + 0.5 * correct * (j % 3), 1)  # ties
        if j % 3 == 1:
            v[:7] = np.nan
        cols[name] = v
    table = pd.DataFrame(cols)
    got = auroc_table(table, n_boot=200, seed=3).set_index("signal")
    assert list(got.index) == list(ORIENTATION)
    for name in ORIENTATION:
        sub = table[table[name].notna()]
        y = torch.tensor(sub["correct"].to_numpy(), dtype=torch.long)
        score = torch.tensor(sub[name].to_numpy(dtype=float)) * orientation(name)
        shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(3))]
        for label, target in (("auroc", y), ("null_auroc", shuffled)):
            lo, hi = bootstrap(lambda w, t=target, s=score: roc_auc(s, t, w), len(y), 200, 3)
            assert got.loc[name, label] == float(roc_auc(score, target))
            assert (got.loc[name, f"{label}_low"], got.loc[name, f"{label}_high"]) == (
                float(lo),
                float(hi),
            )
        assert got.loc[name, "n"] == len(y)
