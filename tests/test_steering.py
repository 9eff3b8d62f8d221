"""Steering: exactness against hand-written TransformerLens hooks and one run per configuration,
ground truth on the organism's truth-of-statements task, and bad input.

Numbers quoted in comments were measured with these seeds on the embedded organism.
"""

from __future__ import annotations

import math

import pytest
import torch

import interp
from interp.analyses.steering import SteeringDirection, steer
from interp.analyses.steering import engine as steering_engine
from interp.analyses.steering.directions import site_activations
from interp.analyses.steering.evaluate import task_positions
from interp.analyses.steering.objective import objective
from interp.errors import InterpError
from interp.nodes import Node

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def facts_train(organism):
    return interp.tasks.facts(organism, n=256, seed=1, kind="statements", split="train")


@pytest.fixture(scope="module")
def facts_eval(organism):
    return interp.tasks.facts(organism, n=128, seed=2, kind="statements", split="eval")


@pytest.fixture(scope="module")
def neutral(organism):
    return interp.steering.neutral_prompts(organism, n=24, exclude="facts")


@pytest.fixture(scope="module")
def truth_layer(organism, facts_train):
    """The site where truth is most readable: the probe sweep's best layer."""
    probe = interp.probes.sweep(organism, facts_train, progress=False, n_boot=50)
    return probe


def _no_hooks(model) -> bool:
    return all(
        not hp._forward_hooks and not hp._forward_pre_hooks for hp in model.tl.hook_dict.values()
    )


# ----------------------------------------------------------------------------- directions


def test_mean_diff_direction_is_the_difference_of_class_means(organism, facts_train):
    d = interp.steering.direction(organism, facts_train, at="resid_post", layer=2)
    x = site_activations(organism, facts_train, Node("resid_post", 2), "last").double()
    y = facts_train.labels.bool()
    raw = x[y].mean(0) - x[~y].mean(0)
    assert torch.allclose(d.vector.double(), raw / raw.norm(), atol=1e-6)
    assert d.norm == pytest.approx(float(raw.norm()), rel=1e-5)
    assert d.sigma == pytest.approx(float((x @ d.vector.double()).std()), rel=1e-5)
    lo, hi = float((x[y] @ d.vector.double()).mean()), float((x[~y] @ d.vector.double()).mean())
    assert d.class_means == pytest.approx((lo, hi), rel=1e-4)
    assert d.separation > 0.3  # measured 0.45 sigma
    assert d.site == Node("resid_post", 2) and d.model == organism.name


def test_head_direction_reads_that_heads_z(organism, facts_train):
    d = interp.steering.direction(organism, facts_train, at="z", head="L3H0")
    z = site_activations(organism, facts_train, Node("z", 3, 0), "last").double()
    y = facts_train.labels.bool()
    raw = z[y].mean(0) - z[~y].mean(0)
    assert d.width == organism.d_head and d.site == Node("z", 3, 0)
    assert torch.allclose(d.vector.double(), raw / raw.norm(), atol=1e-6)


def test_pca_recovers_a_planted_difference_and_act_add_is_the_pair_difference(organism):
    pairs = [
        ("Anna lives in Paris .", "Anna lives in Rome ."),
        ("Mark lives in Paris .", "Mark lives in Rome ."),
        ("James lives in Paris .", "James lives in Rome ."),
    ]
    pca = interp.steering.direction(organism, pairs, at="resid_pre", layer=1, method="pca")
    mean = interp.steering.direction(organism, pairs, at="resid_pre", layer=1)
    # The pairs differ by one word at one position: their differences share one axis.
    assert float(pca.vector @ mean.vector) > 0.95
    pos = site_activations(
        organism, interp.Task.from_prompts(organism, [pairs[0][0]]), Node("resid_pre", 1), "last"
    )
    neg = site_activations(
        organism, interp.Task.from_prompts(organism, [pairs[0][1]]), Node("resid_pre", 1), "last"
    )
    act = interp.steering.direction(organism, pairs[:1], at="resid_pre", layer=1, method="act_add")
    raw = (pos - neg)[0]
    assert torch.allclose(act.vector, raw / raw.norm(), atol=1e-6)
    assert act.norm == pytest.approx(float(raw.norm()), rel=1e-5)
    assert act.alpha_for(2.0) == pytest.approx(2.0 * act.norm / act.sigma)


