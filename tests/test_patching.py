"""Causal mediation: exactness against transformer_lens.patching and independent hand-written
patches, sanity identities, AtP/AtP* against autograd, path patching, ground truth on the organism.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from dataclasses import replace

import pytest
import torch
import transformer_lens.patching as tlp

import interp
from interp.analyses.attribution import detect_heads
from interp.analyses.patching import (
    Contrast,
    GaussianNoise,
    Node,
    activation_patch,
    agreement,
    attribution_patch,
    path_patch,
    spearman,
)
from interp.analyses.patching.engine import Patcher
from interp.analyses.patching.nodes import sweep
from interp.analyses.patching.readout import DEFAULT_BUDGET, make_readout
from interp.analyses.patching.runs import Input
from interp.analyses.patching.verify import verify
from interp.errors import InterpError
from interp.nodes import head_label, head_node
from interp.results.io import tensors_equal
from interp.results.patching import AtPResult
from interp.tasks.metrics import logit_diff

TL_SWEEPS = [
    ("resid_pre", True, tlp.get_act_patch_resid_pre),
    ("resid_mid", True, tlp.get_act_patch_resid_mid),
    ("attn_out", True, tlp.get_act_patch_attn_out),
    ("mlp_out", True, tlp.get_act_patch_mlp_out),
    ("z", True, tlp.get_act_patch_attn_head_out_by_pos),
    ("q", True, tlp.get_act_patch_attn_head_q_by_pos),
    ("k", True, tlp.get_act_patch_attn_head_k_by_pos),
    ("v", True, tlp.get_act_patch_attn_head_v_by_pos),
    ("pattern", True, tlp.get_act_patch_attn_head_pattern_by_pos),
    ("z", False, tlp.get_act_patch_attn_head_out_all_pos),
    ("q", False, tlp.get_act_patch_attn_head_q_all_pos),
    ("k", False, tlp.get_act_patch_attn_head_k_all_pos),
    ("v", False, tlp.get_act_patch_attn_head_v_all_pos),
    ("pattern", False, tlp.get_act_patch_attn_head_pattern_all_pos),
]


def ioi_task(model, n=6, seed=0):
    return interp.tasks.ioi(model, n=n, seed=seed, templates=[0])


def tl_reference(model, task, fn, mode="denoise", metric=logit_diff):
    """transformer_lens.patching on the same inputs: one full forward per component."""
    base, source = task.corrupt_tokens, task.clean_tokens
    if mode == "noise":
        base, source = source, base
    _, cache = model.tl.run_with_cache(source)
    return fn(model.tl, base, cache, lambda logits: metric(logits, task).mean())


@pytest.mark.parametrize("which", ["gpt2_random", "organism"])
@pytest.mark.parametrize(("target", "per_position", "fn"), TL_SWEEPS, ids=lambda x: str(x))
def test_equals_transformer_lens(which, target, per_position, fn, request):
    model = request.getfixturevalue(which)
    task = ioi_task(model)
    ours = activation_patch(
        model, task, target=target, per_position=per_position, n_boot=10, progress=False
    )
    ref = tl_reference(model, task, fn)
    assert ours.raw.shape == ref.shape
    torch.testing.assert_close(ours.raw, ref.float(), atol=1e-4, rtol=0)
    # the normalised score is (raw - corrupt) / (clean - corrupt)
    gap = ours.clean.mean() - ours.corrupt.mean()
    expected = (ref.float() - ours.corrupt.mean()) / gap
    torch.testing.assert_close(ours.values, expected, atol=1e-4, rtol=1e-4)


def test_pattern_dest_src_and_noising_equal_transformer_lens(gpt2_random):
    task = ioi_task(gpt2_random, n=4)
    ours = activation_patch(
        gpt2_random, task, target="pattern", per_position="dest_src", n_boot=10, progress=False
    )
    ref = tl_reference(gpt2_random, task, tlp.get_act_patch_attn_head_pattern_dest_src_pos)
    torch.testing.assert_close(ours.raw, ref.float(), atol=1e-4, rtol=0)
    for target, fn in (
        ("z", tlp.get_act_patch_attn_head_out_by_pos),
        ("resid_pre", tlp.get_act_patch_resid_pre),
    ):
        ours = activation_patch(
            gpt2_random,
            task,
            target=target,
            per_position=True,
            mode="noise",
            n_boot=10,
            progress=False,
        )
        ref = tl_reference(gpt2_random, task, fn, mode="noise")
        torch.testing.assert_close(ours.raw, ref.float(), atol=1e-4, rtol=0)
        assert ours.mode == "noise"


def naive_patch(model, task, nodes, base_tokens, source_tokens, metric=logit_diff, hooks=()):
    """One full forward with hand-written index assignments: the independent oracle."""
    names = {n.hook for n in nodes}
    with model.hooks(list(hooks)):
        _, cache = model.tl.run_with_cache(source_tokens, names_filter=lambda n: n in names)

    def setter(node):
        def hook(act, hook):
            act = act.clone()
            src = cache[node.hook]
            p = slice(None) if node.pos is None else node.pos
            if node.target == "pattern":
                s = slice(None) if node.src_pos is None else node.src_pos
                act[:, node.head, p, s] = src[:, node.head, p, s]
            elif node.head is not None:
                act[:, p, node.head] = src[:, p, node.head]
            else:
                act[:, p] = src[:, p]
            return act

        return hook

    with torch.no_grad(), model.hooks([*hooks, *((n.hook, setter(n)) for n in nodes)]):
        return metric(model.tl(base_tokens), task)


def test_gqa_key_values_are_patched_by_key_value_head(llama_random):
    """k/v of a grouped-query model are indexed by key-value head (TransformerLens #980)."""
    task = ioi_task(llama_random, n=4)
    res = activation_patch(
        llama_random, task, target="k", per_position=True, n_boot=10, progress=False
    )
    assert res.dims == ("layer", "pos", "kv_head")
    assert res.values.shape[-1] == llama_random.n_key_value_heads == 2
    for node in [Node("k", 1, 1, 5), Node("v", 0, 0, 3), Node("z", 1, 3, 6), Node("q", 1, 2, 4)]:
        want = naive_patch(llama_random, task, [node], task.corrupt_tokens, task.clean_tokens)
        got = activation_patch(llama_random, task, nodes=[node], n_boot=10, progress=False)
        torch.testing.assert_close(got.raw[0], want.mean(), atol=1e-4, rtol=0)


def test_resid_post_sets_and_custom_metrics_match_hand_written_patches(gpt2_random):
    task = ioi_task(gpt2_random, n=5)
    T = task.seq_len
    res = activation_patch(
        gpt2_random, task, target="resid_post", per_position=True, n_boot=10, progress=False
    )
    for l, p in [(0, 3), (2, T - 1), (1, 0)]:
        want = naive_patch(
            gpt2_random,
            task,
            [Node("resid_post", l, pos=p)],
            task.corrupt_tokens,
            task.clean_tokens,
        )
        torch.testing.assert_close(res.raw[l, p], want.mean(), atol=1e-4, rtol=0)

    def second_to_last(logits, task):  # reads a position before the answer: full logits path
        rows = torch.arange(len(task))
        return logits[rows, task.answer_pos - 1].logsumexp(-1)

    nodes = [Node("z", 0, 1, 2), Node("mlp_out", 1, pos=T - 3), Node("pattern", 2, 0, T - 1, 2)]
    got = activation_patch(
        gpt2_random,
        task,
        nodes=[nodes, nodes[:1]],
        metric=second_to_last,
        n_boot=10,
        progress=False,
    )
    for i, s in enumerate([nodes, nodes[:1]]):
        want = naive_patch(
            gpt2_random, task, s, task.corrupt_tokens, task.clean_tokens, metric=second_to_last
        )
        torch.testing.assert_close(got.raw[i], want.mean(), atol=1e-4, rtol=0)


def test_position_windows_with_answers_at_different_positions(gpt2_random):
    """Patches that change one position of their layer, last-layer patches, and answers at
    different positions per prompt (no shared answer query): all equal full forwards."""
    from dataclasses import replace

    task = ioi_task(gpt2_random, n=6)
    T, L = task.seq_len, gpt2_random.n_layers
    shifted = replace(task, answer_pos=torch.tensor([T - 1, T - 2, T - 3] * 2))
    for t in (task, shifted):
        res = activation_patch(
            gpt2_random, t, target="z", per_position=True, n_boot=10, progress=False
        )
        mlp = activation_patch(
            gpt2_random, t, target="mlp_out", per_position=True, n_boot=10, progress=False
        )
        for node in [
            Node("z", L - 1, 2, T - 1),
            Node("z", L - 1, 0, T - 2),
            Node("z", L - 1, 1, T - 4),
            Node("z", L - 2, 3, T - 3),
            Node("z", 0, 1, 0),
            Node("mlp_out", L - 1, pos=T - 2),
            Node("mlp_out", 1, pos=T - 3),
        ]:
            want = naive_patch(gpt2_random, t, [node], t.corrupt_tokens, t.clean_tokens).mean()
            got = (res if node.target == "z" else mlp).raw
            idx = (node.layer, node.pos) + ((node.head,) if node.head is not None else ())
            torch.testing.assert_close(got[idx], want, atol=1e-4, rtol=0)

    def at_second_to_last(logits, task):  # full logits, read before the answer
        return logits[torch.arange(len(task)), task.answer_pos - 1].logsumexp(-1)

    nodes = [
        Node("z", L - 1, 0, T - 2),
        Node("q", L - 1, 1, T - 1),
        Node("resid_mid", 1, pos=T - 2),
    ]
    got = activation_patch(
        gpt2_random,
        task,
        nodes=[[n] for n in nodes],
        metric=at_second_to_last,
        n_boot=10,
        progress=False,
    )
    for i, node in enumerate(nodes):
        want = naive_patch(
            gpt2_random,
            task,
            [node],
            task.corrupt_tokens,
            task.clean_tokens,
            metric=at_second_to_last,
        )
        torch.testing.assert_close(got.raw[i], want.mean(), atol=1e-4, rtol=0)


def test_kl_metric_and_memory_budget_chunks(gpt2_random):
    task = ioi_task(gpt2_random, n=4)
    big = activation_patch(
        gpt2_random, task, target="z", per_position=True, metric="kl", n_boot=10, progress=False
    )
    tiny = activation_patch(
        gpt2_random,
        task,
        target="z",
        per_position=True,
        metric="kl",
        n_boot=10,
        progress=False,
        memory_budget=1,
    )  # one patch per forward
    torch.testing.assert_close(big.raw, tiny.raw, atol=1e-5, rtol=0)
    node = Node("z", 1, 2, task.seq_len - 1)
    clean_logits = gpt2_random.tl(task.clean_tokens)
    kl = interp.tasks.metrics.kl_to(clean_logits)
    want = naive_patch(gpt2_random, task, [node], task.corrupt_tokens, task.clean_tokens, kl)
    torch.testing.assert_close(big.raw[1, -1, 2], want.mean(), atol=1e-5, rtol=0)
    assert float(big.clean.abs().max()) < 1e-5  # KL of the clean run to itself


def test_patching_clean_into_clean_changes_nothing(organism):
    task = ioi_task(organism, n=8)
    clean = Input(task.clean_tokens, [])
    readout = make_readout(organism, task, "logit_diff", organism.tl(task.clean_tokens))
    nodes = [
        [Node(t, l, h, p)]
        for t in ("z", "q", "k", "v")
        for l in range(4)
        for h in (0, 5)
        for p in (None, 3)
    ]
    hooks = sorted({s[0].hook for s in nodes})
    # Every patched forward run (no skipping of patches that write the value already there).
    patcher = Patcher(organism, readout, clean, clean, hooks, progress=False, skip_unchanged=False)
    out = patcher.run(nodes)
    torch.testing.assert_close(
        out, patcher.base_metric.cpu()[None].expand_as(out), atol=1e-4, rtol=0
    )


def test_patches_that_write_the_base_value_are_skipped_exactly(organism, monkeypatch):
    """IOI's clean and corrupted prompts share their first tokens: patching a head there writes
    the value the base run already has, so the engine returns the base metric without a run."""
    task = ioi_task(organism, n=8)
    first = int((task.clean_tokens != task.corrupt_tokens).any(0).nonzero()[0])
    assert first >= 2
    rows = []
    forward = Patcher._forward

    def counted(self, layer, start, narrow, patches):
        rows.append(len(patches))
        return forward(self, layer, start, narrow, patches)

    monkeypatch.setattr(Patcher, "_forward", counted)
    res = activation_patch(organism, task, target="z", per_position=True, progress=False)
    assert res.dims == ("layer", "pos", "head")
    L, H, T = organism.n_layers, organism.n_heads, task.seq_len
    assert 0 < sum(rows) <= L * H * (T - first)
    patched = res.patched[:, :, :first]  # [prompt, layer, pos < first, head]
    base = res.corrupt.to(patched.dtype)[:, None, None, None].expand_as(patched)
    assert torch.equal(patched, base)
    torch.testing.assert_close(res.values[:, :first], torch.zeros(L, first, H))


@pytest.mark.parametrize("mode", ["denoise", "noise"])
def test_patching_a_whole_residual_layer_recovers_the_clean_run(organism, mode):
    task = ioi_task(organism, n=8)
    want = 1.0 if mode == "denoise" else -1.0
    for target in ("resid_pre", "resid_post"):
        res = activation_patch(organism, task, target=target, mode=mode, n_boot=10, progress=False)
        torch.testing.assert_close(res.values, torch.full((4,), want), atol=1e-4, rtol=0)
    every_pos = [Node("resid_mid", 2, pos=p) for p in range(task.seq_len)]
    res = activation_patch(organism, task, nodes=every_pos, mode=mode, n_boot=10, progress=False)
    assert abs(float(res.values[0]) - want) < 1e-4


def test_gaussian_noise_corruption_matches_a_hand_written_noise_hook(gpt2_random):
    task = ioi_task(gpt2_random, n=4)
    noise = GaussianNoise(positions=[1, 2, 3], scale=3.0, seed=7)
    res = activation_patch(
        gpt2_random,
        task,
        target="resid_pre",
        per_position=True,
        corruption=noise,
        n_boot=10,
        progress=False,
    )
    hook = noise.hook(gpt2_random, task)
    emb = gpt2_random.tl.embed(task.clean_tokens)
    added = hook[1](emb, None) - emb
    assert float(added[:, [0, 4, 5]].abs().max()) == 0.0  # only the chosen positions
    assert abs(float(added[:, 1:4].std()) / float(gpt2_random.tl.W_E.std()) - 3.0) < 0.3
    for l, p in [(0, 2), (1, 3), (2, 5)]:
        # the base run is the noised one; the source is the clean run (no noise hook there)
        want = _denoise_naive(gpt2_random, task, Node("resid_pre", l, pos=p), hook)
        torch.testing.assert_close(res.raw[l, p], want, atol=1e-4, rtol=0)
    assert res.meta["params"]["corruption"]["gaussian_noise"]["positions"] == [1, 2, 3]


def _denoise_naive(model, task, node, noise_hook):
    _, cache = model.tl.run_with_cache(task.clean_tokens, names_filter=lambda n: n == node.hook)

    def put(act, hook):
        act = act.clone()
        act[:, node.pos] = cache[node.hook][:, node.pos]
        return act

    with torch.no_grad(), model.hooks([noise_hook, (node.hook, put)]):
        return logit_diff(model.tl(task.clean_tokens), task).mean()


def test_organism_ioi_heads_found_by_patching_recover_the_logit_difference(organism):
    task = interp.tasks.ioi(organism, n=64, seed=1)
    sweep = activation_patch(organism, task, target="z", n_boot=200, progress=False)
    top = sweep.top(3)
    heads = [head_label(r.layer, r["head"]) for _, r in top.iterrows()]
    assert len(heads) <= 0.1 * organism.n_layers * organism.n_heads
    together = activation_patch(organism, task, nodes=heads, n_boot=200, progress=False)
    assert float(together.values[0]) >= 0.7, (heads, together.values)


def test_organism_induction_patching_picks_the_detector_heads(organism):
    """Noising finds the detector's induction heads: necessary together, the rest of their layer not.

    The organism's induction heads are redundant (six in its last layer, scores 0.90-0.91), so
    restoring one of them into the corrupted run restores almost nothing (at most 0.05) and
    single-head denoising cannot rank them; noising measures necessity. (An earlier organism's
    heads also depended on several earlier heads at once, an AND that denoising cannot see.)
    """
    task = interp.tasks.induction(organism, n=32, seq_len=12, seed=5)
    det = detect_heads(organism, kind="induction", n=32, seq_len=12)
    layer = int(det.top(1).iloc[0].layer)
    found = [h for h in range(organism.n_heads) if float(det.values[layer, h]) >= 0.5]
    rest = [h for h in range(organism.n_heads) if h not in found]
    assert 2 <= len(found) < organism.n_heads, found

    def noised(heads: list[int]) -> float:
        res = activation_patch(
            organism,
            task,
            nodes=[(layer, h) for h in heads],
            mode="noise",
            n_boot=10,
            progress=False,
        )
        return float(res.values[0])

    assert noised(found) < -0.9  # the detector's heads together carry the whole effect
    assert abs(noised(rest)) < 0.1  # the rest of their layer carries none of it
    single = activation_patch(
        organism, task, target="z", mode="noise", n_boot=10, progress=False
    ).values[layer]
    strongest = [int(h) for h in torch.argsort(single)[:3]]
    assert set(strongest) <= set(found), (strongest, found, single)


# ------------------------------------------------------------------- attribution patching


def _manual_atp(model, task, name, mode="denoise"):
    """(a_source - a_base) . dM/da on the base run, with plain autograd."""
    base, source = task.corrupt_tokens, task.clean_tokens
    if mode == "noise":
        base, source = source, base
    _, src = model.tl.run_with_cache(source, names_filter=lambda n: n == name)
    store = {}

    def keep(act, hook):
        act.retain_grad()
        store["a"] = act

    with model.hooks([(name, keep)]):
        logit_diff(model.tl(base), task).sum().backward()
    model.tl.zero_grad(set_to_none=True)
    return (src[name] - store["a"].detach()) * store["a"].grad


@pytest.mark.parametrize("mode", ["denoise", "noise"])
def test_atp_equals_a_hand_written_first_order_estimate(gpt2_random, mode):
    task = ioi_task(gpt2_random, n=5)
    res = attribution_patch(
        gpt2_random,
        task,
        targets=["z", "mlp_out", "pattern"],
        per_position=True,
        mode=mode,
        n_boot=10,
    )
    gap = res["z"].clean.mean() - res["z"].corrupt.mean()
    for l in range(3):
        z = _manual_atp(gpt2_random, task, f"blocks.{l}.attn.hook_z", mode)
        torch.testing.assert_close(
            res["z"].values[l], z.sum(-1).mean(0) / gap, atol=1e-4, rtol=1e-3
        )
        m = _manual_atp(gpt2_random, task, f"blocks.{l}.hook_mlp_out", mode)
        torch.testing.assert_close(
            res["mlp_out"].values[l], m.sum(-1).mean(0) / gap, atol=1e-4, rtol=1e-3
        )
        p = _manual_atp(gpt2_random, task, f"blocks.{l}.attn.hook_pattern", mode)
        torch.testing.assert_close(
            res["pattern"].values[l], p.sum(-1).mean(0) / gap, atol=1e-4, rtol=1e-3
        )


def _pattern_after(model, tokens, layer, name, patch_pos, head, source_cache):
    """The layer's attention pattern with one head's q (or k) at one position replaced."""
    out = {}

    def put(act, hook):
        act = act.clone()
        act[:, patch_pos, head] = source_cache[name][:, patch_pos, head]
        return act

    def grab(act, hook):
        out["p"] = act

    with torch.no_grad(), model.hooks([(name, put), (f"blocks.{layer}.attn.hook_pattern", grab)]):
        model.tl(tokens, stop_at_layer=layer + 1)
    return out["p"]


@pytest.mark.parametrize("which", ["gpt2_random", "llama_random"])
def test_atp_star_qk_fix_equals_recomputed_softmax(which, request):
    """QK fix: sum_s (A' - A) dM/dA with A' from a real forward with the patched q or k."""
    model = request.getfixturevalue(which)
    task = ioi_task(model, n=3)
    res = attribution_patch(
        model, task, targets=["q", "k"], per_position=True, star=True, n_boot=10
    )
    gap = res["q"].clean.mean() - res["q"].corrupt.mean()
    layer = 1
    pname = f"blocks.{layer}.attn.hook_pattern"
    store = {}

    def keep(act, hook):
        act.retain_grad()
        store["a"] = act

    with model.hooks([(pname, keep)]):
        logit_diff(model.tl(task.corrupt_tokens), task).sum().backward()
    model.tl.zero_grad(set_to_none=True)
    grad, base_pattern = store["a"].grad, store["a"].detach()
    rot = model.tl.cfg.positional_embedding_type == "rotary"
    group = model.n_heads // model.n_key_value_heads
    for kind, head, pos in [("q", 2, 5), ("k", 1, 3), ("k", 0, task.seq_len - 2)]:
        name = f"blocks.{layer}.attn.hook_{'rot_' if rot else ''}{kind}"
        _, src = model.tl.run_with_cache(task.clean_tokens, names_filter=lambda n, nm=name: n == nm)
        new = _pattern_after(model, task.corrupt_tokens, layer, name, pos, head, src)
        heads = [head] if kind == "q" else list(range(head * group, (head + 1) * group))
        want = ((new - base_pattern)[:, heads] * grad[:, heads]).sum((1, 2, 3)).mean() / gap
        got = res[kind].values[layer, pos, head]
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)


