"""The Ray executor on a real two-node cluster on localhost (`ray start --head` and a second node
joined with `ray start --address`, each as its own processes, one CPU each).

Disk caching, exact patching and trajectory sampling through ``executor=Ray(...)`` give the local
loop's results bit for bit; killing a worker node's raylet mid-run costs a retry on the other
node, not the run; a sweep that loses a unit fails with a clear error and resumes to the identical
result. Without Ray installed these tests are skipped with the reason shown.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from executor_jobs import kill_other_raylet, killing, shard_bytes

import interp
from interp.errors import InterpError
from interp.executors import Ray, WorkerLost

ray = pytest.importorskip(
    "ray", reason="Ray is not installed: pip install 'interp[ray]' to run the cluster tests"
)
pytestmark = pytest.mark.ray

TESTS = Path(__file__).resolve().parent
RAY = Path(sys.executable).parent / "ray"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_start(*args: str, temp: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [str(RAY), "start", *args, "--num-cpus", "1", "--temp-dir", temp, "--disable-usage-stats"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def _alive_nodes() -> int:
    return sum(1 for n in ray.nodes() if n["Alive"])


@pytest.fixture(scope="module")
def cluster():
    """A head node and one worker node, stopped (every process under our temp dir) at the end."""
    # One authentication mode for every process: a token left in ~/.ray by an earlier local
    # ray.init() would otherwise turn it on for some of them and not for others.
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_AUTH_MODE", "disabled")
    temp = tempfile.mkdtemp(prefix="iray", dir="/tmp")  # short: Ray's socket paths have a limit
    port = _free_port()
    address = f"127.0.0.1:{port}"
    try:
        _ray_start("--head", "--port", str(port), "--include-dashboard=false", temp=temp)
        _ray_start("--address", address, temp=temp)
        ray.init(address=address, log_to_driver=False, logging_level="error")
        deadline = time.time() + 60
        while _alive_nodes() < 2 and time.time() < deadline:
            time.sleep(0.5)
        assert _alive_nodes() == 2
        yield {"address": address, "temp": temp}
    finally:
        ray.shutdown()
        _stop(temp)
        mp.undo()


def _stop(temp: str) -> None:
    """Kill the processes of our cluster only (their command lines name its temp dir)."""
    for _ in range(3):
        pids = subprocess.run(["pgrep", "-f", temp], capture_output=True, text=True).stdout.split()
        pids = [int(p) for p in pids if int(p) != os.getpid()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        time.sleep(0.5)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def on_ray(cluster):
    with Ray(address=cluster["address"]) as ex:
        yield ex


@pytest.fixture(scope="module")
def ioi(organism):
    return interp.tasks.ioi(organism, n=24, seed=0)


def test_disk_cache_on_two_nodes_writes_the_local_bytes(organism, ioi, on_ray, tmp_path):
    names = ["resid_post", "z"]
    interp.cache(organism, ioi, names=names, batch_size=4, store=tmp_path / "a", progress=False)
    got = interp.cache(organism, ioi, names=names, batch_size=4, store=tmp_path / "b",
                       progress=False, executor=on_ray)  # fmt: skip
    assert len(set(on_ray.nodes.values())) == 2  # one actor on each node
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")
    assert len(shard_bytes(tmp_path / "b")) == 6 and got.n_examples == 24


def test_exact_patching_on_two_nodes_equals_local(organism, ioi, on_ray, tmp_path):
    kw = dict(target="z", per_position=True, n_boot=20, progress=False, memory_budget="2MiB")
    want = interp.patching.activation_patch(organism, ioi, **kw)
    got = interp.patching.activation_patch(organism, ioi, executor=on_ray, store=tmp_path, **kw)
    assert torch.equal(want.patched, got.patched) and torch.equal(want.values, got.values)
    assert len(list(tmp_path.glob("unit-*.safetensors"))) > 2


def test_trajectory_sampling_on_two_nodes_equals_local(organism, on_ray):
    task = interp.tasks.arithmetic(organism, n=4, seed=0)
    kw = dict(n=2, max_new_tokens=6, chunk=2, seed=3, progress=False)
    want = interp.trajectories.sample(organism, task, **kw)
    got = interp.trajectories.sample(organism, task, executor=on_ray, **kw)
    assert [t.tokens for t in want] == [t.tokens for t in got]
    assert all(torch.equal(a.chunks, b.chunks) for a, b in zip(want, got, strict=True))


def test_a_full_cluster_is_refused_before_any_write(organism, ioi, cluster, on_ray, tmp_path):
    with Ray(address=cluster["address"]) as second, pytest.raises(InterpError, match="free"):
        interp.cache(organism, ioi, store=tmp_path / "s", executor=second, progress=False)
    assert not (tmp_path / "s").exists()
    on_ray.close()  # frees both CPUs for the tests below


def test_killing_a_worker_nodes_raylet_mid_run_retries_its_unit(organism, ioi, cluster, tmp_path):
    want = interp.cache(organism, ioi, names=["resid_post", "z"], batch_size=2,
                        store=tmp_path / "local", progress=False)  # fmt: skip
    with killing(Ray, kill_other_raylet)(address=cluster["address"]) as dying:
        got = interp.cache(organism, ioi, names=["resid_post", "z"], batch_size=2,
                           store=tmp_path / "ray", progress=False, executor=dying)  # fmt: skip
        assert dying.kills == 1 and dying.retried >= 1
        assert len(dying.nodes) == 1  # the survivor finished the run
    assert shard_bytes(tmp_path / "local") == shard_bytes(tmp_path / "ray")
    assert torch.equal(want["blocks.3.attn.hook_z"].load(), got["blocks.3.attn.hook_z"].load())


def test_a_lost_unit_fails_clearly_and_resumes_identically(organism, ioi, cluster, tmp_path):
    # A fresh worker node replaces the one killed above.
    _ray_start("--address", cluster["address"], temp=cluster["temp"])
    deadline = time.time() + 60
    while _alive_nodes() < 2 and time.time() < deadline:
        time.sleep(0.5)
    kw = dict(target="resid_pre", per_position=True, n_boot=20, progress=False,
              memory_budget="1MiB")  # fmt: skip
    want = interp.patching.activation_patch(organism, ioi, **kw)
    store = tmp_path / "sweep"
    dying = killing(Ray, kill_other_raylet)(address=cluster["address"], max_attempts=1)
    with dying, pytest.raises(WorkerLost, match="run the same call again"):
        interp.patching.activation_patch(organism, ioi, executor=dying, store=store, **kw)
    assert dying.kills == 1
    with Ray(address=cluster["address"]) as survivor:
        got = interp.patching.activation_patch(organism, ioi, executor=survivor, store=store, **kw)
    assert torch.equal(want.patched, got.patched)