def test_probe_direction_separates_the_classes_and_converts_from_a_probe_result(
    organism, facts_train, truth_layer
):
    d = interp.steering.direction(organism, facts_train, at="resid_post", layer=2, method="probe")
    assert d.separation > 0.5
    conv = truth_layer.steering_direction(3)  # coordinate 3 reads blocks.2.hook_resid_post
    assert conv.site == Node("resid_post", 2)
    x = site_activations(organism, facts_train, conv.site, "last")
    assert conv.sigma == pytest.approx(float((x @ conv.vector).std()), rel=1e-4)
    assert conv.class_means[0] > conv.class_means[1]


def test_direction_saves_and_loads_exactly(organism, facts_train, tmp_path):
    d = interp.steering.direction(organism, facts_train, at="z", layer=3, head=2)
    d.save(tmp_path / "d")
    back = SteeringDirection.load(tmp_path / "d")
    assert torch.equal(back.vector, d.vector)
    assert (back.site, back.sigma, back.norm, back.class_means, back.method, back.model) == (
        d.site,
        d.sigma,
        d.norm,
        d.class_means,
        d.method,
        d.model,
    )


# ----------------------------------------------------------------------------- steer: exactness


@pytest.mark.parametrize("kind", ["organism", "llama_random", "gpt2_random"])
def test_alpha_zero_is_the_plain_run_bit_for_bit(kind, request):
    model = request.getfixturevalue(kind)
    tokens = torch.randint(5, 200, (3, 9))
    d = SteeringDirection(
        torch.randn(model.d_model), Node("resid_mid", 1), sigma=2.0, model=model.name
    )
    plain = model(tokens)
    with steer(model, d, alpha=0.0):
        zero = model(tokens)
    assert torch.equal(plain, zero)
    with steer(model, d, alpha=3.0):
        moved = model(tokens)
    assert not torch.allclose(plain, moved)
    assert _no_hooks(model)


@pytest.mark.parametrize("kind", ["organism", "llama_random"])
@pytest.mark.parametrize("positions", ["all", "last", [1, 3]])
def test_steered_run_equals_a_hand_written_transformer_lens_hook(kind, positions, request):
    model = request.getfixturevalue(kind)
    tokens = torch.randint(5, 200, (2, 7))
    d = SteeringDirection(
        torch.randn(model.d_model), Node("resid_post", 0), sigma=1.5, model=model.name
    )
    h = SteeringDirection(torch.randn(model.d_head), Node("z", 1, 2), sigma=0.7, model=model.name)
    v, w = d.vector * (4.0 * 1.5), h.vector * (-2.0 * 0.7)
    idx = (
        positions
        if isinstance(positions, list)
        else {"all": slice(None), "last": slice(-1, None)}[positions]
    )

    def add_resid(x, hook):
        x = x.clone()
        x[:, idx] += v
        return x

    def add_head(x, hook):
        x = x.clone()
        x[:, idx, 2] += w
        return x

    expected = model.tl.run_with_hooks(
        tokens,
        fwd_hooks=[("blocks.0.hook_resid_post", add_resid), ("blocks.1.attn.hook_z", add_head)],
    )
    with steer(model, [d, h], alpha=[4.0, -2.0], positions=positions):
        got = model(tokens)
    assert torch.equal(got, expected)


def test_hooks_are_removed_when_the_block_raises(organism):
    d = SteeringDirection(
        torch.randn(organism.d_model), Node("resid_pre", 2), sigma=1.0, model=organism.name
    )
    tokens = torch.randint(5, 200, (2, 6))
    plain = organism(tokens)
    with pytest.raises(ZeroDivisionError), steer(organism, d, alpha=5.0):
        organism(tokens)
        _ = 1 / 0
    assert _no_hooks(organism)
    assert torch.equal(organism(tokens), plain)