def test_atp_star_graddrop_equals_detached_layer_gradients(gpt2_random):
    task = ioi_task(gpt2_random, n=4)
    res = attribution_patch(gpt2_random, task, target="z", star=True, n_boot=10)
    gap = res.clean.mean() - res.corrupt.mean()
    _, src = gpt2_random.tl.run_with_cache(task.clean_tokens)
    L = gpt2_random.n_layers
    total = torch.zeros(L, gpt2_random.n_heads)
    for drop in range(L):
        store = {}

        def keep(act, hook, store=store):
            act.retain_grad()
            store[hook.name] = act

        def cut(act, hook):
            return act.detach()

        hooks = [(f"blocks.{l}.attn.hook_z", keep) for l in range(L)]
        hooks += [(f"blocks.{drop}.hook_attn_out", cut), (f"blocks.{drop}.hook_mlp_out", cut)]
        with gpt2_random.hooks(hooks):
            logit_diff(gpt2_random.tl(task.corrupt_tokens), task).sum().backward()
        gpt2_random.tl.zero_grad(set_to_none=True)
        for l in range(L):
            a = store[f"blocks.{l}.attn.hook_z"]
            g = a.grad if a.grad is not None else torch.zeros_like(a)
            e = ((src[f"blocks.{l}.attn.hook_z"] - a.detach()) * g).sum((1, 3))  # [b, head]
            total[l] += e.mean(0).abs() / abs(float(gap))
    torch.testing.assert_close(res.graddrop, total / (L - 1), atol=1e-4, rtol=1e-3)


