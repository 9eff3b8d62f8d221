"""Head attribution: exactness against independent computations, ground truth on the organism."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.analyses.attribution import (
    ablate,
    assert_sum_to_total,
    attention_patterns,
    detect_heads,
    detector_pattern,
    direct_logit,
    logit_lens,
)
from interp.analyses.patching import activation_patch
from interp.errors import InterpError
from interp.nodes import head_label
from interp.tasks import repeat_loss


@pytest.mark.parametrize("which", ["gpt2_random", "llama_random", "organism"])
def test_dla_sums_to_the_logit_difference(which, request):
    model = request.getfixturevalue(which)
    task = interp.tasks.ioi(model, n=12, seed=1)
    err = assert_sum_to_total(model, task, rtol=1e-4)
    assert err["max_rel_error"] < 1e-4
    single = assert_sum_to_total(model, task, token=" Mary", rtol=1e-4)
    assert single["max_rel_error"] < 1e-4
    res = direct_logit(model, task, over="components", n_boot=50)
    assert res.check_sum_to_total() < 1e-4
    total = res.total.mean()
    assert torch.allclose(res.values.sum(), total, rtol=1e-4, atol=1e-5)
    # over="layers" regroups the same terms: layers plus the non-layer terms give the total again.
    layer = direct_logit(model, task, over="layers", n_boot=50)
    rest = sum(
        res.sel(component=c)
        for c in ("embed", "pos_embed", "unembed bias")
        if c in res.coords["component"]
    )
    assert torch.allclose(layer.values.sum() + rest, total, rtol=1e-4, atol=1e-5)


def test_dla_heads_match_transformer_lens_stack(gpt2_random):
    """Independent oracle: TransformerLens' stack_head_results + apply_ln_to_stack."""
    model = gpt2_random
    task = interp.tasks.ioi(model, n=6, seed=2, templates=[3])
    res = direct_logit(model, task, over="heads", n_boot=10)
    _, cache = model.tl.run_with_cache(task.clean_tokens)
    stack = cache.stack_head_results(layer=-1, pos_slice=-1)
    stack = cache.apply_ln_to_stack(stack, layer=-1, pos_slice=-1)
    W_U = model.W_U
    direction = W_U[:, task.answers[:, 0]].T - W_U[:, task.answers[:, 1]].T
    ref = (stack * direction).sum(-1).mean(-1).reshape(model.n_layers, model.n_heads)
    assert torch.allclose(res.values, ref, atol=1e-5)


def test_dla_by_position_sums_to_by_head(llama_random):
    task = interp.tasks.ioi(llama_random, n=5, seed=0, templates=[1])
    by_pos = direct_logit(llama_random, task, over="positions", n_boot=10)
    by_head = direct_logit(llama_random, task, over="heads", n_boot=10)
    assert by_pos.dims == ("layer", "head", "pos")
    assert torch.allclose(by_pos.values.sum(-1), by_head.values, atol=1e-5)
    with pytest.raises(InterpError, match="one length"):
        direct_logit(llama_random, interp.tasks.ioi(llama_random, n=12, seed=0), over="positions")


def test_logit_lens_last_layer_is_the_model_and_norm_is_recomputed(gpt2_random):
    task = interp.tasks.ioi(gpt2_random, n=4, seed=0, templates=[0])
    lens = logit_lens(gpt2_random, task, k=3)
    assert lens.final_layer_max_abs_logprob_error < 1e-5
    kl = lens.sel(metric="kl_to_final")
    assert torch.allclose(kl[-1], torch.zeros_like(kl[-1]), atol=1e-5)
    # Layer 0's readout by hand, with its own LayerNorm scale (not the final layer's).
    _, cache = gpt2_random.tl.run_with_cache(task.clean_tokens)
    x = cache["blocks.0.hook_resid_post"][0]
    x = x - x.mean(-1, keepdim=True)
    normed = x / (x.pow(2).mean(-1, keepdim=True) + gpt2_random.cfg.eps).sqrt()
    logits = normed @ gpt2_random.W_U + gpt2_random.b_U
    top = logits.topk(3, dim=-1).indices
    assert torch.equal(lens.top_ids[1], top)  # row 0 is the embedding
    assert set(lens.coords["metric"]) >= {"kl_to_final", "entropy", "target_prob", "target_rank"}
    assert lens.plot().data[0].type == "heatmap"