def test_steering_composes_with_other_analyses(organism, facts_eval, facts_train):
    """A steered model can be cached and attributed like any other."""
    task = facts_eval[:16]
    head = interp.steering.direction(organism, facts_train, at="z", head="L3H0")
    before = interp.attribution.direct_logit(organism, task, n_boot=10)
    with steer(organism, head, alpha=4.0, positions=task.answer_pos):
        after = interp.attribution.direct_logit(organism, task, n_boot=10)
    # Steering a head's z is part of that head's term: DLA still sums to the logit difference,
    # and L3H0's term changes most (the others only through the final norm's scale).
    after.check_sum_to_total()
    change = (after.values - before.values).abs()
    assert int(change.argmax()) == 3 * organism.n_heads + 0 and float(change[3, 0]) > 1.0
    d = interp.steering.direction(organism, facts_train, at="resid_post", layer=3)
    with steer(organism, d, alpha=2.0, positions=task.answer_pos):
        acts = interp.cache(organism, task, names=["resid_post"], progress=False)
        # A vector added to the residual stream is no component DLA knows: refused clearly.
        with pytest.raises(InterpError, match="steering"):
            interp.attribution.direct_logit(organism, task, n_boot=10)
    plain = interp.cache(organism, task, names=["resid_post"], progress=False)
    rows = torch.arange(16)
    name = "blocks.3.hook_resid_post"
    delta = acts[name][rows, task.answer_pos] - plain[name][rows, task.answer_pos]
    assert torch.allclose(delta, d.added(2.0).expand(16, -1), atol=1e-4)


def test_a_steered_model_can_be_patched(organism, facts_train, facts_eval):
    """Patching runs inside `steer` see the steered model: its clean and corrupted metrics are
    the steered runs', and patching every position of the residual stream recovers them."""
    task = facts_eval[:16]
    d = interp.steering.direction(organism, facts_train, at="resid_pre", layer=1)
    with steer(organism, d, alpha=6.0):
        res = interp.patching.activation_patch(
            organism, task, target="resid_pre", n_boot=10, progress=False
        )
        clean = interp.tasks.logit_diff(organism(task.clean_tokens), task)
    plain = interp.patching.activation_patch(
        organism, task, target="resid_pre", n_boot=10, progress=False
    )
    assert res.clean_metric_mean == pytest.approx(float(clean.mean()), abs=1e-4)
    assert abs(res.clean_metric_mean - plain.clean_metric_mean) > 0.1
    assert torch.allclose(res.values[0], torch.ones(()), atol=1e-4)  # layer 0, all positions
    assert _no_hooks(organism)


# ------------------------------------------------------------------- generation


def _reference_greedy(model, prompt, d, alpha, positions, n_new):
    """Greedy decoding recomputing the whole sequence every step (no key-value cache)."""
    ids = model.to_tokens(prompt)
    p = ids.shape[1]
    for _ in range(n_new):
        pos = list(range(p, ids.shape[1])) if positions == "generated" else "all"
        if pos == []:
            logits = model(ids)
        else:
            with steer(model, d, alpha=alpha, positions=pos):
                logits = model(ids)
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return ids[0, p:]


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_generation_with_the_kv_cache_equals_recomputing_every_step(gpt2_random, positions):
    model = gpt2_random
    d = SteeringDirection(
        torch.randn(model.d_model), Node("resid_pre", 1), sigma=3.0, model=model.name
    )
    prompt = "The quick brown fox jumps over"
    got = interp.steering.generate(
        model, [prompt], d, alpha=6.0, positions=positions, max_new_tokens=6, stop_at_eos=False
    )[0]
    ref = _reference_greedy(model, prompt, d, 6.0, positions, 6)
    assert got == model.decode(ref)
    plain = interp.steering.generate(model, [prompt], None, max_new_tokens=6, stop_at_eos=False)
    assert plain[0] == model.decode(_reference_greedy(model, prompt, d, 0.0, "all", 6))


# ------------------------------------------------------------------- evaluate: exactness


