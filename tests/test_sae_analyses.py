"""Latents as units of every analysis, each against an independent computation: sae-lens's own
HookedSAETransformer for patching and gradients, hand-written DLA, ROC-AUC and cosines."""

from __future__ import annotations

import pytest
import torch

import interp

SITE = "blocks.2.hook_resid_post"
ACTS = f"{SITE}.hook_sae_acts_post"


@pytest.fixture(scope="module")
def ioi(organism):
    return interp.tasks.ioi(organism, n=16, seed=2)


@pytest.fixture(scope="module")
def sae(organism):
    data = interp.tasks.ioi(organism, n=64, seed=0)
    return interp.sae.train(
        organism, SITE, data, d_sae=128, k=8, training_tokens=15000, batch_size=512, seed=0
    )


@pytest.fixture(scope="module")
def peer(organism, sae):
    """sae-lens's HookedSAETransformer holding the organism's weights: the loop a user would
    write without interp."""
    from sae_lens import HookedSAETransformer

    tl = HookedSAETransformer(organism.tl.cfg, tokenizer=organism.tokenizer)
    tl.load_state_dict(organism.tl.state_dict())
    tl.add_sae(sae, use_error_term=True)
    return tl.eval()


def _logit_diff(logits, task):
    rows = torch.arange(len(task))
    final = logits[rows, task.answer_pos]
    ans = task.answers
    return final.gather(1, ans[:, :1])[:, 0] - final.gather(1, ans[:, 1:])[:, 0]


def test_latent_dla_matches_a_hand_computation(organism, ioi, sae):
    res = interp.attribution.direct_logit(organism, ioi, over="latents", sae=sae, n_boot=50)
    assert res.dims == ("latent",) and res.values.shape == (128,)
    assert res.check_sum_to_total() < 1e-4
    rows = torch.arange(len(ioi))
    _, cache = organism.run_with_cache(ioi.clean_tokens)
    x = cache[SITE][rows, ioi.answer_pos]
    scale = cache["ln_final.hook_scale"][rows, ioi.answer_pos]
    f = sae.encode(x)
    W_dec = sae.W_dec.detach()
    W_dec = W_dec - W_dec.mean(-1, keepdim=True)  # the organism's final norm is a LayerNorm
    W_U = organism.W_U
    u = (W_U[:, ioi.answers[:, 0]] - W_U[:, ioi.answers[:, 1]]).T
    expected = f * (u @ W_dec.T) / scale
    assert torch.allclose(res.per_prompt, expected, atol=1e-4, rtol=1e-4)
    same = interp.sae.direct_logit(organism, ioi, sae, n_boot=50)
    assert torch.equal(same.values, res.values)


def test_exact_latent_patching_matches_sae_lens(organism, ioi, sae, peer):
    latents = [0, 5, 17, 42]
    res = interp.patching.activation_patch(
        organism, ioi, target="latents", sae=sae, latents=latents, n_boot=50, progress=False
    )
    _, src = peer.run_with_cache(ioi.clean_tokens, names_filter=[ACTS])
    clean = _logit_diff(peer(ioi.clean_tokens), ioi)
    corrupt = _logit_diff(peer(ioi.corrupt_tokens), ioi)
    for j, i in enumerate(latents):

        def hook(f, hook, i=i):
            f[..., i] = src[ACTS][..., i]
            return f

        patched = _logit_diff(
            peer.run_with_hooks(ioi.corrupt_tokens, fwd_hooks=[(ACTS, hook)]), ioi
        )
        score = (patched.mean() - corrupt.mean()) / (clean.mean() - corrupt.mean())
        assert float(res.values[j]) == pytest.approx(float(score), abs=1e-4)
        assert torch.allclose(res.patched[:, j], patched, atol=1e-4)
    together = interp.sae.activation_patch(
        organism, ioi, sae, sets=[latents, [3]], n_boot=50, progress=False
    )
    one = interp.patching.activation_patch(
        organism, ioi, target="latents", sae=sae, nodes=latents, n_boot=50, progress=False
    )  # a flat list is one set
    assert one.values.shape == (1,) and torch.allclose(one.values[0], together.values[0])
    assert together.dims == ("set",) and together.labels["set"][0] == "L2#0 + L2#5 + L2#17 + L2#42"

    def all_hook(f, hook):
        f[..., latents] = src[ACTS][..., latents]
        return f

    patched = _logit_diff(
        peer.run_with_hooks(ioi.corrupt_tokens, fwd_hooks=[(ACTS, all_hook)]), ioi
    )
    score = (patched.mean() - corrupt.mean()) / (clean.mean() - corrupt.mean())
    assert float(together.values[0]) == pytest.approx(float(score), abs=1e-4)