def test_organism_atp_agrees_with_exact_patching_and_verifies_top_k(organism):
    task = interp.tasks.ioi(organism, n=32, seed=2)
    exact = activation_patch(organism, task, target="z", n_boot=10, progress=False)
    atp = attribution_patch(organism, task, target="z", verify_top_k=5, n_boot=10, progress=False)
    compared = agreement(atp, exact, k=5)
    a = compared.agreement
    assert a["spearman"] > 0.5, a
    assert a["top_k_recall"] >= 0.6, a
    checked = ~torch.isnan(atp.verified)
    assert int(checked.sum()) == 5
    torch.testing.assert_close(atp.verified[checked], exact.values[checked], atol=1e-4, rtol=1e-4)
    star = attribution_patch(organism, task, target="z", star=True, n_boot=10)
    assert agreement(star, exact, k=5).agreement["top_k_recall"] >= a["top_k_recall"] - 0.2
    fig = compared.scatter()
    assert len(fig.data[1].x) == organism.n_layers * organism.n_heads


# ------------------------------------------------------------------------ path patching


def _naive_path(model, task, sender, recv_name, recv_head, mode="noise"):
    """Wang et al.'s three steps, one sender, written out with plain hooks."""
    orig, new = task.clean_tokens, task.corrupt_tokens
    if mode == "denoise":
        orig, new = new, orig
    L = model.n_layers
    _, oc = model.tl.run_with_cache(orig)
    _, nc = model.tl.run_with_cache(new)
    sl, sh = sender

    def freeze(l):
        def hook(z, hook):
            z = oc[f"blocks.{l}.attn.hook_z"].clone()
            if l == sl:
                z[:, :, sh] = nc[f"blocks.{l}.attn.hook_z"][:, :, sh]
            return z

        return hook

    rec = {}

    def record(act, hook):
        rec["a"] = act.clone()

    hooks = [(f"blocks.{l}.attn.hook_z", freeze(l)) for l in range(L)]
    if recv_name is None:
        with torch.no_grad(), model.hooks(hooks):
            return logit_diff(model.tl(orig), task)
    with torch.no_grad(), model.hooks([*hooks, (recv_name, record)]):
        model.tl(orig)

    def put(act, hook):
        act = act.clone()
        act[:, :, recv_head] = rec["a"][:, :, recv_head]
        return act

    with torch.no_grad(), model.hooks([(recv_name, put)]):
        return logit_diff(model.tl(orig), task)


