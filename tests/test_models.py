from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import interp
from interp.errors import InterpError


def test_object_handle_exposes_config_and_hooks(gpt2_random):
    m = gpt2_random
    assert (m.n_layers, m.n_heads, m.d_head, m.d_model) == (3, 4, 16, 64)
    assert m.n_key_value_heads == 4 and m.normalization_type in ("LN", "LNPre")
    assert m.backend == "HookedTransformer" and m.is_causal and m.has_lm_head
    for name in ("blocks.0.hook_resid_pre", "blocks.2.attn.hook_z", "blocks.1.hook_mlp_out"):
        assert name in m.hook_names
    info = m.info()
    assert info.n_params == sum(p.numel() for p in m.tl.parameters())
    assert m.W_U.shape == (64, 50257)
    # Passing the handle again returns it unchanged.
    assert interp.load_model(m) is m


def test_local_hf_directory_matches_transformers(tiny_hf_dir):
    from transformers import AutoModelForCausalLM

    m = interp.load_model(tiny_hf_dir, device="cpu")
    assert m.backend == "HookedTransformer" and m.n_layers == 2 and m.n_ctx == 48
    hf = AutoModelForCausalLM.from_pretrained(tiny_hf_dir)
    tokens = m.to_tokens("The quick brown fox jumps")
    with torch.no_grad():
        ours = m(tokens).log_softmax(-1)
        ref = hf(tokens).logits.log_softmax(-1)
    # TransformerLens folds and centres weights; log-probs are invariant to that.
    assert torch.allclose(ours, ref, atol=1e-4)


def test_minilm_encoder_loads_through_bridge(minilm):
    assert minilm.backend == "TransformerBridge"
    assert (minilm.n_layers, minilm.n_heads, minilm.d_model) == (6, 12, 384)
    assert not minilm.is_causal and not minilm.has_lm_head
    tokens = minilm.to_tokens("The cat sat on the mat")
    _, cache = minilm.run_with_cache(tokens)
    resid = cache["blocks.5.hook_resid_post"]
    assert resid.shape == (1, tokens.shape[1], 384)
    # A real pretrained encoder: the pattern of layer 0 is a proper distribution over keys.
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert torch.allclose(pattern.sum(-1), torch.ones_like(pattern.sum(-1)), atol=1e-5)
    assert resid.norm(dim=-1).std() > 0


def test_missing_organism_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_ORGANISM_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(InterpError, match="train-organism"):
        interp.load_model("organism")


def test_hub_name_offline_names_model_and_local_dir(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InterpError) as err:
        interp.load_model("EleutherAI/pythia-14m", device="cpu")
    text = str(err.value)
    assert "EleutherAI/pythia-14m" in text and "local" in text and "DIR" in text


def test_hub_name_without_network_fails_clearly():
    """The real network boundary: no HF_HUB_OFFLINE, the download itself fails."""
    code = (
        "import interp\n"
        "try:\n    interp.load_model('gpt2', device='cpu')\n"
        "except interp.InterpError as e:\n    print('ERR', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_HUB_ETAG_TIMEOUT"] = "2"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert "ERR Could not download 'gpt2'" in out.stdout, out.stdout + out.stderr[-2000:]


def test_directory_without_config_is_rejected(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(InterpError, match=r"config\.json"):
        interp.load_model(tmp_path)


@pytest.mark.parametrize("bad", [None, 3, ""])
def test_bad_spec_type(bad):
    with pytest.raises(InterpError, match="Cannot load a model"):
        interp.load_model(bad)


def test_hooks_are_removed_when_user_code_raises(gpt2_random):
    m = gpt2_random

    def hook(act, hook):
        return act * 0

    with pytest.raises(RuntimeError, match="boom"), m.hooks([("blocks.0.hook_resid_post", hook)]):
        raise RuntimeError("boom")
    assert all(not hp.fwd_hooks for hp in m.tl.hook_dict.values())

    def bad_hook(act, hook):
        raise ValueError("bad hook")

    with pytest.raises(ValueError, match="bad hook"):
        m.run_with_hooks(m.to_tokens("hi there"), fwd_hooks=[("blocks.1.hook_resid_pre", bad_hook)])
    assert all(not hp.fwd_hooks for hp in m.tl.hook_dict.values())


def test_single_token_helper(gpt2_random):
    assert (
        gpt2_random.to_single_token(" Mary")
        == gpt2_random.tokenizer.encode(" Mary", add_special_tokens=False)[0]
    )
    with pytest.raises(InterpError, match="single tokens"):
        gpt2_random.to_single_token(" Mississippiology")
