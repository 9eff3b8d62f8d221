"""SAE latents through sae-lens: training, loading, attaching, and the checks on bad input.

Exactness against independent computations: logits with the error term against plain logits,
the spliced loss against a hand-written hook, latents against sae.encode of the cached input.
"""

from __future__ import annotations

import json

import pytest
import torch

import interp
from interp.errors import InterpError


@pytest.fixture(scope="module")
def ioi(organism):
    return interp.tasks.ioi(organism, n=64, seed=0)


@pytest.fixture(scope="module")
def sae(organism, ioi, tmp_path_factory):
    out = tmp_path_factory.mktemp("sae") / "L2"
    return interp.sae.train(
        organism, "resid_post", ioi, layer=2, d_sae=256, k=8, training_tokens=20000,
        batch_size=512, out=out, seed=0,
    )  # fmt: skip


def test_error_term_leaves_logits_unchanged(organism, ioi, sae):
    tokens = ioi.clean_tokens
    plain = organism(tokens)
    with organism.with_saes([sae]) as m:
        attached = m(tokens)
        assert "blocks.2.hook_resid_post.hook_sae_acts_post" in m.hook_names
        # Reading the latents (cache hooks on the SAE) must not change the outputs either.
        logits, cache = m.run_with_cache(tokens, names_filter=lambda n: "sae_acts_post" in n)
    assert torch.allclose(attached, plain, atol=1e-5, rtol=0)
    assert float((logits - plain).abs().max()) <= 1e-5
    # The latents are sae-lens's own encoding of the activation at the site.
    _, c = organism.run_with_cache(tokens, names_filter=["blocks.2.hook_resid_post"])
    expected = sae.encode(c["blocks.2.hook_resid_post"])
    assert torch.allclose(cache["blocks.2.hook_resid_post.hook_sae_acts_post"], expected)
    assert not any("sae" in h for h in organism.hook_names)  # detached on exit


def test_gradients_upstream_of_an_attached_sae_are_the_models_own(organism, ioi, sae):
    """The site passes x through (its output is x), so gradients reaching earlier layers must
    not change when an SAE is attached with its error term."""
    tokens = ioi.clean_tokens[:8]

    def grad_of_embed() -> torch.Tensor:
        held = {}

        def keep(x, hook):
            x.retain_grad()
            held["x"] = x
            return x

        with torch.enable_grad():
            logits = organism.run_with_hooks(tokens, fwd_hooks=[("hook_embed", keep)])
            logits[:, -1].logsumexp(-1).sum().backward()
        organism.tl.zero_grad(set_to_none=True)
        return held["x"].grad

    plain = grad_of_embed()
    with organism.with_saes([sae]):
        attached = grad_of_embed()
    assert torch.allclose(attached, plain, rtol=1e-4, atol=1e-6)