def test_path_patching_equals_the_three_steps_written_out(gpt2_random):
    task = ioi_task(gpt2_random, n=4)
    grid = path_patch(gpt2_random, task, receivers=["q:L2H1"], n_boot=10, progress=False)
    assert grid.dims == ("layer", "head")
    assert torch.isnan(grid.values[2]).all() and not torch.isnan(grid.values[:2]).any()
    for sender in [(0, 3), (1, 0)]:
        want = _naive_path(gpt2_random, task, sender, "blocks.2.attn.hook_q", 1).mean()
        torch.testing.assert_close(grid.raw[sender], want, atol=1e-4, rtol=0)
    logits = path_patch(
        gpt2_random,
        task,
        sender=["L0H2", "L2H3"],
        receivers="logits",
        mode="denoise",
        n_boot=10,
        progress=False,
    )
    for i, s in enumerate([(0, 2), (2, 3)]):
        want = _naive_path(gpt2_random, task, s, None, None, mode="denoise").mean()
        torch.testing.assert_close(logits.raw[i], want, atol=1e-4, rtol=0)


def test_path_patching_from_the_last_layer_to_logits_is_activation_patching(organism):
    task = ioi_task(organism, n=8)
    path = path_patch(
        organism, task, sender=[head_label(3, h) for h in range(8)], n_boot=10, progress=False
    )
    act = activation_patch(organism, task, target="z", mode="noise", n_boot=10, progress=False)
    torch.testing.assert_close(path.values, act.values[3], atol=1e-4, rtol=1e-4)
    mlp = path_patch(
        organism,
        task,
        sender="mlp_out:L1",
        receivers=["q:L3H2", "k:L3H2"],
        n_boot=10,
        progress=False,
    )
    assert mlp.dims == ("sender",) and torch.isfinite(mlp.values).all()