def test_zero_ablation_equals_a_hand_written_hook(gpt2_random):
    task = interp.tasks.ioi(gpt2_random, n=6, seed=3, templates=[2])
    res = ablate(gpt2_random, task, heads=[(1, 2)], how="zero", n_boot=10)

    def kill(z, hook):
        z[:, :, 2] = 0
        return z

    clean = interp.tasks.logit_diff(gpt2_random(task.clean_tokens), task)
    hooked = gpt2_random.run_with_hooks(
        task.clean_tokens, fwd_hooks=[("blocks.1.attn.hook_z", kill)]
    )
    expected = (interp.tasks.logit_diff(hooked, task) - clean).mean()
    assert torch.allclose(res.values[0], expected, atol=1e-5)
    each = ablate(gpt2_random, task, heads="each", how="zero", n_boot=10)
    assert torch.allclose(each.sel(layer=1, head=2), expected, atol=1e-5)


def test_mean_and_resample_ablation(gpt2_random):
    task = interp.tasks.ioi(gpt2_random, n=8, seed=4, templates=[0, 2])
    # Mean ablation with the task as its own reference: replacing a head by its per-template
    # mean over identical prompts does nothing.
    same = task[[0, 0, 0]]
    res = ablate(gpt2_random, same, heads=[(0, 1)], how="mean", n_boot=10)
    assert abs(float(res.values[0])) < 1e-5
    res = ablate(gpt2_random, task, heads=[(0, 1), (1, 3)], how="resample", seed=1, n_boot=10)
    assert res.values.shape == (1,) and res.coords["set"] == ["L0H1 L1H3"]


def test_detectors_custom_pattern_matches_named_kind(gpt2_random):
    named = detect_heads(gpt2_random, kind="previous_token", n=4, seq_len=6)
    custom = detect_heads(
        gpt2_random, kind=lambda p0, T: detector_pattern("previous_token", p0, T), n=4, seq_len=6
    )
    assert torch.allclose(named.values, custom.values)
    first = detect_heads(gpt2_random, kind="first_token", n=4, seq_len=6)
    assert ((first.values > 0) & (first.values <= 1)).all()


def test_detectors_run_on_the_real_minilm_encoder(minilm):
    for kind in ("previous_token", "next_token", "duplicate_token", "first_token", "induction"):
        res = detect_heads(minilm, kind=kind, n=4, seq_len=8)
        assert res.values.shape == (6, 12) and torch.isfinite(res.values).all()
        assert ((res.values >= 0) & (res.values <= 1 + 1e-6)).all()
    # A pretrained BERT has clear previous- and next-token heads.
    assert float(detect_heads(minilm, kind="previous_token", n=8, seq_len=8).values.max()) > 0.5
    assert float(detect_heads(minilm, kind="next_token", n=8, seq_len=8).values.max()) > 0.5


def test_organism_induction_detector_agrees_with_ablation(organism):
    """The detector's induction heads are the ones whose ablation breaks induction.

    The organism has several redundant induction heads in its last layer (scores within a few
    hundredths of each other, so their order is not a prediction), and zeroing any layer-0 head
    wrecks every later computation, so the comparison is made where it is meaningful: the heads
    of that layer the detector names against the rest of the layer, together and one by one.
    """
    scores = detect_heads(organism, kind="induction", n=32, seq_len=12)
    assert float(scores.values.max()) >= 0.5
    layer = int(scores.top(1).iloc[0].layer)
    found = [(layer, h) for h in range(organism.n_heads) if float(scores.values[layer, h]) >= 0.5]
    rest = [(layer, h) for h in range(organism.n_heads) if (layer, h) not in found]
    assert found and rest, found
    task = interp.tasks.induction(organism, n=48, seq_len=12, seed=3)
    harm = ablate(organism, task, heads=[found, rest], how="zero", metric=repeat_loss, n_boot=10)
    assert float(harm.values[0]) > 10 * harm.clean_metric_mean
    assert float(harm.values[0]) > 100 * max(float(harm.values[1]), 1e-6), harm.to_dataframe()
    single = ablate(
        organism,
        task,
        heads=[[(layer, h)] for h in range(organism.n_heads)],
        how="zero",
        metric=repeat_loss,
        n_boot=10,
    )
    worst = (layer, int(single.values.argmax()))
    assert worst in found, (worst, found)
    prev = detect_heads(organism, kind="previous_token", n=32, seq_len=12)
    assert int(prev.top(1).iloc[0].layer) < layer