def _loop_reference(model, obj_task, dirs, alphas, n_random, positions, seed, sign=1.0):
    """One hooked forward per configuration, with the task metric computed by hand."""
    rows = torch.arange(len(obj_task))
    ans = obj_task.answers

    def metric(logits):
        final = logits[rows, obj_task.answer_pos]
        return final[rows, ans[:, 0]] - final[rows, ans[:, 1]]

    base = metric(model(obj_task.clean_tokens))
    real, rand = [], []
    for i, d in enumerate(dirs):
        controls = [d.random(seed * 1_000_003 + i * 1009 + s) for s in range(n_random)]
        for a in alphas:
            with steer(model, d, alpha=sign * a, positions=positions):
                real.append((metric(model(obj_task.clean_tokens)) - base).mean())
            for r in controls:
                with steer(model, r, alpha=sign * a, positions=positions):
                    rand.append((metric(model(obj_task.clean_tokens)) - base).mean())
    D, A = len(dirs), len(alphas)
    return torch.stack(real).reshape(D, A), torch.stack(rand).reshape(D, A, n_random)


@pytest.mark.parametrize("positions", ["all", "last"])
@pytest.mark.parametrize("toward", ["positive", "negative"])
def test_stacked_evaluation_equals_one_steered_run_per_configuration(
    organism, facts_train, facts_eval, positions, toward
):
    dirs = [
        interp.steering.direction(organism, facts_train, at="resid_pre", layer=1),
        interp.steering.direction(organism, facts_train, at="z", head="L3H0"),
        interp.steering.direction(organism, facts_train, at="mlp_out", layer=2),
    ]
    task = facts_eval[:24]
    alphas = [-2.0, 3.0, 8.0]
    res = interp.steering.evaluate(
        organism,
        task,
        dirs,
        alphas=alphas,
        kl=False,
        positions=positions,
        toward=toward,
        n_random=2,
        progress=False,
        n_boot=20,
        memory_budget="2MiB",
    )
    obj = objective(organism, task, toward)
    pos = obj.task.answer_pos if positions == "last" else "all"
    sign = 1.0 if toward == "positive" else -1.0
    real, rand = _loop_reference(organism, obj.task, dirs, alphas, 2, pos, 0, sign)
    assert torch.allclose(res.metric("effect"), real, atol=1e-5, rtol=1e-5)
    assert torch.allclose(res.random[..., 0], rand, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["llama_random", "gpt2_random"])
def test_stacked_evaluation_equals_the_loop_on_other_architectures(kind, request):
    model = request.getfixturevalue(kind)
    prompts = [
        "The cat sat on the mat and then",
        "A dog ran in the park and",
        "She went to the shop to buy some",
    ]
    task = interp.Task.from_prompts(model, prompts, answers=[(" the", " a")] * 3)
    d = SteeringDirection(
        torch.randn(model.d_model), Node("resid_mid", 1), sigma=2.0, model=model.name
    )
    for positions in ("all", "last"):
        res = interp.steering.evaluate(
            model,
            task,
            [d],
            alphas=[1.0, 4.0],
            kl=False,
            positions=positions,
            n_random=1,
            progress=False,
            n_boot=10,
        )
        pos = task.answer_pos if positions == "last" else "all"
        real, rand = _loop_reference(model, task, [d], [1.0, 4.0], 1, pos, 0)
        assert torch.allclose(res.metric("effect"), real, atol=1e-5, rtol=1e-5)
        assert torch.allclose(res.random[..., 0], rand, atol=1e-5, rtol=1e-5)


def test_full_forward_path_equals_the_mid_model_path(
    organism, facts_train, facts_eval, monkeypatch
):
    """Backends that cannot start mid-model (TransformerBridge) run whole stacked forwards."""
    d = interp.steering.direction(organism, facts_train, at="resid_pre", layer=2)
    kw = dict(alphas=[2.0, 8.0], kl=False, positions="last", n_random=1, progress=False, n_boot=10)
    fast = interp.steering.evaluate(organism, facts_eval[:16], [d], **kw)
    monkeypatch.setattr(steering_engine, "starts_mid_model", lambda m: False)
    slow = interp.steering.evaluate(organism, facts_eval[:16], [d], **kw)
    assert torch.allclose(fast.values, slow.values, atol=1e-5, rtol=1e-5, equal_nan=True)


