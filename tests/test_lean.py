"""Lean blocks (the patching engine's unhooked layers) against TransformerLens' own forward."""

from __future__ import annotations

import pytest
import torch

import interp
from interp.analyses.patching import activation_patch, lean
from interp.analyses.patching.lean import LeanBlocks, hooked_layers


def _cached_run(model, n_prompts=3, seed=0):
    task = interp.tasks.ioi(model, n=n_prompts, seed=seed, templates=[0])
    _, cache = model.tl.run_with_cache(task.clean_tokens)
    return task, cache


@pytest.mark.parametrize("which", ["organism", "gpt2_random"])
@pytest.mark.parametrize("last_only", [False, True])
def test_lean_blocks_reproduce_the_full_forward_from_a_cached_prefix(which, last_only, request):
    """From layer 1's resid_pre at positions s.., with the cached keys/values of positions < s
    shared by two stacked copies, the lean blocks give TransformerLens' resid_post of the last
    layer at those positions (the answer query only, with `last_only`)."""
    model = request.getfixturevalue(which)
    lb = LeanBlocks.build(model.tl)
    assert lb is not None
    _, cache = _cached_run(model)
    L, n = model.n_layers, 2
    for s in (0, 4):
        past = [
            (cache[f"blocks.{i}.attn.hook_k"][:, :s], cache[f"blocks.{i}.attn.hook_v"][:, :s])
            for i in range(1, L)
        ]
        x = cache["blocks.1.hook_resid_pre"][:, s:].repeat(n, 1, 1)
        with torch.inference_mode():
            out = lb.run(x, range(1, L), past, n, last_only=last_only)
        want = cache[f"blocks.{L - 1}.hook_resid_post"][:, s:].repeat(n, 1, 1)
        if last_only:
            want = want[:, -1:]
        assert out.shape == want.shape
        scale = float(want.abs().max())
        assert float((out - want).abs().max()) <= 1e-5 * max(scale, 1.0)


def test_models_outside_the_standard_block_keep_transformer_lens(llama_random):
    assert lean._unsupported(llama_random.tl) == "positional embeddings 'rotary'"
    assert LeanBlocks.build(llama_random.tl) is None


def test_large_models_keep_transformer_lens(organism, monkeypatch):
    assert LeanBlocks.build(organism.tl) is not None
    monkeypatch.setattr(lean, "MAX_QKV_COPY", 1 << 10)
    assert LeanBlocks.build(organism.tl) is None


def test_hooked_layers_sees_user_hooks(organism):
    assert hooked_layers(organism.tl) == set()
    with organism.hooks([("blocks.2.attn.hook_z", lambda a, hook: a)]):
        assert hooked_layers(organism.tl) == {2}
    assert hooked_layers(organism.tl) == set()


def _no_lean(monkeypatch):
    monkeypatch.setattr(LeanBlocks, "build", classmethod(lambda cls, tl: None))


def test_a_user_hook_on_a_later_layer_is_honoured(organism, monkeypatch):
    """Layers carrying a hook run in TransformerLens, so the hook acts on every patched run."""
    task = interp.tasks.ioi(organism, n=6, seed=1, templates=[0])

    def damp(act, hook):
        return 0.5 * act

    with organism.hooks([("blocks.3.hook_resid_pre", damp)]):
        got = activation_patch(organism, task, target="z", per_position=True, progress=False)
        _no_lean(monkeypatch)
        want = activation_patch(organism, task, target="z", per_position=True, progress=False)
    plain = activation_patch(organism, task, target="z", per_position=True, progress=False)
    assert torch.allclose(got.raw, want.raw, atol=1e-5)
    assert not torch.allclose(got.raw, plain.raw, atol=1e-2)  # the hook mattered


def test_a_lean_forward_that_disagrees_is_dropped_with_a_warning(organism, monkeypatch):
    task = interp.tasks.ioi(organism, n=6, seed=2, templates=[0])
    _no_lean(monkeypatch)
    want = activation_patch(organism, task, target="resid_pre", per_position=True, progress=False)
    monkeypatch.undo()
    block = LeanBlocks._block
    monkeypatch.setattr(LeanBlocks, "_block", lambda self, *a: block(self, *a) + 1.0)
    with pytest.warns(UserWarning, match="lean block forward differs"):
        got = activation_patch(
            organism, task, target="resid_pre", per_position=True, progress=False
        )
    assert torch.allclose(got.raw, want.raw, atol=1e-5)