def test_organism_ioi_name_movers_agree_across_methods(organism):
    """The organism's IOI answer is written by a few name-mover heads: the heads with the largest
    direct logit attribution are the ones exact patching finds, restoring (denoising) and
    removing (noising) alike, and together they carry the logit difference."""
    task = interp.tasks.ioi(organism, n=64, seed=1)
    dla = direct_logit(organism, task, over="heads", n_boot=10)
    k = 3

    def top(values: torch.Tensor) -> set[tuple[int, int]]:
        flat = torch.argsort(values.flatten(), descending=True)[:k]
        return {divmod(int(i), organism.n_heads) for i in flat}

    movers = top(dla.values)
    restore = activation_patch(organism, task, target="z", n_boot=10, progress=False)
    remove = activation_patch(organism, task, target="z", mode="noise", n_boot=10, progress=False)
    assert top(restore.values) == movers, (top(restore.values), movers)
    assert top(-remove.values) == movers, (top(-remove.values), movers)
    # Each mover writes a real share of the answer directly, half again as much as any other.
    others = [
        float(dla.values[l, h])
        for l in range(organism.n_layers)
        for h in range(organism.n_heads)
        if (l, h) not in movers
    ]
    assert min(float(dla.values[l, h]) for l, h in movers) > 1.5 * max(others)
    together = activation_patch(
        organism,
        task,
        nodes=[head_label(l, h) for l, h in sorted(movers)],
        n_boot=10,
        progress=False,
    )
    assert float(together.values[0]) > 0.85


def test_attention_view_is_offline(organism):
    res = attention_patterns(
        organism, "Then, Mary and John went to the store. John gave a drink to", [(0, 0), (1, 2)]
    )
    assert res.values.shape[0] == 2
    assert torch.allclose(res.values.sum(-1), torch.ones(res.values.shape[:2]), atol=1e-5)
    html = res.circuitsvis_html()
    assert "CircuitsVis.render" in html and "unpkg" not in html.split("<script>")[-1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m, t: direct_logit(m, t, over="neuron"), r"over=...\): got 'neuron'"),
        (lambda m, t: direct_logit(m, t, token=" Zyzzyva"), "not in organism's vocabulary"),
        (lambda m, t: direct_logit(m, t, token=10**7), "outside the vocabulary"),
        (lambda m, t: detect_heads(m, kind="succession"), r"kind: got 'succession'; use one of"),
        (lambda m, t: detect_heads(m, kind="next_token"), "causal"),
        (lambda m, t: ablate(m, t, heads=[(9, 0)]), "does not exist"),
        (lambda m, t: ablate(m, t, how="scramble"), "how="),
        (lambda m, t: logit_lens(m, t, show=99), "prompt index"),
        (lambda m, t: attention_patterns(m, t, [(0, 99)]), "does not exist"),
    ],
)
def test_bad_input(organism, call, message):
    task = interp.tasks.ioi(organism, n=4, seed=0)
    with pytest.raises(InterpError, match=message):
        call(organism, task)


def test_models_without_heads_or_logits_are_refused(minilm, gpt2_random):
    with pytest.raises(InterpError, match="no trained LM head"):
        direct_logit(minilm, interp.tasks.induction(minilm, n=2, seq_len=4))

    class Headless(interp.Model):
        """A handle reporting no attention heads (as an MLP-only or state-space model would)."""

        @property
        def n_heads(self) -> int:
            return 0

    headless = Headless(gpt2_random.tl, name="mlp-only", source="test")
    task = interp.tasks.ioi(gpt2_random, n=2, seed=0)
    for call in (
        lambda: detect_heads(headless),
        lambda: direct_logit(headless, task),
        lambda: ablate(headless, task),
    ):
        with pytest.raises(InterpError, match="no attention heads"):
            call()


def test_detector_score_is_exact_on_a_hand_built_pattern():
    from interp.analyses.attribution.detectors import score_patterns

    T, p0 = 3, 1
    seq = p0 + 2 * T
    pat = torch.zeros(1, 2, seq, seq)
    for q in range(seq):
        pat[0, 0, q, max(0, q - T + 1)] = 1.0  # head 0: a perfect induction head
        pat[0, 1, q, 0] = 1.0  # head 1: attends to BOS only
    scores = score_patterns([pat], detector_pattern("induction", p0, T))
    assert scores.tolist() == [[1.0, 0.0]]
    first = score_patterns([pat], detector_pattern("first_token", p0, T))
    assert torch.allclose(first, torch.tensor([[3 / seq, 1.0]]))  # head 0 looks at 0 from q = 0..2