def test_neutral_side_effects_equal_a_hand_computed_kl_and_loss(organism, facts_train, facts_eval):
    d = interp.steering.direction(organism, facts_train, at="resid_pre", layer=1)
    texts = [
        "Mary and John went to the park . John gave a ball to Mary",
        "red blue green red blue green red blue",
    ]
    res = interp.steering.evaluate(
        organism,
        facts_eval[:8],
        [d],
        alphas=[4.0],
        neutral=texts,
        n_random=0,
        progress=False,
        n_boot=10,
    )
    kls, losses = [], []
    for t in texts:
        ids = organism.to_tokens(t)
        lp0 = organism(ids)[0, :-1].log_softmax(-1)
        with steer(organism, d, alpha=4.0):
            lp = organism(ids)[0, :-1].log_softmax(-1)
        nxt = ids[0, 1:]
        kls.append(float((lp0.exp() * (lp0 - lp)).sum(-1).mean()))
        losses.append(
            float(-lp.gather(1, nxt[:, None]).mean() + lp0.gather(1, nxt[:, None]).mean())
        )
    assert float(res.metric("kl")[0, 0]) == pytest.approx(sum(kls) / 2, rel=1e-4, abs=1e-6)
    assert float(res.metric("loss_change")[0, 0]) == pytest.approx(
        sum(losses) / 2, rel=1e-4, abs=1e-6
    )


# ----------------------------------------------------------------- ground truth (organism)


def test_truth_direction_flips_false_statements_and_random_directions_do_not(
    organism, facts_train, facts_eval, neutral, truth_layer
):
    best = truth_layer.best_layer  # the final residual stream (accuracy 1.0)
    d = truth_layer.steering_direction(best)
    mean_diff = interp.steering.direction(
        organism, facts_train, at=d.site.target, layer=d.site.layer
    )
    alphas = [1.0, 2.0, 4.0]
    kw = dict(
        alphas=alphas, neutral=neutral, positions="last", n_random=5, progress=False, n_boot=200
    )
    up = interp.steering.evaluate(organism, facts_eval, [mean_diff], **kw)
    down = interp.steering.evaluate(organism, facts_eval, [mean_diff], toward="negative", **kw)
    # Unsteered, 16% of held-out false statements are answered " true" and no true ones false.
    assert up.baseline["target_rate"] < 0.25 and down.baseline["target_rate"] < 0.05
    for res in (up, down):
        rate = res.metric("target_rate")[0]
        j = int((rate >= 0.9).nonzero()[0])  # the weakest strength that flips >= 90%
        flips = res.random_band("flip_rate")[2][0, j]  # the worst of 5 random seeds
        assert float(flips) <= 0.10
        assert float(res.metric("effect")[0, j]) > float(res.random_band("effect")[2][0, j])
        # Measured at 2 sigma: 100% flipped either way (53% and 56% at 1 sigma); the worst of 5
        # random directions flips none; KL on the other tasks' prompts 0.87 nats (up) and 0.69
        # (down).
        assert alphas[j] <= 2.0
        assert 0 < float(res.metric("kl")[0, j]) < 3.0


def test_earlier_truth_directions_beat_their_random_band(organism, facts_train, facts_eval):
    dirs = [
        interp.steering.direction(organism, facts_train, at="resid_pre", layer=l) for l in (2, 3)
    ]
    res = interp.steering.evaluate(
        organism,
        facts_eval,
        dirs,
        alphas=[16.0],
        kl=False,
        positions="last",
        n_random=5,
        progress=False,
        n_boot=100,
    )
    effect, (_, _, rand_hi) = res.metric("effect")[:, 0], res.random_band("effect")
    # Measured: 12.3 and 12.7 logits against random maxima 7.1 and 6.5.
    assert bool((effect > rand_hi[:, 0] + 3.0).all())
    assert bool((res.metric("target_rate")[:, 0] > 0.8).all())