# ------------------------------------------------------------------ errors, hooks, views


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, t: activation_patch(m, t, target="attn"), "Unknown patching target"),
        (lambda m, t: activation_patch(m, t, mode="both"), "mode"),
        (lambda m, t: activation_patch(m, t, nodes=["L9H0"]), "layer must be in"),
        (lambda m, t: activation_patch(m, t, nodes=["k:L1H12"]), "give a head"),
        (
            lambda m, t: activation_patch(m, t, target="resid_pre", per_position="dest_src"),
            "dest_src",
        ),
        (
            lambda m, t: path_patch(m, t, sender="L3H0", receivers=["q:L2H1"]),
            "not before the first receiver",
        ),
        (lambda m, t: path_patch(m, t, sender="L0H0", receivers=["L2H1"]), "which input"),
        (lambda m, t: activation_patch(m, t, memory_budget="lots"), "memory_budget"),
        (
            lambda m, t: activation_patch(m, t, corruption=GaussianNoise(positions=[99])),
            "positions must be in",
        ),
    ],
)
def test_bad_input_gets_clear_errors(organism, call, message):
    with pytest.raises(InterpError, match=message):
        call(organism, ioi_task(organism, n=4))


def test_unequal_lengths_and_bad_metrics_are_refused(organism):
    task = ioi_task(organism, n=4)
    with pytest.raises(InterpError, match="Patching needs equal lengths"):
        interp.Task.from_prompts(
            organism,
            clean=["Then, Mary and John went to the store. John gave a drink to"],
            corrupt=["Then, Mary and John went to the big store. John gave a drink to"],
            answers=[(" Mary", " John")],
        )
    with pytest.raises(InterpError, match="one value per prompt"):
        activation_patch(organism, task, metric=lambda logits, t: logits[:, -1, :2], progress=False)


@pytest.mark.parametrize(
    ("fn", "fail_at"),
    [
        (activation_patch, 1),
        (activation_patch, 3),
        (path_patch, 2),
        (path_patch, 3),
        (attribution_patch, 1),
        (attribution_patch, 2),
    ],
)
def test_hooks_are_removed_when_a_patched_run_raises(organism, monkeypatch, fn, fail_at):
    """Every forward carries interp's hooks: the cached base and source runs (1, 2), then the
    patched runs (3 ...); AtP's source run (1) and base run with gradients (2)."""
    task = ioi_task(organism, n=4)
    mlp = organism.tl.blocks[3].mlp
    original = mlp.forward
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise RuntimeError("interrupted mid-forward")
        return original(*args, **kwargs)

    monkeypatch.setattr(mlp, "forward", flaky)
    with pytest.raises(RuntimeError, match="interrupted mid-forward"):
        fn(organism, task, progress=False)
    monkeypatch.undo()
    assert calls["n"] == fail_at
    assert all(not hp.fwd_hooks and not hp.bwd_hooks for hp in organism.tl.hook_dict.values())


def test_results_save_load_and_plot(organism, tmp_path):
    task = ioi_task(organism, n=4)
    for kw in (
        dict(target="z"),
        dict(target="z", per_position=True),
        dict(target="resid_pre", per_position=True),
        dict(target="pattern", per_position=True),
        dict(nodes=["L3H2", "L1H0"]),
    ):
        res = activation_patch(organism, task, n_boot=10, progress=False, **kw)
        fig = res.plot()
        assert fig.data, kw
        back = interp.load_result(res.save(tmp_path / str(len(list(tmp_path.iterdir())))))
        assert type(back) is type(res)
        assert torch.equal(back.values, res.values) and torch.equal(back.raw, res.raw)
    atp = attribution_patch(organism, task, target="z", star=True, n_boot=10)
    back = interp.load_result(atp.save(tmp_path / "atp"))
    assert torch.equal(back.graddrop, atp.graddrop)
    assert atp.plot().data


