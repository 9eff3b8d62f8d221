from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import interp
from interp.activations import DiskCache, resolve_names
from interp.errors import InterpError
from interp.tasks.induction import induction


@pytest.fixture(scope="module")
def task(gpt2_random):
    return induction(gpt2_random, n=10, seq_len=6, seed=0)


def test_short_forms_expand_to_every_layer(gpt2_random):
    names = resolve_names(["resid_post", "blocks.1.attn.hook_z"], gpt2_random.hook_names)
    assert names == [
        "blocks.0.hook_resid_post",
        "blocks.1.attn.hook_z",
        "blocks.1.hook_resid_post",
        "blocks.2.hook_resid_post",
    ]
    assert resolve_names("hook_z", gpt2_random.hook_names) == [
        f"blocks.{i}.attn.hook_z" for i in range(3)
    ]


def test_unknown_names_rejected_before_any_forward(gpt2_random, task, monkeypatch):
    def no_forward(*a, **k):
        raise AssertionError("a forward pass ran before the names were checked")

    monkeypatch.setattr(gpt2_random.tl, "forward", no_forward)
    with pytest.raises(InterpError) as err:
        interp.cache(gpt2_random, task, names=["resid_post", "blocks.9.hook_resid_post", "zz"])
    text = str(err.value)
    assert "['blocks.9.hook_resid_post', 'zz']" in text
    assert "resid_post" in text and "blocks.{l}.attn.hook_z" in text


def test_memory_cache_equals_transformer_lens(gpt2_random, task):
    acts = interp.cache(
        gpt2_random, task, names=["resid_post", "pattern"], batch_size=3, progress=False
    )
    _, ref = gpt2_random.tl.run_with_cache(task.clean_tokens)
    for name in acts:
        assert torch.allclose(acts[name], ref[name], atol=1e-5), name
    last = interp.cache(
        gpt2_random, task, names="resid_post", positions="last", batch_size=4, progress=False
    )
    rows = torch.arange(len(task))
    assert torch.allclose(
        last["blocks.2.hook_resid_post"],
        ref["blocks.2.hook_resid_post"][rows, task.answer_pos],
        atol=1e-5,
    )
    some = interp.cache(gpt2_random, task, names="pattern", positions=[1, -1], progress=False)
    assert torch.allclose(
        some["blocks.0.attn.hook_pattern"],
        ref["blocks.0.attn.hook_pattern"][:, :, [1, -1]],
        atol=1e-6,
    )


def test_disk_cache_reads_lazily_and_matches_memory(gpt2_random, task, tmp_path):
    mem = interp.cache(gpt2_random, task, names=["resid_post", "z"], batch_size=4, progress=False)
    disk = interp.cache(
        gpt2_random,
        task,
        names=["resid_post", "z"],
        batch_size=4,
        store=tmp_path / "c",
        progress=False,
    )
    assert isinstance(disk, DiskCache) and set(disk) == set(mem.keys())
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [
        "manifest.json",
        "shard-00000000.safetensors",
        "shard-00000004.safetensors",
        "shard-00000008.safetensors",
    ]
    name = "blocks.1.attn.hook_z"
    stored = disk[name]
    assert stored.shape == tuple(mem[name].shape) and len(stored) == 10
    assert torch.equal(stored.load(), mem[name])
    assert torch.equal(stored[3], mem[name][3])
    assert torch.equal(stored[2:7], mem[name][2:7])
    assert torch.equal(stored[[9, 0, 5, 5]], mem[name][[9, 0, 5, 5]])
    assert torch.equal(stored[-1], mem[name][-1])
    assert torch.equal(disk.tokens, task.clean_tokens)
    half = interp.cache(
        gpt2_random, task, names=["z"], store=tmp_path / "h", dtype=torch.float16, progress=False
    )
    assert half[name].dtype == torch.float16 and torch.equal(half[name].load(), mem[name].half())
    with pytest.raises(IndexError):
        stored[10]