def test_scorecard_top_heads_steer_far_more_than_random_heads(organism, facts_eval, neutral):
    card = interp.steering.targets(
        organism, facts_eval, over="heads", neutral=neutral, progress=False, n_boot=50
    )
    assert list(card.coords["source"]) == ["dla", "denoise", "noise", "probe", "merged"]
    # The organism answers true/false in its last layer: three of its heads lead every source.
    assert set(card.top_units(3)) == {"L3H0", "L3H2", "L3H6"}
    ver = card.verify(k=5, progress=False, n_boot=200)
    s = ver.verify_summary
    # Measured: strength 8 sigma (KL budget 1 nat on neutral text), top 13.0 vs random 1.43
    # logits (mean |effect| 9.1x); L0H1 (first by both patching modes) moves it by 0.14.
    assert s["top_effect"] >= 3 * s["random_effect"] and s["top_effect"] > 2.0
    assert set(ver.verification.group) == {"top", "random", "other"}
    assert len(ver.verification) == organism.n_layers * organism.n_heads
    for source in ("dla", "denoise", "noise", "probe", "merged"):
        assert -1.0 <= ver.correlations[source] <= 1.0
    # Merged evidence predicts steerability better than chance (measured rho = 0.59; DLA 0.35,
    # denoise 0.67, noise 0.65, probe 0.29).
    assert ver.correlations["merged"] > 0.2


def test_layer_scorecard_and_atp_evidence(organism, facts_eval):
    card = interp.steering.targets(
        organism, facts_eval, over="layers", patching="atp", progress=False, n_boot=20
    )
    assert card.values.shape == (organism.n_layers, 5)
    assert card.sites == [str(Node("resid_post", l)) for l in range(organism.n_layers)]
    ver = card.verify(k=1, alphas=[2.0, 4.0], progress=False, n_boot=20)
    assert ver.verify_summary["kl_on"] == "the task's answer position"
    assert len(ver.verification) == organism.n_layers


def test_detectors_and_a_single_source_rank_as_evidence(organism, facts_eval):
    card = interp.steering.targets(
        organism,
        facts_eval[:32],
        over="heads",
        evidence=("dla",),
        detectors=("previous_token",),
        progress=False,
        n_boot=20,
    )
    assert list(card.coords["source"]) == ["dla", "previous_token", "merged"]
    det = interp.attribution.detect_heads(organism, "previous_token")
    assert torch.allclose(card.scores[:, 1], det.values.reshape(-1).float())
    best = int(det.values.reshape(-1).argmax())
    assert float(card.values[best, 1]) == 1.0  # rank 1 = the strongest detector score
    with pytest.raises(InterpError, match="over='heads'"):
        interp.steering.targets(organism, facts_eval[:32], over="layers", detectors=("induction",))
    with pytest.raises(InterpError, match="k=20"):
        card.verify(k=20)
    with pytest.raises(InterpError, match="same positions"):
        interp.steering.targets(organism, facts_eval[:32], positions=facts_eval[:32].answer_pos)


# ----------------------------------------------------------------------------- results


def test_results_save_and_load_exactly(organism, facts_train, facts_eval, neutral, tmp_path):
    d = interp.steering.direction(organism, facts_train, at="resid_pre", layer=3)
    res = interp.steering.evaluate(
        organism,
        facts_eval[:32],
        [d],
        alphas=[2.0, 4.0],
        neutral=neutral,
        n_random=2,
        progress=False,
        n_boot=20,
    )
    res.save(tmp_path / "r")
    back = interp.load_result(tmp_path / "r")
    assert type(back) is type(res)
    for name in ("values", "ci_low", "ci_high", "random", "prompt_effects"):
        assert torch.equal(
            getattr(back, name),
            getattr(res, name),
        ), name
    assert back.baseline == res.baseline and back.sites == res.sites
    card = interp.steering.targets(
        organism, facts_eval[:32], over="layers", progress=False, n_boot=20
    ).verify(k=1, alphas=[2.0], progress=False, n_boot=20)
    card.save(tmp_path / "c")
    cb = interp.load_result(tmp_path / "c")
    assert torch.equal(cb.values, card.values) and torch.equal(cb.vectors, card.vectors)
    assert cb.verification.equals(card.verification)
    assert cb.correlations == card.correlations or all(
        (math.isnan(a) and math.isnan(cb.correlations[k])) or a == cb.correlations[k]
        for k, a in card.correlations.items()
    )
    # A loaded scorecard has no model attached: verify says what to pass.
    with pytest.raises(InterpError, match="model="):
        cb.verify(k=1)
    again = cb.verify(
        k=1, alphas=[2.0], model=organism, task=facts_eval[:32], progress=False, n_boot=20
    )
    assert again.verification["effect"].tolist() == pytest.approx(
        card.verification["effect"].tolist(), abs=1e-5
    )


