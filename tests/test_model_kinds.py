"""Every analysis on every kind of model TransformerLens can hold (issue 17's matrix).

Kinds: the organism (LayerNorm GPT-2), SmolLM2 (RMSNorm, rotary, grouped-query attention, 30
layers, real weights), a model without any normalisation, a model without a tokenizer (tasks
given as token ids), and the MiniLM encoder (bidirectional, no LM head: analyses that read
logits must refuse it with one clear error before any forward pass). Exactness against
independent computations lives in each family's test file; here every analysis must run, return
finite numbers of the right shape, and keep the identities that hold on any model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

import interp
from interp.errors import InterpError
from interp.tasks.task import Task

KINDS = ["organism", "smollm2", "gpt2_nonorm", "notok", "minilm"]
LM_KINDS = [k for k in KINDS if k != "minilm"]

IOI = [
    ("When Mary and John went to the store, John gave a drink to", " Mary", " John"),
    ("When Anna and Peter went to the park, Peter gave a ball to", " Anna", " Peter"),
    ("When Sarah and David went to the shop, David gave a book to", " Sarah", " David"),
    ("When Emma and James went to the beach, James gave a hat to", " Emma", " James"),
]


@dataclass
class Case:
    model: interp.Model
    task: Task  # clean/corrupt with answers (or labels only for the encoder)
    probe_task: Task  # >= 8 prompts with balanced labels


def _swap(prompt: str, a: str, b: str) -> str:
    return prompt.replace(a.strip(), "\0").replace(b.strip(), a.strip()).replace("\0", b.strip())


def _text_case(model: interp.Model, answers: bool) -> Case:
    clean = [p for p, _, _ in IOI]
    corrupt = [_swap(p, a, b) for p, a, b in IOI]
    task = Task.from_prompts(
        model,
        clean=clean,
        corrupt=corrupt,
        answers=[(a, b) for _, a, b in IOI] if answers else None,
        name="ioi-mini",
    )
    words = ["cat", "dog", "red", "blue", "sun", "tree", "car", "ship"]
    probe = Task.from_prompts(
        model,
        clean=[f"The {w} is {'big' if i % 2 else 'small'}" for i, w in enumerate(words * 2)],
        labels=[i % 2 for i in range(16)],
        name="size",
    )
    return Case(model, task, probe)


def _token_case(model: interp.Model) -> Case:
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(1, model.d_vocab, (4, 10), generator=g)
    corrupt = clean.clone()
    corrupt[:, 3] = (clean[:, 3] + 7) % (model.d_vocab - 1) + 1
    answers = torch.stack([clean[:, 3], corrupt[:, 3]], 1)
    task = Task.from_tokens(model, clean=clean, corrupt=corrupt, answers=answers, name="ids")
    probe_ids = torch.randint(1, model.d_vocab, (16, 8), generator=g)
    labels = torch.arange(16) % 2
    probe_ids[:, -1] = 5 + labels  # the label is readable from the last token
    probe = Task.from_tokens(model, clean=probe_ids, labels=labels, name="ids-probe")
    return Case(model, task, probe)


@pytest.fixture(scope="module", params=KINDS)
def case(request) -> Case:
    kind = request.param
    model = request.getfixturevalue(kind)
    if kind == "notok":
        return _token_case(model)
    if kind == "organism":
        task = interp.tasks.ioi(model, n=4, seed=0)
        probe = interp.tasks.facts(model, n=16, seed=0)
        return Case(model, task, probe)
    return _text_case(model, answers=kind != "minilm")


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


def _needs_logits(case: Case) -> bool:
    """True for the encoder: analyses that read logits must refuse it."""
    return not case.model.has_lm_head


# ---------------------------------------------------------------- attribution


def test_direct_logit(case: Case) -> None:
    m = case.model
    if _needs_logits(case):
        with pytest.raises(InterpError, match="LM head"):
            interp.attribution.direct_logit(m, case.task)
        return
    res = interp.attribution.direct_logit(m, case.task, n_boot=50)
    assert res.values.shape[-2:] == (m.n_layers, m.n_heads)
    err = interp.attribution.sum_to_total(m, case.task)
    assert err["max_rel_error"] < 1e-4


def test_logit_lens(case: Case) -> None:
    m = case.model
    if _needs_logits(case):
        with pytest.raises(InterpError, match="LM head"):
            interp.attribution.logit_lens(m, case.task)
        return
    res = interp.attribution.logit_lens(m, case.task, k=3)
    df = res.to_dataframe()
    assert len(df) > 0 and _finite(torch.tensor(df["value"].to_numpy(dtype=float)))
    # The last row decodes the final residual: it reproduces the model's own log-probs.
    assert res.final_layer_max_abs_logprob_error < 1e-4
    kl = res.values[res.coords["metric"].index("kl_to_final")]
    assert float(kl[-1].abs().max()) < 1e-4


def test_ablate(case: Case) -> None:
    m = case.model
    heads = [[(0, 0)], [(m.n_layers - 1, m.n_heads - 1)]]  # two head sets, one value each
    if _needs_logits(case):
        with pytest.raises(InterpError, match="LM head"):
            interp.attribution.ablate(m, case.task, heads=heads)
        return
    res = interp.attribution.ablate(m, case.task, heads=heads, how="zero", n_boot=50)
    assert _finite(res.values) and res.values.numel() == 2


def test_detect_heads_and_attention(case: Case) -> None:
    m = case.model
    scores = interp.attribution.detect_heads(m, kind="previous_token", n=4, seq_len=6)
    assert scores.values.shape == (m.n_layers, m.n_heads)
    assert float(scores.values.min()) >= 0 and float(scores.values.max()) <= 1 + 1e-5
    att = interp.attribution.attention_patterns(m, case.task, heads=[(0, 0), (1, m.n_heads - 1)])
    rows = att.values.sum(-1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-4)


# ---------------------------------------------------------------- patching


def test_activation_patch(case: Case) -> None:
    m = case.model
    if _needs_logits(case):
        with pytest.raises(InterpError, match="LM head"):
            interp.patching.activation_patch(m, case.task, target="z")
        return
    res = interp.patching.activation_patch(m, case.task, target="z", n_boot=50, progress=False)
    assert res.values.shape[-2:] == (m.n_layers, m.n_heads) and _finite(res.values)
    # Denoising the whole residual stream at the first layer restores the clean run exactly.
    full = interp.patching.activation_patch(
        m, case.task, target="resid_pre", n_boot=50, progress=False
    )
    assert abs(float(full.values.reshape(-1)[0]) - 1.0) < 1e-3


def test_attribution_patch(case: Case) -> None:
    m = case.model
    if _needs_logits(case):
        with pytest.raises(InterpError, match="LM head"):
            interp.patching.attribution_patch(m, case.task, target="z")
        return
    res = interp.patching.attribution_patch(m, case.task, target="z", n_boot=50, progress=False)
    assert res.values.shape[-2:] == (m.n_layers, m.n_heads) and _finite(res.values)


def test_path_patch(case: Case) -> None:
    m = case.model
    sender = [(0, 0), (1, 1)]
    if _needs_logits(case):
        with pytest.raises(InterpError, match="LM head"):
            interp.patching.path_patch(m, case.task, sender=sender)
        return
    res = interp.patching.path_patch(m, case.task, sender=sender, n_boot=50, progress=False)
    assert res.values.numel() == 2 and _finite(res.values)


# ---------------------------------------------------------------- probes and caching


@pytest.mark.parametrize("over", ["layers", "heads"])
def test_probe_sweep(case: Case, over: str) -> None:
    m = case.model
    res = interp.probes.sweep(m, case.probe_task, over=over, n_boot=50, progress=False)
    assert _finite(res.values) and float(res.values.max()) <= 1.0
    # values: [layer (embed + every block), metric] or [layer, head, metric]
    units = (m.n_layers + 1,) if over == "layers" else (m.n_layers, m.n_heads)
    assert res.values.shape[: len(units)] == units


def test_cache_every_kind(case: Case) -> None:
    m = case.model
    acts = interp.cache(m, case.task, names=["resid_post", "z"], progress=False)
    z = acts[m.hook_name("z", 0)]
    assert z.shape == (len(case.task), case.task.seq_len, m.n_heads, m.d_head)
    assert _finite(acts[m.hook_name("resid_post", m.n_layers - 1)])


# ---------------------------------------------------------------- trajectories


def test_sampling_with_capture(case: Case) -> None:
    m = case.model
    task = case.task[:1]
    task.targets = ["x"]
    task.checker = lambda text, target: target in text
    if not m.has_lm_head or not m.is_causal:
        with pytest.raises(InterpError, match=r"generat|LM head|bidirectional"):
            interp.trajectories.sample(m, task, n=2, max_new_tokens=4, progress=False)
        return
    traces = interp.trajectories.sample(m, task, n=2, max_new_tokens=6, chunk=2, progress=False)
    assert len(traces) == 2
    for tr in traces:
        assert tr.chunks.shape[1:] == (m.n_layers, m.d_model)
        assert math.isfinite(float(tr.chunks.sum()))