def test_node_strings_round_trip():
    for text in ["z:L3H2", "q:L1H0@4", "resid_pre:L2@5", "pattern:L1H0@7>3", "mlp_out:L0"]:
        assert str(Node.parse(text)) == text
    assert Node.parse("L3H2") == Node("z", 3, 2)
    with pytest.raises(InterpError, match="Cannot read node"):
        Node.parse("head 3")


def test_cli_patch_atp_and_path_patch(tmp_path):
    from typer.testing import CliRunner

    from interp.cli import app

    runner = CliRunner()
    for args in (
        ["run", "patch", "--out", str(tmp_path / "p"), "--n", "8", "--template", "0"],
        ["run", "atp", "--out", str(tmp_path / "a"), "--n", "8", "--compare", "--verify", "3"],
        ["run", "path-patch", "--out", str(tmp_path / "pp"), "--n", "8", "--receivers", "q:L3H2"],
        ["run", "patch", "--out", str(tmp_path / "s"), "--n", "8", "--target", "L3H2,L1H0"],
    ):
        out = runner.invoke(app, args)
        assert out.exit_code == 0, out.output
        assert (tmp_path / args[3].split("/")[-1] / "figure.html").exists()
    assert (
        "agreement with exact patching: Spearman"
        in runner.invoke(
            app, ["run", "atp", "--out", str(tmp_path / "a2"), "--n", "8", "--compare"]
        ).output
    )


# ------------------------------------------------------------------ every model kind


SMOL_PAIRS = [(" Mary", " John"), (" John", " Mary"), (" Tom", " Sarah"), (" Sarah", " Tom")]


def smol_ioi(model, n=2):
    """A small IOI batch for SmolLM2: the clean prompt repeats the subject (answer: the indirect
    object); the corrupted one repeats the indirect object instead (answer flips)."""
    template = "When{a} and{b} went to the store,{s} gave a drink to"
    pairs = SMOL_PAIRS[:n]
    clean = model.to_tokens([template.format(a=a, b=b, s=b) for a, b in pairs])
    corrupt = model.to_tokens([template.format(a=a, b=b, s=a) for a, b in pairs])
    answers = torch.tensor([[model.to_single_token(a), model.to_single_token(b)] for a, b in pairs])
    pos = torch.full((n,), clean.shape[1] - 1)
    return interp.Task(
        clean_tokens=clean, corrupt_tokens=corrupt, answers=answers, answer_pos=pos, name="ioi"
    )


def _tl_subset(model, task, fn, rows, columns):
    """transformer_lens.patching on the components in `rows` only (its own index_df)."""
    import pandas as pd

    _, cache = model.tl.run_with_cache(task.clean_tokens)
    return fn(
        model.tl,
        task.corrupt_tokens,
        cache,
        lambda logits: logit_diff(logits, task).mean(),
        index_axis_names=None,
        index_df=pd.DataFrame(rows, columns=columns),
    )


def _assert_parity(ours, ref):
    scale = float(ref.abs().max())
    diff = float((ours - ref.float()).abs().max())
    assert diff <= 1e-4 * scale, f"max diff {diff:.2e} vs largest value {scale:.2e}"
    return diff, scale


def test_smollm2_patching_equals_transformer_lens_on_a_subset(smollm2):
    """Real Llama-family model (RMSNorm, rotary, GQA 9/3): resid_pre by position and head z by
    position equal transformer_lens.patching to 1e-4 relative, on components chosen through
    its own index_df."""
    task = smol_ioi(smollm2, n=2)
    resid_rows = [(0, 2), (0, 10), (13, 4), (29, 14)]
    ours = activation_patch(
        smollm2,
        task,
        nodes=[[f"resid_pre:L{l}@{p}"] for l, p in resid_rows],
        n_boot=10,
        progress=False,
    )
    ref = _tl_subset(smollm2, task, tlp.get_act_patch_resid_pre, resid_rows, ["layer", "pos"])
    _assert_parity(ours.raw, ref)
    # the model does the task: clean prefers the indirect object, corrupted much less so
    assert float(ours.clean.mean()) > float(ours.corrupt.mean())
    z_rows = [(6, 10, 0), (6, 14, 4), (28, 14, 8), (28, 4, 2)]
    ours = activation_patch(
        smollm2, task, nodes=[[Node("z", l, h, p)] for l, p, h in z_rows], n_boot=10, progress=False
    )
    ref = _tl_subset(
        smollm2, task, tlp.get_act_patch_attn_head_out_by_pos, z_rows, ["layer", "pos", "head"]
    )
    _assert_parity(ours.raw, ref)


def test_smollm2_atp_and_path_patching(smollm2):
    """AtP (k/v by key-value head) agrees with exact patching on the last layers' heads; path
    patching from the last layer to the logits is activation patching (noising)."""
    task = smol_ioi(smollm2, n=2)
    atp = attribution_patch(smollm2, task, targets=["z", "k", "v"], n_boot=10, progress=False)
    assert atp["k"].dims == ("layer", "kv_head") and atp["k"].values.shape == (30, 3)
    assert atp["v"].values.shape == (30, 3) and atp["z"].values.shape == (30, 9)
    assert all(torch.isfinite(r.values).all() for r in atp.values())
    late = [(l, h) for l in (28, 29) for h in range(9)]
    exact = activation_patch(
        smollm2, task, nodes=[[(l, h)] for l, h in late], n_boot=10, progress=False
    )
    est = torch.stack([atp["z"].values[l, h] for l, h in late])
    rho = spearman(est, exact.values)
    assert rho > 0.6, rho
    senders = ["L29H1", "L29H6"]
    path = path_patch(smollm2, task, sender=senders, n_boot=10, progress=False)
    act = activation_patch(
        smollm2, task, nodes=[[s] for s in senders], mode="noise", n_boot=10, progress=False
    )
    _assert_parity(path.raw, act.raw)
    kv = path_patch(
        smollm2, task, sender="L20H1", receivers=["k:L25H2", "v:L25H0"], n_boot=10, progress=False
    )
    assert kv.dims == ("sender",) and torch.isfinite(kv.values).all()


