"""Executors: the process pool gives the local loop's results bit for bit, survives a killed
worker, and a sweep that fails resumes to the identical result with any executor.

The Ray backend has the same tests on a real two-node cluster in test_ray.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from executor_jobs import Square, kill_busy_process, killing, shard_bytes

import interp
from interp.errors import InterpError
from interp.executors import Local, Processes, WorkerLost, executor_for

TESTS = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _workers_import_tests(monkeypatch):
    # Worker processes import tests/executor_jobs.py for the test-only jobs.
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
    monkeypatch.setenv("PYTHONPATH", path)


# Workers run the driver's torch thread count: results are then bit for bit the local loop's
# (some kernels round differently with another thread count; see the test below).
THREADS = torch.get_num_threads()


@pytest.fixture(scope="module")
def pool():
    """Two worker processes kept for the module (each loads its models once)."""
    with Processes(workers=2, threads=THREADS) as ex:
        yield ex


@pytest.fixture(scope="module")
def ioi(organism):
    return interp.tasks.ioi(organism, n=24, seed=0)


def test_generic_job_runs_every_unit_once_per_worker_prepare(organism, pool):
    got: dict[int, tuple[int, int, int]] = {}
    pool.map(organism, Square(), list(range(20)), got.__setitem__)
    assert sorted(got) == list(range(20))
    assert all(v[0] == i * i and v[2] == organism.n_layers for i, v in got.items())
    pids = {v[1] for v in got.values()}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2  # ran in the workers


def test_a_units_own_error_stops_the_sweep_with_that_error(organism, pool):
    with pytest.raises(ValueError, match="unit 7 refuses") as err:
        pool.map(organism, Square(fail_at=7), list(range(12)), lambda i, r: None)
    assert any("raised in a worker process, unit 7" in n for n in err.value.__notes__)
    # The pool starts afresh and works on.
    got: dict[int, object] = {}
    pool.map(organism, Square(), [3], got.__setitem__)
    assert got[0][0] == 9


def test_cache_to_disk_writes_the_local_bytes(organism, ioi, pool, tmp_path):
    names = ["resid_post", "z", "pattern"]
    local = interp.cache(organism, ioi, names=names, batch_size=5, store=tmp_path / "a",
                         progress=False)  # fmt: skip
    remote = interp.cache(organism, ioi, names=names, batch_size=5, store=tmp_path / "b",
                          progress=False, executor=pool)  # fmt: skip
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert len(shard_bytes(tmp_path / "a")) == 5
    for name in local.names:
        assert torch.equal(local[name].load(), remote[name].load())


def test_cache_in_memory_equals_local(organism, ioi, pool):
    local = interp.cache(organism, ioi, names=["resid_post"], batch_size=7, progress=False)
    remote = interp.cache(organism, ioi, names=["resid_post"], batch_size=7, progress=False,
                          executor=pool)  # fmt: skip
    assert set(local.keys()) == set(remote.keys())
    for k in local:
        assert torch.equal(local[k], remote[k])


def test_cache_of_an_encoder_loaded_by_path(minilm, pool, tmp_path):
    # A TransformerBridge encoder: workers load it from its directory (and need the padding mask).
    task = interp.Task.from_prompts(minilm, ["the cat sat", "a dog ran far away", "hello"])
    local = interp.cache(minilm, task, names=["resid_post"], batch_size=2, progress=False)
    remote = interp.cache(minilm, task, names=["resid_post"], batch_size=2, progress=False,
                          executor=pool)  # fmt: skip
    for k in local:
        assert torch.equal(local[k], remote[k])


def test_another_thread_count_rounds_differently_for_some_kernels(minilm):
    # Why the pool above runs the driver's thread count: BERT's attention (and the Llama-shaped
    # model's matmuls) round differently with another one, by float rounding only.
    task = interp.Task.from_prompts(minilm, ["the cat sat", "a dog ran far away", "hello"])
    local = interp.cache(minilm, task, names=["resid_post"], batch_size=2, progress=False)
    with Processes(workers=1, threads=1) as one_thread:
        other = interp.cache(minilm, task, names=["resid_post"], batch_size=2, progress=False,
                             executor=one_thread)  # fmt: skip
    for k in local:
        torch.testing.assert_close(local[k], other[k], rtol=0, atol=1e-4)


@pytest.mark.parametrize("model_name", ["organism", "llama_random"])
def test_exact_patching_equals_local(model_name, request, pool):
    # The organism is loaded again by name in the workers; the Llama-shaped object is sent whole.
    model = request.getfixturevalue(model_name)
    task = (
        interp.tasks.ioi(model, n=12, seed=1)
        if model_name == "organism"
        else interp.tasks.induction(model, n=6, seq_len=10, seed=0)
    )
    kw = dict(target="z", per_position=True, n_boot=20, progress=False, memory_budget="2MiB")
    local = interp.patching.activation_patch(model, task, **kw)
    remote = interp.patching.activation_patch(model, task, executor=pool, **kw)
    assert torch.equal(local.patched, remote.patched)
    assert torch.equal(local.values, remote.values) and torch.equal(local.ci_low, remote.ci_low)
    # The sweep was really spread: more units than workers.
    assert local.patched.shape[0] == len(task)


def test_patch_store_resumes_a_failed_sweep_to_the_identical_result(organism, ioi, tmp_path):
    kw = dict(target="resid_pre", per_position=True, n_boot=20, progress=False,
              memory_budget="1MiB")  # fmt: skip
    want = interp.patching.activation_patch(organism, ioi, **kw)
    store = tmp_path / "sweep"
    dying = killing(Processes, kill_busy_process)(workers=2, threads=THREADS, max_attempts=1)
    with dying, pytest.raises(WorkerLost, match="run the same call again"):
        interp.patching.activation_patch(organism, ioi, executor=dying, store=store, **kw)
    units = sorted(store.glob("unit-*.safetensors"))
    assert len(units) > 0  # some finished before the kill, and were kept
    resumed = interp.patching.activation_patch(organism, ioi, store=store, **kw)
    assert torch.equal(resumed.patched, want.patched)
    # A finished store is read back whole, and a changed sweep is refused.
    again = interp.patching.activation_patch(organism, ioi, store=store, executor=Local(), **kw)
    assert torch.equal(again.patched, want.patched)
    with pytest.raises(InterpError, match="other settings"):
        interp.patching.activation_patch(organism, ioi, store=store, **{**kw, "mode": "noise"})


def test_a_killed_worker_process_costs_a_retry_not_the_run(organism, ioi, tmp_path):
    want = interp.cache(organism, ioi, names=["resid_post", "z"], batch_size=2,
                        store=tmp_path / "local", progress=False)  # fmt: skip
    dying = killing(Processes, kill_busy_process)(workers=2, threads=THREADS)
    with dying:
        got = interp.cache(organism, ioi, names=["resid_post", "z"], batch_size=2,
                           store=tmp_path / "pool", progress=False, executor=dying)  # fmt: skip
    assert dying.kills == 1 and dying.retried == 1
    assert shard_bytes(tmp_path / "local") == shard_bytes(tmp_path / "pool")
    assert torch.equal(
        want["blocks.1.hook_resid_post"].load(), got["blocks.1.hook_resid_post"].load()
    )
    assert not [p for p in (tmp_path / "pool").iterdir() if p.name.endswith(".tmp")]


def test_a_cache_killed_mid_run_resumes_with_another_executor(organism, ioi, tmp_path, pool):
    want = interp.cache(organism, ioi, names=["z"], batch_size=3, store=tmp_path / "a",
                        progress=False)  # fmt: skip
    dying = killing(Processes, kill_busy_process)(workers=2, threads=THREADS, max_attempts=1)
    with dying, pytest.raises(WorkerLost):
        interp.cache(organism, ioi, names=["z"], batch_size=3, store=tmp_path / "b",
                     progress=False, executor=dying)  # fmt: skip
    interp.cache(organism, ioi, names=["z"], batch_size=3, store=tmp_path / "b",
                 progress=False, executor=pool)  # fmt: skip
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert torch.equal(want["blocks.0.attn.hook_z"].load(),
                       interp.load_cache(tmp_path / "b")["blocks.0.attn.hook_z"].load())  # fmt: skip


def test_trajectory_sampling_equals_local(organism, pool, tmp_path):
    task = interp.tasks.arithmetic(organism, n=4, seed=0)
    kw = dict(n=2, max_new_tokens=6, chunk=2, seed=3, progress=False)
    local = interp.trajectories.sample(organism, task, **kw)
    remote = interp.trajectories.sample(organism, task, executor=pool, store=tmp_path, **kw)
    assert [t.tokens for t in local] == [t.tokens for t in remote]
    for a, b in zip(local, remote, strict=True):
        assert torch.equal(a.chunks, b.chunks) and torch.equal(a.logprobs, b.logprobs)
    assert [t.tokens for t in interp.trajectories.load_traces(tmp_path)] == [
        t.tokens for t in local
    ]


# ----------------------------------------------------------------------- refusals


def test_hooks_on_the_driver_model_are_refused_before_any_work(organism, ioi, tmp_path):
    d = interp.steering.direction(organism, ioi, at="resid_post", layer=1)
    with interp.steering.steer(organism, d, alpha=2.0), pytest.raises(InterpError, match="hooks"):
        interp.cache(organism, ioi, store=tmp_path / "s", executor="processes", progress=False)
    assert not (tmp_path / "s").exists()


def test_a_lambda_metric_cannot_travel(organism, ioi):
    with pytest.raises(InterpError, match="module-level function"):
        interp.patching.activation_patch(
            organism, ioi, metric=lambda logits, task: logits[:, -1, 0], executor="processes",
            progress=False, n_boot=10,
        )  # fmt: skip


def test_executor_names_and_options_are_checked():
    with pytest.raises(InterpError, match="Did you mean 'ray'"):
        executor_for("rya")  # type: ignore[arg-type]
    with pytest.raises(InterpError, match="address= is for executor='ray'"):
        executor_for("processes", address="auto")
    with pytest.raises(InterpError, match="at least 1"):
        Processes(workers=0)
    with pytest.raises(InterpError, match="at least 1 attempt"):
        Processes(max_attempts=0)
    ex, own = executor_for(None)
    assert isinstance(ex, Local) and own


def test_cli_patch_through_a_process_pool_equals_the_local_run(tmp_path):
    from typer.testing import CliRunner

    from interp.cli import app

    args = ["run", "patch", "--n", "8", "--target", "resid_pre"]
    local = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert local.exit_code == 0, local.output
    pooled = CliRunner().invoke(
        app,
        [*args, "--out", str(tmp_path / "b"), "--executor", "processes", "--workers", "2",
         "--store", str(tmp_path / "units")],
    )  # fmt: skip
    assert pooled.exit_code == 0, pooled.output
    a, b = interp.load_result(tmp_path / "a"), interp.load_result(tmp_path / "b")
    assert torch.equal(a.patched, b.patched)
    assert list((tmp_path / "units").glob("unit-*.safetensors"))
    bad = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "c"), "--address", "auto"])
    assert bad.exit_code != 0 and "--address is for --executor ray" in str(bad.exception)


# ------------------------------------------------------------------- split models


def test_a_split_needs_the_gpus_and_is_checked_before_loading(organism):
    want = max(2, (torch.cuda.device_count() if torch.cuda.is_available() else 0) + 1)
    with pytest.raises(InterpError, match=f"needs {want} CUDA devices; this machine has"):
        interp.load_model("organism", n_devices=want)
    with pytest.raises(InterpError, match="applies when interp loads the model"):
        interp.load_model(organism.tl, n_devices=2)
    with pytest.raises(InterpError, match="not 'cpu'"):
        interp.load_model("organism", device="cpu", n_devices=2)


def test_exact_patching_refuses_a_split_model(organism, ioi, monkeypatch):
    monkeypatch.setattr(organism, "n_devices", 2)  # as load_model(n_devices=2) records it
    with pytest.raises(InterpError, match="split over 2 GPUs"):
        interp.patching.activation_patch(organism, ioi, progress=False, n_boot=10)


def test_workers_follow_a_model_edited_in_place(pool, tmp_path):
    # Workers reload a model by its spec; once the driver's copy is edited they get the copy.
    model = interp.load_model("organism", device="cpu")
    task = interp.tasks.ioi(model, n=8, seed=3)
    before = interp.cache(model, task, names=["resid_post"], progress=False, executor=pool)
    with torch.no_grad():
        model.W_O(1).mul_(0.5)
    local = interp.cache(model, task, names=["resid_post"], progress=False)
    after = interp.cache(model, task, names=["resid_post"], progress=False, executor=pool)
    name = "blocks.3.hook_resid_post"
    assert not torch.equal(before[name], local[name])
    assert torch.equal(local[name], after[name])


def test_a_function_of_the_running_script_is_refused_for_processes(organism, ioi, monkeypatch):
    import sys

    def margin(logits, task):  # as if defined in the script being run
        return logits[:, -1, 0]

    margin.__module__, margin.__qualname__ = "__main__", "interp_test_margin"
    monkeypatch.setattr(sys.modules["__main__"], "interp_test_margin", margin, raising=False)
    with pytest.raises(InterpError, match="__main__"):
        interp.patching.activation_patch(
            organism, ioi, metric=margin, executor="processes", progress=False, n_boot=10
        )


def test_a_store_of_another_sweep_is_refused_before_any_forward(organism, ioi, tmp_path):
    import dataclasses

    kw = dict(target="resid_pre", n_boot=10, progress=False)
    interp.patching.activation_patch(organism, ioi, store=tmp_path / "s", **kw)
    swapped = dataclasses.replace(ioi, answers=ioi.answers.flip(1))
    calls = []
    with (
        organism.hooks([("hook_embed", lambda a, hook: calls.append(1))]),
        pytest.raises(InterpError, match="answers"),
    ):
        interp.patching.activation_patch(organism, swapped, store=tmp_path / "s", **kw)
    assert calls == []  # refused before the first forward pass
    (tmp_path / "f").write_text("x")
    with pytest.raises(InterpError, match="is a file"):
        interp.patching.activation_patch(organism, ioi, store=tmp_path / "f", **kw)