# ----------------------------------------------------------------------------- bad input


def _counting(model):
    calls = []
    return calls, ("hook_embed", lambda x, hook: calls.append(1))


def test_bad_input_fails_before_any_forward(organism, facts_eval, facts_train, llama_random):
    d = interp.steering.direction(organism, facts_train, at="resid_pre", layer=2)
    calls, counter = _counting(organism)
    with organism.hooks([counter]):
        wrong_width = SteeringDirection(torch.randn(10), Node("resid_pre", 1), sigma=1.0)
        with pytest.raises(InterpError, match="width 10"), steer(organism, wrong_width):
            pass
        other = SteeringDirection(
            torch.randn(llama_random.d_model),
            Node("resid_pre", 1),
            sigma=1.0,
            model=llama_random.name,
        )
        with pytest.raises(InterpError, match="computed on"):
            interp.steering.evaluate(organism, facts_eval, [other], kl=False)
        for bad in (float("nan"), float("inf")):
            with pytest.raises(InterpError, match="not finite"), steer(organism, d, alpha=bad):
                pass
            with pytest.raises(InterpError, match="not finite"):
                interp.steering.evaluate(organism, facts_eval, [d], alphas=[1.0, bad], kl=False)
        with pytest.raises(InterpError, match="layer=9"):
            interp.steering.direction(organism, facts_train, at="resid_post", layer=9)
        with pytest.raises(InterpError, match="head=8"):
            interp.steering.direction(organism, facts_train, at="z", layer=1, head=8)
        with (
            pytest.raises(InterpError, match="does not exist"),
            steer(organism, SteeringDirection(torch.randn(16), Node("z", 7, 1), sigma=1.0)),
        ):
            pass
        with pytest.raises(InterpError, match="beyond the prompt"):
            interp.steering.evaluate(organism, facts_eval, [d], positions=[40], kl=False)
        with pytest.raises(InterpError, match="neutral"):
            interp.steering.evaluate(organism, facts_eval, [d])
        with pytest.raises(InterpError, match="one prompt pair"):
            interp.steering.direction(
                organism, [("a b", "a c"), ("b a", "c a")], layer=1, method="act_add"
            )
        with pytest.raises(InterpError, match="paired"):
            interp.steering.direction(organism, facts_train, layer=1, method="pca")
        with (
            pytest.raises(InterpError, match="generate"),
            steer(organism, d, positions="generated"),
        ):
            pass
        plain = interp.tasks.induction(organism, n=4, seed=0)
        with pytest.raises(InterpError, match="neither binary labels nor corrupted"):
            interp.steering.direction(
                organism, interp.Task.from_prompts(organism, ["a b c"]), layer=1
            )
        assert plain is not None
    assert calls == []
    assert _no_hooks(organism)


def test_task_positions_last_reads_each_prompts_answer(organism, facts_eval):
    pos = task_positions("last", facts_eval)
    assert torch.equal(pos.spec, facts_eval.answer_pos)
    mask = pos.mask(len(facts_eval), facts_eval.seq_len, torch.device("cpu"))
    assert mask.sum() == len(facts_eval)
    assert bool(mask[torch.arange(len(facts_eval)), facts_eval.answer_pos].all())