# ----------------------------------------------------------------- every model kind (issue 17)


def _id_task(model, n: int = 6, seq: int = 10, seed: int = 0):
    """A task given as token ids only (the way in for a model without a tokenizer)."""
    from interp.tasks.task import Task

    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, model.d_vocab, (n, seq), generator=gen)
    answers = torch.randint(0, model.d_vocab_out, (n, 2), generator=gen)
    answers[:, 1] = (answers[:, 0] + 1 + answers[:, 1] % (model.d_vocab_out - 1)) % (
        model.d_vocab_out
    )
    return Task(clean_tokens=tokens, answer_pos=torch.full((n,), seq - 1), answers=answers)


def _head_dla_by_hand(model, task):
    """Per-head DLA from the cache with no norm scale: (z_h W_O[h]) . (W_U[:, c] - W_U[:, i])."""
    _, cache = model.run_with_cache(task.clean_tokens)
    rows = torch.arange(len(task))
    u = model.W_U[:, task.answers[:, 0]].T - model.W_U[:, task.answers[:, 1]].T
    out = []
    for layer in range(model.n_layers):
        z = cache[model.hook_name("z", layer)][rows, task.answer_pos]
        per_head = torch.einsum("bhd,hdm->bhm", z, model.W_O(layer))
        out.append((per_head * u[:, None]).sum(-1).mean(0))
    return torch.stack(out)


@pytest.mark.parametrize("which", ["gpt2_nonorm", "notok"])
def test_dla_and_logit_lens_without_norm_or_tokenizer(which, request):
    """No final norm: DLA uses scale 1 and the lens the identity; no tokenizer: token-id tasks
    and ``#id`` labels. Sum-to-total holds to 1e-4 and the lens's last row is the model."""
    model = request.getfixturevalue(which)
    if which == "notok":
        assert not model.has_tokenizer
        task = _id_task(model)
    else:
        assert model.normalization_type is None and model.final_scale_hook is None
        task = interp.tasks.ioi(model, n=8, seed=1, templates=[0])
    err = assert_sum_to_total(model, task, rtol=1e-4)
    assert err["max_rel_error"] < 1e-4
    tid = int(task.answers[0, 0])
    assert assert_sum_to_total(model, task, token=tid, rtol=1e-4)["max_rel_error"] < 1e-4
    res = direct_logit(model, task, over="components", n_boot=10)
    assert res.check_sum_to_total() < 1e-4
    by_head = direct_logit(model, task, over="heads", n_boot=10)
    if which == "gpt2_nonorm":  # scale 1: the plain projection, computed independently
        assert torch.allclose(by_head.values, _head_dla_by_hand(model, task), atol=1e-5)
    by_pos = direct_logit(model, task, over="positions", n_boot=10)
    assert torch.allclose(by_pos.values.sum(-1), by_head.values, atol=1e-5)

    lens = logit_lens(model, task, k=3)
    assert lens.final_layer_max_abs_logprob_error < 1e-5
    logits = model(task.clean_tokens[:1])[0]
    n_pos = lens.values.shape[-1]
    pos = int(task.answer_pos[0]) - (n_pos - 1) + torch.arange(n_pos)
    assert torch.equal(lens.top_ids[-1], logits[pos].topk(3, dim=-1).indices)
    if which == "gpt2_nonorm":  # block 0's output decoded with the identity norm
        _, cache = model.run_with_cache(task.clean_tokens[:1])
        x = cache[model.hook_name("resid_post", 0)][0, pos]
        top = (x @ model.W_U + model.b_U).topk(3, dim=-1).indices
        assert torch.equal(lens.top_ids[1], top)
    else:
        ids = task.clean_tokens[0, pos].tolist()
        assert lens.labels["pos"] == [f"#{i}" for i in ids]
        assert lens.top_tokens[-1][0] == [f"#{int(i)}" for i in lens.top_ids[-1, 0]]
        assert by_pos.labels["pos"][0] == f"0: #{int(task.clean_tokens[0, 0])}"
    # Ablation and attention views run on these models too.
    abl = ablate(model, task, heads=[(1, 2)], how="zero", n_boot=10)
    assert torch.isfinite(abl.values).all()
    att = attention_patterns(model, task, [(0, 1), (1, 3)])
    assert torch.allclose(att.values.sum(-1), torch.ones(att.values.shape[:2]), atol=1e-5)
    if which == "notok":
        assert att.tokens == [f"#{i}" for i in task.clean_tokens[0].tolist()]
        one = attention_patterns(model, task.clean_tokens[0], [(0, 1)])
        assert torch.equal(one.values[0], att.values[0])