def _token_task(model, n=4, seq=10, seed=0):
    """A task given as token ids (no tokenizer needed): the corruption changes one early token."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, min(model.d_vocab, 90), (n, seq), generator=gen)
    corrupt = clean.clone()
    corrupt[:, 2] = (clean[:, 2] + 7) % min(model.d_vocab, 90) + 1
    answers = torch.randint(0, min(model.d_vocab_out, 90), (n, 2), generator=gen)
    answers[:, 1] = (answers[:, 0] + 1) % min(model.d_vocab_out, 90)
    return interp.Task(
        clean_tokens=clean,
        corrupt_tokens=corrupt,
        answers=answers,
        answer_pos=torch.full((n,), seq - 1),
        name="ids",
    )


@pytest.mark.parametrize("which", ["gpt2_nonorm", "notok"])
def test_exact_atp_and_path_patching_on_models_without_norm_or_tokenizer(which, request):
    model = request.getfixturevalue(which)
    task = _token_task(model)
    for target, fn in [
        ("resid_pre", tlp.get_act_patch_resid_pre),
        ("z", tlp.get_act_patch_attn_head_out_by_pos),
    ]:
        ours = activation_patch(model, task, target=target, per_position=True, progress=False)
        ref = tl_reference(model, task, fn)
        _assert_parity(ours.raw, ref)
    # positions are labelled by id when there is no tokenizer
    if not model.has_tokenizer:
        assert ours.labels["pos"][0] == f"0 '#{int(task.clean_tokens[0, 0])}'"
        ours.to_dataframe()
    atp = attribution_patch(model, task, target="z", per_position=True, n_boot=10, progress=False)
    assert atp.values.shape == ours.values.shape and torch.isfinite(atp.values).all()
    star = attribution_patch(model, task, targets=["q", "k"], star=True, n_boot=10, progress=False)
    assert all(torch.isfinite(r.values).all() for r in star.values())
    last = model.n_layers - 1
    senders = [head_label(last, h) for h in range(model.n_heads)]
    path = path_patch(model, task, sender=senders, n_boot=10, progress=False)
    act = activation_patch(model, task, target="z", mode="noise", n_boot=10, progress=False)
    torch.testing.assert_close(path.raw, act.raw[last], atol=1e-4, rtol=1e-4)
    grid = path_patch(model, task, receivers=[Node("q", last, 0)], n_boot=10, progress=False)
    assert torch.isfinite(grid.values[:last]).all()


def test_patching_a_gqa_model_loaded_ungrouped():
    """With ungroup_grouped_query_attention, hook_k/hook_v hold one head per query head; the
    engine's key-value shapes follow the handle's n_key_value_heads (it crashed on z and k)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    def build(ungroup):
        torch.manual_seed(0)
        cfg = HookedTransformerConfig(
            n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, d_vocab=50, n_ctx=16,
            act_fn="silu", normalization_type="RMS", positional_embedding_type="rotary",
            rotary_dim=8, n_key_value_heads=2, gated_mlp=True, seed=0,
            ungroup_grouped_query_attention=ungroup,
        )  # fmt: skip
        return interp.load_model(HookedTransformer(cfg))

    grouped, ungrouped = build(False), build(True)
    assert (grouped.n_key_value_heads, ungrouped.n_key_value_heads) == (2, 4)
    gen = torch.Generator().manual_seed(1)
    clean, corrupt = (
        torch.randint(1, 50, (4, 8), generator=gen),
        torch.randint(1, 50, (4, 8), generator=gen),
    )
    tasks = [
        interp.Task.from_tokens(m, clean, corrupt=corrupt, answers=[(1, 2)] * 4)
        for m in (grouped, ungrouped)
    ]
    z = [
        activation_patch(m, t, target="z", n_boot=10, progress=False)
        for m, t in zip((grouped, ungrouped), tasks, strict=True)
    ]
    torch.testing.assert_close(z[1].raw, z[0].raw, atol=1e-5, rtol=1e-5)
    k = activation_patch(ungrouped, tasks[1], target="k", n_boot=10, progress=False)
    assert k.values.shape == (2, 4) and torch.isfinite(k.values).all()


# ------------------------------------------------------ contrast, renames, declared fields


def _same(a, b):
    """Bit-identical results: values, intervals, every declared field and the parameters."""
    assert type(a) is type(b)
    for name in ("values", "ci_low", "ci_high", *type(a).declared_fields()):
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            assert tensors_equal(x, y), name
        else:
            assert x == y, name
    assert a.dims == b.dims and a.coords == b.coords and a.labels == b.labels
    assert a.meta["params"] == b.meta["params"]


def _interp_deprecations(record):
    return [w for w in record if "will be removed in interp" in str(w.message)]


def test_contrast_base_source_metrics_and_scores_follow_the_mode():
    clean, corrupt = Input(torch.zeros(2, 3), []), Input(torch.ones(2, 3), [])
    den, noi = Contrast(clean, corrupt, "denoise"), Contrast(clean, corrupt, "noise")
    assert den.base is corrupt and den.source is clean and den.source_is_clean
    assert noi.base is clean and noi.source is corrupt and not noi.source_is_clean
    base, source = torch.tensor([1.0, 3.0]), torch.tensor([5.0, 7.0])
    d, n = den.measured(base=base, source=source), noi.measured(base=base, source=source)
    assert torch.equal(d.clean_metric, source) and torch.equal(d.corrupt_metric, base)
    assert torch.equal(n.clean_metric, base) and torch.equal(n.corrupt_metric, source)
    assert torch.equal(d.base_metric, base) and torch.equal(n.base_metric, base)
    # patching the whole source in: denoising recovers (1), noising destroys (-1)
    assert float(d.scores(source[:, None], n_boot=10, seed=0)[0]) == 1.0
    assert float(n.scores(source[:, None], n_boot=10, seed=0)[0]) == -1.0
    assert float(d.mean_scores(source.double().mean())) == 1.0
    with pytest.raises(InterpError, match="same mean metric"):
        den.measured(base=base, source=base).scores(base[:, None], n_boot=10, seed=0)