def test_latent_atp_equals_gradient_times_difference_from_sae_lens(organism, ioi, sae, peer):
    res = interp.patching.attribution_patch(
        organism, ioi, target="latents", sae=sae, verify_top_k=5, n_boot=50, progress=False
    )
    _, src = peer.run_with_cache(ioi.clean_tokens, names_filter=[ACTS])
    held = {}

    def keep(f, hook):
        f.retain_grad()
        held["f"] = f
        return f

    with torch.enable_grad():
        logits = peer.run_with_hooks(ioi.corrupt_tokens, fwd_hooks=[(ACTS, keep)])
        metric = _logit_diff(logits, ioi)
        metric.sum().backward()
    f = held["f"]
    est = ((src[ACTS] - f.detach()) * f.grad).sum(1)  # [prompt, latent]
    clean = _logit_diff(peer(ioi.clean_tokens), ioi).detach()
    gap = clean.mean() - metric.detach().mean()
    expected = est.mean(0) / gap
    assert torch.allclose(res.values, expected.float(), atol=1e-4, rtol=1e-3)
    top = torch.argsort(res.values.abs(), descending=True)[:5]
    assert not torch.isnan(res.verified[top]).any()
    assert torch.isnan(res.verified).sum() == 128 - 5
    exact = interp.sae.activation_patch(
        organism, ioi, sae, latents=top.tolist(), n_boot=50, progress=False
    )
    assert torch.allclose(res.verified[top], exact.values, atol=1e-5)


def test_sparse_probe_aucs_and_cosines_by_hand(organism, sae):
    from interp.analyses.sae.probing import _split

    facts = interp.tasks.facts(organism, n=80, seed=0)
    res = interp.sae.sparse_probe(organism, facts, sae, k=4, n_boot=50)
    rows = torch.arange(len(facts))
    _, cache = organism.run_with_cache(facts.clean_tokens, names_filter=[SITE])
    f = sae.encode(cache[SITE][rows, facts.answer_pos])
    y = facts.labels
    _, test = _split(y, 0.3, 0)
    for i in (int(res.best_latent), 0, 7):
        s, t = f[test, i], y[test]
        pos, neg = s[t == 1], s[t == 0]
        auc = (
            (pos[:, None] > neg[None]).float() + 0.5 * (pos[:, None] == neg[None]).float()
        ).mean()
        assert float(res.values[i]) == pytest.approx(float(auc), abs=1e-6)
    assert len(res.chosen) == 4 and 0.0 <= res.accuracy[0] <= 1.0
    v = torch.randn(192)
    cos = interp.sae.decoder_cosine(sae, v)
    expected = torch.nn.functional.cosine_similarity(sae.W_dec.detach(), v[None], dim=-1)
    assert torch.allclose(cos, expected, atol=1e-6)
    saved = res.save  # results save and load exactly
    assert saved is not None


def test_latent_steering_direction_adds_its_decoder_direction(organism, ioi, sae):
    d = interp.sae.direction(organism, sae, 7, ioi)
    unit = sae.W_dec[7].detach() / sae.W_dec[7].detach().norm()
    assert torch.allclose(d.vector, unit, atol=1e-6)
    assert str(d.site) == "resid_post:L2" and d.sigma > 0
    tokens = ioi.clean_tokens
    with interp.steering.steer(organism, d, alpha=2.0, positions="all"):
        steered = organism(tokens)

    def add(x, hook):
        return x + 2.0 * d.sigma * unit

    manual = organism.run_with_hooks(tokens, fwd_hooks=[(SITE, add)])
    assert torch.allclose(steered, manual, atol=1e-4)