def test_smollm2_dla_sums_to_total_and_lens_is_the_model(smollm2):
    """RMSNorm (no centring, TransformerLens issue #523), rotary, GQA 9/3 on the real model.

    One DLA pass (by source position, which keeps every component per prompt) and a lens on a
    short prompt keep the test to a few forward passes of the 30-layer model.
    """
    model = smollm2
    assert str(model.normalization_type).startswith("RMS") and model.kv_group == 3
    task = interp.Task.from_prompts(
        model,
        [
            "When Mary and John went to the store, John gave a drink to",
            "When Tom and Anna went to the park, Tom gave a ball to",
        ],
        answers=[(" Mary", " John"), (" Anna", " Tom")],
    )
    res = direct_logit(model, task, over="positions", n_boot=10)
    err = res.check_sum_to_total()
    assert err < 1e-4, err
    assert bool((res.total > 0).all())  # the model prefers the indirect object
    # GQA: each head split by source position (v of query head h is kv head h // 3) adds up
    # to the head's total direct effect.
    heads = [i for i, lab in enumerate(res.component_labels) if lab.startswith("L") and "H" in lab]
    by_head = res.components[:, heads].mean(0).reshape(model.n_layers, model.n_heads)
    assert torch.allclose(res.values.sum(-1), by_head, atol=1e-4)
    lens = logit_lens(model, ["The capital of France is"], k=3)
    assert lens.final_layer_max_abs_logprob_error < 1e-4
    tokens = model.to_tokens("The capital of France is")
    logits = model(tokens)[0]
    n_pos = lens.values.shape[-1]
    assert n_pos == tokens.shape[1]
    assert torch.equal(lens.top_ids[-1], logits.topk(3, dim=-1).indices)


def test_detector_scores_relate_to_transformer_lens_detect_head_by_the_row_fraction(gpt2_random):
    """interp averages over the query rows where the detector pattern marks a key; TransformerLens'
    ``detect_head`` ("mul") divides by all s rows. On [BOS, r_1..r_T, r_1..r_T] (s = 2T + 1):
    TL = interp * T / s for induction and duplicate-token, * 2T / s for previous-token."""
    from transformer_lens.head_detector import detect_head

    from interp.analyses.attribution.detectors import random_repeats

    model, T, n = gpt2_random, 6, 4
    tokens = random_repeats(model, n, T, seed=0)
    prompts = [model.decode(row[1:]) for row in tokens]
    assert torch.equal(model.to_tokens(prompts), tokens)  # TL sees exactly these sequences
    s = 2 * T + 1
    for kind, tl_name, rows in (
        ("induction", "induction_head", T),
        ("duplicate_token", "duplicate_token_head", T),
        ("previous_token", "previous_token_head", 2 * T),
    ):
        ours = detect_heads(model, kind=kind, n=n, seq_len=T, seed=0).values
        theirs = detect_head(model.tl, prompts, tl_name).float()
        assert torch.allclose(theirs, ours * rows / s, atol=1e-6), kind
        # The user's own sequences: the same tokens give the same scores (content patterns).
        given = detect_heads(model, kind=kind, sequences=tokens).values
        assert torch.allclose(given, ours, atol=1e-6), kind


