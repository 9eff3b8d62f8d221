"""Fused GELU and norms (interp.kernels): same numbers, hooks respected, restored on exit."""

from __future__ import annotations

import contextlib

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformer_lens.utilities.activation_functions import gelu_new

from interp.kernels import fused


def _model(normalization: str, act: str = "gelu_new") -> HookedTransformer:
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        d_vocab=50,
        n_ctx=16,
        act_fn=act,
        normalization_type=normalization,
        seed=0,
    )
    return HookedTransformer(cfg)


@pytest.mark.parametrize("normalization", ["LN", "LNPre", "RMS", "RMSPre"])
def test_fused_equals_transformer_lens_and_restores(normalization: str) -> None:
    tl = _model(normalization)
    if normalization in ("LN", "RMS"):  # non-trivial norm weights, so they must be applied
        with torch.no_grad():
            for name, p in tl.named_parameters():
                if "ln" in name:
                    p.add_(0.3 * torch.randn_like(p))
    tokens = torch.randint(0, 50, (3, 12))
    ref = tl(tokens)
    classes = {id(m): type(m).forward for m in tl.modules()}
    with fused(tl):
        # The fused code is in place (GELU swapped, norms overridden on the instance).
        assert tl.blocks[0].mlp.act_fn is not gelu_new
        assert all("forward" in b.ln1.__dict__ for b in tl.blocks)
        got = tl(tokens)
        with fused(tl):  # nested: the inner block changes and restores nothing of the outer's
            again = tl(tokens)
        assert torch.equal(again, got)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    # Everything is back: no instance-level forward left, GELU is TransformerLens' own again.
    assert all("forward" not in m.__dict__ for m in tl.modules())
    assert all(type(m).forward is classes[id(m)] for m in tl.modules())
    assert torch.equal(tl(tokens), ref)
    assert all(b.mlp.act_fn is gelu_new for b in tl.blocks)


def test_fused_gradients_match() -> None:
    tl = _model("LN")
    tokens = torch.randint(0, 50, (2, 10))
    grads = []
    for ctx in (False, True):
        tl.zero_grad()
        if ctx:
            with fused(tl):
                tl(tokens, return_type="loss").backward()
        else:
            tl(tokens, return_type="loss").backward()
        grads.append(tl.blocks[0].mlp.W_in.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_hooked_norm_keeps_its_own_code_and_hooks_fire() -> None:
    tl = _model("LN")
    tokens = torch.randint(0, 50, (2, 10))
    _, ref = tl.run_with_cache(tokens, names_filter=lambda n: n.endswith("ln1.hook_scale"))
    with fused(tl):
        _, got = tl.run_with_cache(tokens, names_filter=lambda n: n.endswith("ln1.hook_scale"))
    assert set(got.keys()) == set(ref.keys()) and len(got.keys()) == 2
    # The hooked norm ran TransformerLens' code: layer 0's input is the embedding, so its scale
    # is bit-identical; later layers see the fused GELU's rounding.
    assert torch.equal(got["blocks.0.ln1.hook_scale"], ref["blocks.0.ln1.hook_scale"])
    torch.testing.assert_close(got["blocks.1.ln1.hook_scale"], ref["blocks.1.ln1.hook_scale"])


def test_restored_when_the_block_raises() -> None:
    tl = _model("LN")
    with pytest.raises(RuntimeError, match="user code"), fused(tl):
        raise RuntimeError("user code")
    assert all("forward" not in m.__dict__ for m in tl.modules())
    assert tl.blocks[1].mlp.act_fn is gelu_new


def test_other_modules_pass_through_untouched() -> None:
    lin = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    with fused(lin):  # no TransformerLens config: nothing to fuse, nothing changed
        out = lin(x)
    assert torch.equal(out, lin(x)) and "forward" not in lin.__dict__


@pytest.mark.parametrize("kind", ["organism", "llama_random", "gpt2_random"])
def test_weights_laid_out_once_give_the_same_numbers_bit_for_bit(kind, request):
    """TransformerLens copies transposed weights on every call; `weights.laid_out` copies them
    once per block: same values, same layout, so the same logits exactly, and everything is
    restored on exit, also after an exception."""
    from transformer_lens.components import abstract_attention, grouped_query_attention

    from interp import weights

    model = request.getfixturevalue(kind)
    tokens = torch.randint(5, 300, (3, 8))
    originals = (abstract_attention.simple_attn_linear, grouped_query_attention.simple_attn_linear)
    with torch.inference_mode():
        plain = model.tl(tokens)
        with weights.laid_out(model.tl):
            inside = model.tl(tokens)
            with weights.laid_out(model.tl):  # nested: shares the outer copies
                again = model.tl(tokens)
            assert weights._CACHE  # the inner block did not drop the outer one's copies
        with pytest.raises(RuntimeError), weights.laid_out(model.tl):
            raise RuntimeError
    assert torch.equal(plain, inside) and torch.equal(plain, again)
    assert (
        abstract_attention.simple_attn_linear,
        grouped_query_attention.simple_attn_linear,
    ) == originals
    assert not weights._CACHE and not weights._OWNERS
    assert all("forward" not in m.__dict__ for m in model.tl.modules())


def test_laid_out_weights_pass_gradients_to_activations(llama_random):
    from interp import weights

    tokens = torch.randint(5, 300, (2, 6))
    grads = []
    store: dict[str, torch.Tensor] = {}

    def keep(x, hook):
        x.retain_grad()
        store["x"] = x
        return x

    for ctx in (contextlib.nullcontext(), weights.laid_out(llama_random.tl)):
        with ctx, llama_random.hooks([("blocks.0.hook_resid_mid", keep)]):
            llama_random.tl(tokens)[:, -1].logsumexp(-1).sum().backward()
        grads.append(store["x"].grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