def test_spliced_loss_matches_a_direct_computation(organism, sae):
    from interp.analyses.sae.data import rows_from
    from interp.analyses.sae.quality import measure

    task = interp.tasks.ioi(organism, n=24, seed=5)
    rows = rows_from(organism, task)
    got = measure(organism, sae, rows)
    site = "blocks.2.hook_resid_post"

    def splice(x, hook):
        return sae.decode(sae.encode(x))

    tokens, mask = rows.tokens, rows.mask
    with torch.no_grad():
        plain = organism(tokens)
        spliced = organism.run_with_hooks(tokens, fwd_hooks=[(site, splice)])

    def loss(logits):
        logp = logits[:, :-1].log_softmax(-1)
        nll = -logp.gather(-1, tokens[:, 1:, None])[..., 0]
        return float(nll[mask[:, 1:]].double().mean())

    assert got["loss_plain"] == pytest.approx(loss(plain), abs=1e-5)
    assert got["loss_spliced"] == pytest.approx(loss(spliced), abs=1e-5)
    assert got["loss_increase"] == pytest.approx(loss(spliced) - loss(plain), abs=1e-5)
    _, c = organism.run_with_cache(tokens, names_filter=[site])
    x = c[site][mask]
    f = sae.encode(x)
    fvu = float(((x - sae.decode(f)) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    assert got["fvu"] == pytest.approx(fvu, rel=1e-4)
    assert got["l0"] == pytest.approx(float((f > 0).float().sum(-1).mean()), rel=1e-6)


def test_training_is_reproducible_and_saved_sae_loads_identically(organism, ioi, sae, tmp_path):
    again = interp.sae.train(
        organism, "resid_post", ioi, layer=2, d_sae=256, k=8, training_tokens=20000,
        batch_size=512, seed=0,
    )  # fmt: skip
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        assert torch.allclose(getattr(again, name), getattr(sae, name), atol=1e-6, rtol=0)
    other = interp.sae.train(
        organism, "resid_post", ioi, layer=2, d_sae=256, k=8, training_tokens=20000,
        batch_size=512, seed=1,
    )  # fmt: skip
    assert not torch.allclose(other.W_dec, sae.W_dec)
    path = interp.sae.save(sae, tmp_path / "saved")
    loaded = interp.sae.load(path, model=organism)
    x = torch.randn(50, 192) * 30
    assert torch.equal(loaded.encode(x), sae.encode(x))
    record = json.loads((path / "interp_sae.json").read_text())
    assert record["hook"] == "blocks.2.hook_resid_post"
    assert record["model_fingerprint"] == organism.fingerprint()
    assert (path / "cfg.json").is_file() and (path / "sae_weights.safetensors").is_file()
    assert "fraction of variance unexplained" in (path / "card.md").read_text()


def test_hooks_and_saes_come_off_when_user_code_raises(organism, sae):
    with pytest.raises(RuntimeError, match="boom"), organism.with_saes([sae]):
        raise RuntimeError("boom")
    assert organism.saes == {}
    handle = organism.with_saes([sae])  # a statement: stays until detached
    assert list(organism.saes) == ["blocks.2.hook_resid_post"]
    handle.detach()
    assert organism.saes == {}
    assert organism.hooked_layers() == set()
    # The SAE's own hook names come back after detaching (setup() renamed them under the site).
    assert sae.hook_sae_acts_post.name == "hook_sae_acts_post"
    # Hooks already on a site (here: on an attached SAE's site) are not silently dropped.
    with organism.with_saes([sae]):
        organism.tl.hook_dict["blocks.2.hook_resid_post"].add_hook(lambda x, hook: x)
        try:
            with pytest.raises(InterpError, match="has hooks attached"):
                organism.with_saes([sae])
        finally:
            organism.tl.hook_dict["blocks.2.hook_resid_post"].remove_hooks("fwd")
    assert organism.saes == {}


def test_bad_input_is_refused_with_a_clear_error(organism, ioi, sae, tmp_path):
    from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig

    def fake(hook: str, d_in: int, model_name: str = "organism"):
        cfg = StandardSAEConfig(d_in=d_in, d_sae=16)
        cfg.metadata.hook_name = hook
        cfg.metadata.model_name = model_name
        return StandardSAE(cfg)

    with pytest.raises(InterpError, match=r"d_in is 100.*width 192"):
        organism.with_saes([fake("blocks.2.hook_resid_post", 100)])
    with pytest.raises(InterpError, match="does not have"):
        organism.with_saes([fake("blocks.9.hook_resid_post", 192)])
    with pytest.raises(InterpError, match="trained on 'gpt2-small'"):
        organism.with_saes([fake("blocks.2.hook_resid_post", 192, "gpt2-small")])
    assert organism.saes == {}
    # An interp-trained SAE carries its model's fingerprint.
    other = interp.sae.load(interp.sae.save(sae, tmp_path / "s"))
    other.interp_record["model_signature"] = "0" * 64
    with pytest.raises(InterpError, match="not on this organism"):
        interp.sae.check_fits(organism, other)
    with pytest.raises(InterpError, match="neither an SAE directory nor a release"):
        interp.sae.load("no-such-release-or-dir")
    with pytest.raises(InterpError, match="needs sae_id"):
        interp.sae.load("gpt2-small-res-jb")
    with pytest.raises(InterpError, match=r"exactly one of k= .* or l1="):
        interp.sae.train(organism, "blocks.2.hook_resid_post", ioi, k=None)
    with pytest.raises(InterpError, match="k=999 must be between 1 and d_sae=256"):
        interp.sae.train(organism, "blocks.2.hook_resid_post", ioi, d_sae=256, k=999)
    with pytest.raises(InterpError, match="mixing buffer holds"):
        interp.sae.train(
            organism, "blocks.2.hook_resid_post", ioi, batch_size=4096, n_batches_in_buffer=2
        )
    with pytest.raises(InterpError, match="has no hook"):
        interp.sae.train(organism, "blocks.7.hook_resid_post", ioi)
    with pytest.raises(InterpError, match="one vector per position"):
        interp.sae.train("organism", "q", ioi, layer=1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    with pytest.raises(InterpError, match="exists and is not empty"):
        interp.sae.train(organism, "blocks.2.hook_resid_post", ioi, out=tmp_path / "full")
    assert (tmp_path / "full" / "x").read_text() == "keep"


def test_registry_release_offline_gives_a_clear_error(monkeypatch):
    # huggingface_hub reads HF_HUB_OFFLINE at import: set its constant, or it retries for 20 s.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(InterpError, match=r"Could not download SAE .*huggingface-cli download"):
        interp.sae.load("gpt2-small-res-jb", "blocks.0.hook_resid_pre")


def test_latent_cache_sparse_dense_and_disk_agree(organism, sae, tmp_path):
    task = interp.tasks.ioi(organism, n=20, seed=3)
    sparse = interp.sae.cache_latents(organism, task, sae, batch_size=8, progress=False)
    dense = interp.sae.cache_latents(organism, task, sae, layout="dense", progress=False)
    assert sparse.sparse and not dense.sparse
    assert sparse.nbytes < dense.nbytes
    assert torch.equal(sparse.dense(), dense.dense())
    assert torch.equal(sparse.latent(5), dense.dense()[..., 5])
    assert torch.equal(sparse[3], dense[3])
    with organism.with_saes([sae]):
        # interp.cache reads latent hooks too, densely.
        acts = interp.cache(organism, task, names=["blocks.2.hook_resid_post.hook_sae_acts_post"])
    assert torch.equal(acts["blocks.2.hook_resid_post.hook_sae_acts_post"], dense.dense())
    # A disk store made under one SAE is not resumed under another.
    other = interp.sae.train(
        organism, "blocks.2.hook_resid_post", task, d_sae=64, k=4, training_tokens=1024,
        batch_size=256, held_out=0.0,
    )  # fmt: skip
    name = "blocks.2.hook_resid_post.hook_sae_acts_post"
    with organism.with_saes([sae]):
        interp.cache(organism, task, names=[name], store=tmp_path / "acts", progress=False)
    with organism.with_saes([other]), pytest.raises(InterpError):
        interp.cache(organism, task, names=[name], store=tmp_path / "acts", progress=False)
    saved = sparse.save(tmp_path / "lat.safetensors")
    back = interp.sae.load_latents(saved)
    assert back.sparse and torch.equal(back.dense(), sparse.dense())
    assert torch.equal(back.tokens, sparse.tokens) and torch.equal(back.mask, sparse.mask)
    # Density: each content token has exactly k=8 active latents (TopK).
    per_token = (dense.dense() > 0).sum(-1)[dense.mask]
    assert int(per_token.max()) <= 8


def test_training_on_a_real_llama_family_model(smollm2):
    texts = [
        "The cat sat on the mat and looked out of the window.",
        "Paris is the capital of France, and Rome is the capital of Italy.",
        "She opened the door, walked in and put the kettle on.",
        "Two plus two is four, and three plus three is six.",
    ] * 4
    sae = interp.sae.train(
        smollm2, "blocks.10.hook_resid_post", texts, d_sae=1152, k=16, training_tokens=2048,
        batch_size=256, held_out=0.0,
    )  # fmt: skip
    tokens = smollm2.to_tokens(texts[:2])
    plain = smollm2(tokens)
    with smollm2.with_saes([sae]):
        assert torch.allclose(smollm2(tokens), plain, atol=1e-5, rtol=0)
        task = interp.Task.from_prompts(
            smollm2, clean=["The capital of France is"], answers=[(" Paris", " London")]
        )
        res = interp.attribution.direct_logit(smollm2, task, over="latents", sae=sae, n_boot=50)
    assert res.check_sum_to_total() < 1e-4
    assert sae.interp_record["quality"]["l0"] == pytest.approx(16.0)


def test_cli_trains_and_prints_the_card(tmp_path):
    from typer.testing import CliRunner

    from interp.cli import app

    runner = CliRunner()
    out = tmp_path / "sae"
    args = ["sae", "train", "--out", str(out), "--data", "ioi", "--rows", "32", "--d-sae", "64"]
    got = runner.invoke(
        app, [*args, "--k", "4", "--training-tokens", "2048", "--batch-size", "256"]
    )
    assert got.exit_code == 0, got.output
    assert "L0 (mean active latents per token): 4.00" in got.output
    record = json.loads((out / "interp_sae.json").read_text())
    assert record["command"].startswith("interp sae train --out ")
    assert "--data ioi" in record["command"] and "--k 4" in record["command"]
    info = runner.invoke(app, ["sae", "info", str(out)])
    assert info.exit_code == 0 and "hook: blocks.2.hook_resid_post" in info.output
    # Bad input: refused before the model loads, nothing written.
    again = runner.invoke(app, [*args, "--k", "4"])
    assert again.exit_code != 0 and "exists and is not empty" in str(again.exception)
    both = runner.invoke(app, ["sae", "train", "--out", str(tmp_path / "b"), "--k", "0"])
    assert both.exit_code != 0 and "--k N (TopK)" in str(both.exception)
    assert not (tmp_path / "b").exists()