def test_detectors_on_user_sequences_read_the_tokens(gpt2_random):
    """Irregular repeats: the pattern is read off the tokens (TransformerLens' patterns); on one
    sequence of s tokens with r marked rows TL's score is ours * r / s; prompts of different
    lengths pool their marked rows."""
    from transformer_lens.head_detector import detect_head

    from interp.analyses.attribution.detectors import content_pattern

    model = gpt2_random
    words = model.to_tokens(" apple river stone cloud apple green river stone", prepend_bos=False)[
        0
    ]
    seq = torch.cat([model.to_tokens("")[0], words])[None]  # BOS + 8 words, 3 repeats
    prompt = model.decode(seq[0, 1:])
    for kind, tl_name in (
        ("induction", "induction_head"),
        ("duplicate_token", "duplicate_token_head"),
    ):
        pattern = content_pattern(kind, seq[0])
        rows = int((pattern.sum(-1) > 0).sum())
        assert rows == 3
        ours = detect_heads(model, kind=kind, sequences=seq).values
        theirs = detect_head(model.tl, prompt, tl_name).float()
        assert torch.allclose(theirs, ours * rows / seq.shape[1], atol=1e-6), kind
    # Prompts of different lengths: pooled over every marked row of both.
    a, b = "one two three one two three", "red blue red blue red"
    both = detect_heads(model, kind="induction", sequences=[a, b]).values
    sa = detect_heads(model, kind="induction", sequences=[a]).values
    sb = detect_heads(model, kind="induction", sequences=[b]).values
    ra = int((content_pattern("induction", model.to_tokens(a)[0]).sum(-1) > 0).sum())
    rb = int((content_pattern("induction", model.to_tokens(b)[0]).sum(-1) > 0).sum())
    assert torch.allclose(both, (sa * ra + sb * rb) / (ra + rb), atol=1e-6)
    with pytest.raises(InterpError, match="describes the default"):
        detect_heads(model, kind=lambda p0, T: detector_pattern("induction", p0, T), sequences=seq)


def test_detectors_without_a_tokenizer(notok):
    from interp.analyses.attribution.detectors import random_repeats

    tokens = random_repeats(notok, 4, 8, seed=0)
    assert tokens.shape == (4, 16) and int(tokens.max()) < notok.d_vocab  # no prefix, any ids
    assert all(len(set(row[:8].tolist())) == 8 for row in tokens)  # distinct within a copy
    res = detect_heads(notok, kind="induction", n=4, seq_len=8)
    assert res.values.shape == (2, 4) and ((res.values >= 0) & (res.values <= 1 + 1e-6)).all()
    given = detect_heads(notok, kind="induction", sequences=tokens)
    assert torch.allclose(given.values, res.values, atol=1e-6)
    with pytest.raises(InterpError, match="no tokenizer"):
        detect_heads(notok, sequences=["some text"])
    with pytest.raises(InterpError, match="outside the vocabulary"):
        detect_heads(notok, sequences=torch.tensor([[1, 2, 500]]))


def test_encoder_without_lm_head_is_refused_before_any_forward_pass(minilm):
    """One clear error naming the analysis and the reason, raised before the model runs."""
    task = interp.tasks.induction(minilm, n=2, seq_len=4)

    def boom(module, args):
        raise AssertionError("the model ran before the analysis refused it")

    handle = minilm.tl.register_forward_pre_hook(boom)
    try:
        for call, name in (
            (lambda: direct_logit(minilm, task), "direct_logit_attribution"),
            (lambda: assert_sum_to_total(minilm, task), "direct_logit_attribution"),
            (lambda: logit_lens(minilm, task), "logit_lens"),
            (lambda: ablate(minilm, task, heads=[(0, 0)]), "ablate"),
        ):
            with pytest.raises(InterpError, match=rf"{name} cannot run on .*no trained LM head"):
                call()
    finally:
        handle.remove()