def test_reading_one_example_touches_one_shard(gpt2_random, task, tmp_path, monkeypatch):
    disk = interp.cache(
        gpt2_random, task, names=["resid_post"], batch_size=2, store=tmp_path / "c", progress=False
    )
    import interp.activations.disk as disk_mod

    opened = []
    real = disk_mod.safe_open
    monkeypatch.setattr(
        disk_mod, "safe_open", lambda f, **k: opened.append(os.path.basename(f)) or real(f, **k)
    )
    disk["blocks.0.hook_resid_post"][7]
    assert opened == ["shard-00000006.safetensors"]


def test_store_guards(gpt2_random, task, tmp_path):
    interp.cache(gpt2_random, task, names=["resid_post"], store=tmp_path / "c", progress=False)
    with pytest.raises(InterpError, match="different activation cache"):
        interp.cache(gpt2_random, task, names=["z"], store=tmp_path / "c", progress=False)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(InterpError, match="not an interp activation cache"):
        interp.cache(gpt2_random, task, names=["z"], store=tmp_path / "junk", progress=False)
    assert os.listdir(tmp_path / "junk") == ["notes.txt"]
    with pytest.raises(InterpError, match="is a file"):
        interp.cache(gpt2_random, task, store=tmp_path / "junk" / "notes.txt", progress=False)
    with pytest.raises(InterpError, match="batch_size"):
        interp.cache(gpt2_random, task, batch_size=0)
    with pytest.raises(InterpError, match="outside"):
        interp.cache(gpt2_random, task, positions=[99])


def test_progress_bar_shows_batches(gpt2_random, task, capsys):
    interp.cache(gpt2_random, task, names="resid_post", batch_size=5)
    assert "2/2" in capsys.readouterr().err


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    sys.path.insert(0, {tests!r})
    from conftest import gpt2_tokenizer
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    import interp
    from interp.tasks.induction import induction
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=3, d_model=64, n_heads=4, d_head=16, d_mlp=256,
        d_vocab=50257, n_ctx=64, act_fn="gelu_new", normalization_type="LN", seed=0,
        model_name="gpt2-random")
    model = interp.load_model(HookedTransformer(cfg, tokenizer=gpt2_tokenizer()), device="cpu")
    task = induction(model, n=12, seq_len=6, seed=0)
    slow = {slow}
    if slow:
        # Slow every forward down so the parent can kill us mid-run.
        model.tl.blocks[0].hook_resid_pre.add_hook(lambda a, hook: time.sleep(0.5) or a, is_permanent=True)
    interp.cache(model, task, names=["resid_post", "z"], batch_size=2, store={store!r}, progress=False)
    print("finished")
    """
)


def _run_cache_script(store, slow):
    tests = os.path.dirname(__file__)
    code = KILL_SCRIPT.format(tests=tests, slow=slow, store=str(store))
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_killed_run_resumes_to_identical_result(tmp_path):
    store = tmp_path / "killed"
    proc = _run_cache_script(store, slow=True)
    log = store / "shards.log"
    deadline = time.time() + 120
    while time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not json.loads((store / "manifest.json").read_text())["complete"]
    assert 2 <= len(log.read_text().splitlines()) < 6
    with pytest.raises(InterpError, match="unfinished"):
        DiskCache(store)
    # Resume (fast this time) and compare with an uninterrupted run, byte for byte.
    assert (
        _run_cache_script(store, slow=False).communicate()[0].decode().strip().endswith("finished")
    )
    ref_store = tmp_path / "reference"
    assert (
        _run_cache_script(ref_store, slow=False)
        .communicate()[0]
        .decode()
        .strip()
        .endswith("finished")
    )
    resumed, ref = DiskCache(store), DiskCache(ref_store)
    assert resumed.manifest["shards"] == ref.manifest["shards"]
    for name in ref:
        assert torch.equal(resumed[name].load(), ref[name].load()), name
    assert not list(store.glob(".*.tmp")) and not log.exists()