def test_old_spellings_warn_and_give_bit_identical_results(organism):
    task = ioi_task(organism, n=6)
    kw = dict(n_boot=10, progress=False)
    sets = [["L3H2"], ["L1H0", "L3H2"]]
    pairs = [
        (
            lambda: activation_patch(organism, task, target="z", direction="noise", **kw),
            lambda: activation_patch(organism, task, target="z", mode="noise", **kw),
            "direction=",
        ),
        (
            lambda: activation_patch(organism, task, target=sets, **kw),
            lambda: activation_patch(organism, task, nodes=sets, **kw),
            "nodes=",
        ),
        (
            lambda: attribution_patch(organism, task, target="z", direction="noise", **kw),
            lambda: attribution_patch(organism, task, target="z", mode="noise", **kw),
            "direction=",
        ),
        (
            lambda: path_patch(organism, task, sender=(3, 1), direction="denoise", **kw),
            lambda: path_patch(organism, task, sender=(3, 1), mode="denoise", **kw),
            "direction=",
        ),
        (
            lambda: attribution_patch(organism, task, target=["z", "mlp_out"], **kw),
            lambda: attribution_patch(organism, task, targets=["z", "mlp_out"], **kw),
            "targets=",
        ),
    ]
    news = []
    for old_call, new_call, word in pairs:
        with pytest.warns(DeprecationWarning, match=word):
            old = old_call()
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            new = new_call()
        assert not _interp_deprecations(record), word
        news.append(new)
        if isinstance(new, dict):
            assert list(old) == list(new) == ["z", "mlp_out"]
            for t in new:
                _same(old[t], new[t])
        else:
            _same(old, new)
    # old attribute and key spellings of a result read the declared fields, with a warning
    new = news[0]
    with pytest.warns(DeprecationWarning, match="mode"):
        assert new.direction == new.mode == "noise"
    with pytest.warns(DeprecationWarning, match="mode"):
        assert new.meta["direction"] == "noise"
    with pytest.warns(DeprecationWarning, match="patched"):
        assert new.extras["patched"] is new.patched


def test_heads_are_read_in_every_form(organism):
    task = ioi_task(organism, n=4)
    res = activation_patch(
        organism,
        task,
        nodes=[[(3, 2)], ["3.2"], ["L3H2"], [head_node(3, 2)]],
        n_boot=10,
        progress=False,
    )
    assert res.coords["set"] == ["z:L3H2"] * 4
    assert torch.equal(res.patched, res.patched[:, :1].expand_as(res.patched))
    path = path_patch(organism, task, sender=["3.2", (3, 2)], n_boot=10, progress=False)
    assert path.coords["sender"] == ["z:L3H2", "z:L3H2"]


def _snapshot(res):
    out = {}
    for f in dataclasses.fields(res):
        v = getattr(res, f.name)
        out[f.name] = v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v)
    return out


def _unchanged(res, snap):
    for name, before in _snapshot(res).items():
        if isinstance(before, torch.Tensor):
            assert tensors_equal(before, snap[name]), name
        elif isinstance(before, dict):
            assert set(before) == set(snap[name]), name
            for k, v in before.items():
                w = snap[name][k]
                assert tensors_equal(v, w) if isinstance(v, torch.Tensor) else v == w, (name, k)
        else:
            assert before == snap[name], name


def test_agreement_and_verification_return_new_results(organism):
    task = ioi_task(organism, n=6)
    kw = dict(n_boot=10, progress=False)
    exact = activation_patch(organism, task, target="z", **kw)
    atp = attribution_patch(organism, task, target="z", star=True, **kw)
    snap = _snapshot(atp)
    compared = agreement(atp, exact, k=5)
    _unchanged(atp, snap)
    assert atp.exact is None and atp.agreement is None
    assert torch.equal(compared.exact, exact.values) and compared.agreement["k"] == 5
    assert compared.scatter().data
    with pytest.warns(DeprecationWarning, match="agreement"):
        assert compared["spearman"] == compared.agreement["spearman"]  # the old dict's spelling
    # verification on a given result: a new result, the numbers of verify_top_k=
    contrast = replace(
        Contrast.of(organism, task, "task", "denoise"),
        clean_metric=atp.clean,
        corrupt_metric=atp.corrupt,
    )
    readout = make_readout(organism, task, "logit_diff", None)
    nodes = sweep(organism, "z", False, task.seq_len)[0]
    checked = verify(organism, atp, nodes, 3, contrast, readout, DEFAULT_BUDGET, False)
    _unchanged(atp, snap)
    assert atp.verified is None
    direct = attribution_patch(organism, task, target="z", star=True, verify_top_k=3, **kw)
    assert tensors_equal(checked.verified, direct.verified)
    table = direct.verified_table
    assert len(table) == 3
    ranks = [float(direct.ranking_score[int(r.layer), int(r["head"])]) for _, r in table.iterrows()]
    assert ranks == sorted(ranks, reverse=True)
    for _, r in table.iterrows():
        assert r.exact == float(direct.verified[int(r.layer), int(r["head"])])
        assert r.atp == float(direct.values[int(r.layer), int(r["head"])])


def test_saved_atp_result_keeps_every_declared_field(organism, tmp_path):
    task = ioi_task(organism, n=6)
    kw = dict(mode="noise", n_boot=10, progress=False)
    exact = activation_patch(organism, task, target="z", **kw)
    atp = attribution_patch(organism, task, target="z", star=True, verify_top_k=3, **kw)
    res = agreement(atp, exact, k=4)
    assert all(getattr(res, name) is not None for name in AtPResult.declared_fields())
    back = interp.load_result(res.save(tmp_path / "atp"))
    _same(back, res)
    assert back.mode == "noise" and back.title == res.title
    # a result saved before the fields were declared (data in extras and meta) loads the same
    old = {
        "values": res.values,
        "dims": res.dims,
        "coords": res.coords,
        "labels": res.labels,
        "ci_low": res.ci_low,
        "ci_high": res.ci_high,
        "extras": {k: getattr(res, k) for k in ("patched", "clean", "corrupt", "graddrop")}
        | {"verified": res.verified, "exact": res.exact},
        "meta": {
            **res.meta,
            "direction": res.mode,
            "agreement": res.agreement,
            "verified": [{"node": "z:L3H2", "atp": 0.1, "exact": 0.2}],
            "value_label": res.value_label,
            "clean_metric_mean": res.clean_metric_mean,
        },
        "title": res.title,
    }
    legacy = AtPResult(**AtPResult.from_legacy(old))
    _same(legacy, res)
    assert not legacy.extras and dict(legacy.meta) == dict(res.meta)