@pytest.mark.parametrize(
    "variant",
    [
        {"attn_only": True},
        {"positional_embedding_type": "shortformer"},
        {"positional_embedding_type": "alibi"},
        {"parallel_attn_mlp": True},
        {"gated_mlp": True, "act_fn": "silu"},
        {"output_logits_soft_cap": 2.0, "normalization_type": "RMS"},
    ],
    ids=["attn_only", "shortformer", "alibi", "parallel", "gated", "soft_cap"],
)
def test_dla_sums_to_total_on_other_architectures(variant):
    """Attention-only blocks have no MLP components; shortformer position embeddings feed the
    attention only and ALiBi has none, so neither is a residual component. Gemma-2-style logit
    soft-capping is nonlinear: DLA splits the logits before the cap (the model's own logits
    passed through atanh of the cap)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(5)
    base = dict(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        d_vocab=60,
        n_ctx=20,
        act_fn="gelu",
        normalization_type="LN",
        seed=5,
    )
    model = interp.load_model(HookedTransformer(HookedTransformerConfig(**{**base, **variant})))
    clean = torch.randint(1, 60, (3, 9))
    task = interp.Task(clean_tokens=clean, answer_pos=torch.full((3,), 8), answers=clean[:, :2])
    dec = interp.attribution.decompose(model, task)
    with torch.no_grad():
        logits = model(clean)[:, 8]
    cap = variant.get("output_logits_soft_cap")
    pre = cap * torch.atanh(logits / cap) if cap else logits
    rows = torch.arange(3)
    assert torch.allclose(dec.total, pre[rows, clean[:, 0]] - pre[rows, clean[:, 1]], atol=1e-4)
    assert float(dec.sum_error().max()) < 1e-4
    assert ("mlp" in dec.kinds) == (not variant.get("attn_only", False))
    assert ("pos_embed" in dec.kinds) == ("positional_embedding_type" not in variant)


# ----------------------------------------------------------------- one vocabulary (issue 19)


def _same(a, b, skip=("time", "call")) -> bool:
    """Every dataclass field of two results equal exactly (tensors by tensors_equal); meta
    compared without `skip` (the time of the call, and the call as spelled)."""
    import dataclasses

    from interp.results.io import tensors_equal

    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "meta":
            x = {k: v for k, v in x.items() if k not in skip}
            y = {k: v for k, v in y.items() if k not in skip}
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not tensors_equal(x, y):
                return False
        elif isinstance(x, dict) and any(isinstance(v, torch.Tensor) for v in x.values()):
            if x.keys() != y.keys() or not all(tensors_equal(x[k], y[k]) for k in x):
                return False
        elif x != y:
            return False
    return True


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("head", "heads"),
        ("layer", "layers"),
        ("component", "components"),
        ("position", "positions"),
    ],
)
def test_dla_by_is_the_deprecated_spelling_of_over(gpt2_random, old, new):
    task = interp.tasks.ioi(gpt2_random, n=4, seed=0, templates=[0])
    with pytest.warns(DeprecationWarning, match=rf"by='{old}'.*over='{new}'"):
        before = direct_logit(gpt2_random, task, by=old, n_boot=10)
    after = direct_logit(gpt2_random, task, over=new, n_boot=10)
    assert _same(before, after)
    assert after.meta["params"]["over"] == new and after.dims[0] in ("layer", "component")
    with pytest.raises(InterpError, match="over= only"):
        direct_logit(gpt2_random, task, by=old, over=new)


def test_logit_lens_target_is_the_deprecated_spelling_of_token(gpt2_random):
    task = interp.tasks.ioi(gpt2_random, n=3, seed=0, templates=[0])
    with pytest.warns(DeprecationWarning, match="target=.*token="):
        before = logit_lens(gpt2_random, task, target=" Mary", k=3)
    after = logit_lens(gpt2_random, task, token=" Mary", k=3)
    assert _same(before, after)
    assert after.meta["params"]["token"] == " Mary"
    with pytest.raises(InterpError, match="Token id"):
        logit_lens(gpt2_random, task, token=10**7)


def test_detector_pattern_renames(gpt2_random):
    from interp.analyses.attribution.detectors import score_patterns

    with pytest.warns(DeprecationWarning, match="target_pattern.*detector_pattern"):
        old = interp.attribution.target_pattern("induction", 1, 4)
    assert torch.equal(old, detector_pattern("induction", 1, 4))
    pats = [torch.rand(2, 3, 9, 9, generator=torch.Generator().manual_seed(0))]
    with pytest.warns(DeprecationWarning, match="target=.*expected="):
        before = score_patterns(pats, target=old)
    assert torch.equal(before, score_patterns(pats, expected=old))
    scores = detect_heads(gpt2_random, kind=old.new_ones(1, 1).expand(13, 13), n=2, seq_len=6)
    assert scores.meta["params"]["kind"] == "custom"


def test_heads_are_read_in_every_spelling(gpt2_random):
    """(l, h) pairs, "L1H2" / "1.2" labels and Node objects name the same heads, bit-identically;
    labels are written by interp.nodes."""
    from interp.nodes import Node, head_node

    task = interp.tasks.ioi(gpt2_random, n=4, seed=3, templates=[2])
    ref = ablate(gpt2_random, task, heads=[(1, 2), (0, 3)], how="zero", n_boot=10)
    for spec in (["L1H2", "0.3"], [head_node(1, 2), Node.parse("L0H3")], [[1, 2], "L0H3"]):
        assert _same(ablate(gpt2_random, task, heads=spec, how="zero", n_boot=10), ref), spec
    assert ref.coords["set"] == ["L1H2 L0H3"] and ref.meta["params"]["heads"] == [[[1, 2], [0, 3]]]
    sets = ablate(gpt2_random, task, heads=[["L1H2"], [(0, 3)]], how="zero", n_boot=10)
    assert sets.coords["set"] == ["L1H2", "L0H3"]
    att = attention_patterns(gpt2_random, task, [(0, 1), (1, 3)])
    assert _same(attention_patterns(gpt2_random, task, ["L0H1", head_node(1, 3)]), att)
    assert att.coords["head"] == ["L0H1", "L1H3"]
    with pytest.raises(InterpError, match="L0H99 does not exist"):
        attention_patterns(gpt2_random, task, ["L0H99"])
    with pytest.raises(InterpError, match="'L1' is not a head"):
        ablate(gpt2_random, task, heads=["L1"])


def test_old_result_keys_read_the_declared_fields_with_a_warning(gpt2_random):
    task = interp.tasks.ioi(gpt2_random, n=3, seed=0, templates=[0])
    dla = direct_logit(gpt2_random, task, over="components", n_boot=10)
    lens = logit_lens(gpt2_random, task, k=2)
    for res, where, key in (
        (dla, "extras", "total"),
        (dla, "extras", "components"),
        (dla, "meta", "component_labels"),
        (lens, "extras", "top_ids"),
        (lens, "meta", "top_tokens"),
        (lens, "meta", "final_layer_max_abs_logprob_error"),
    ):
        with pytest.warns(DeprecationWarning, match=key):
            old = getattr(res, where)[key]
        assert old is getattr(res, key)
    assert "show_top" not in dict(lens.meta) and type(lens).show_top is False
    with pytest.warns(DeprecationWarning, match="viz.figures.head_grid"):
        from interp.results.attribution import head_grid
    from interp.viz.figures import head_grid as moved

    assert head_grid is moved


def _declared_results(gpt2_random):
    task = interp.tasks.ioi(gpt2_random, n=4, seed=1, templates=[0])
    from interp.analyses.residual import residual_norms

    acts = {
        gpt2_random.hook_name("resid_post", layer): torch.randn(
            5, 6, 8, generator=torch.Generator().manual_seed(layer)
        )
        for layer in range(2)
    }
    return {
        "dla_components": direct_logit(gpt2_random, task, over="components", n_boot=10),
        "dla_positions": direct_logit(gpt2_random, task, over="positions", n_boot=10),
        "ablation_each": ablate(gpt2_random, task, how="zero", n_boot=10),
        "ablation_sets": ablate(gpt2_random, task, heads=[["L0H1"], ["L1H0"]], n_boot=10),
        "lens": logit_lens(gpt2_random, task, k=3),
        "attention": attention_patterns(gpt2_random, task, ["L0H1", "L1H2"]),
        "heads": detect_heads(gpt2_random, kind="induction", n=2, seq_len=5),
        "norms": residual_norms(acts, seed=0),
    }


def test_declared_fields_save_and_load_exactly(gpt2_random, tmp_path):
    import dataclasses

    for name, res in _declared_results(gpt2_random).items():
        declared = type(res).declared_fields()
        for f in declared:  # every declared field is filled by its analysis
            assert getattr(res, f) is not None, (name, f)
        back = interp.load_result(res.save(tmp_path / name))
        assert _same(back, res, skip=()), name
        for f in dataclasses.fields(res):
            assert type(getattr(back, f.name)) is type(getattr(res, f.name)), (name, f.name)
        assert back.plot().data, name  # the views draw from the loaded fields
        if name == "attention":
            assert "L0H1" in back.circuitsvis_html(include_js=False)


def test_each_result_type_declares_its_data():
    from interp.results import (
        AblationResult,
        AttentionResult,
        DLAResult,
        HeadScores,
        LogitLensResult,
        ResidualNorms,
    )

    assert set(DLAResult.declared_fields()) == {
        "per_prompt",
        "components",
        "total",
        "component_labels",
    }
    assert set(AblationResult.declared_fields()) == {
        "per_prompt",
        "clean_metric",
        "clean_metric_mean",
    }
    assert set(LogitLensResult.declared_fields()) == {
        "top_ids",
        "top_probs",
        "top_tokens",
        "final_layer_max_abs_logprob_error",
    }
    assert AttentionResult.declared_fields() == ("tokens",)
    assert HeadScores.declared_fields() == () == ResidualNorms.declared_fields()
