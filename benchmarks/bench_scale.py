"""Benchmark: sweeps on 2 workers (process pool, Ray) against the local loop.

What it measures (one run, one machine), on the organism:

* **Disk caching**: ``interp.cache(model, ioi, names=["resid_post", "z"], batch_size=B,
  store=DIR)``: one unit per batch; the workers write their shards into the store.
* **Exact patching**: ``interp.patching.activation_patch(model, ioi, target="z",
  per_position=True)``: one unit per stacked forward of the plan.

Each runs with ``executor="local"`` (this process, torch's default threads, and again with one
thread: the single-core baseline a worker's share is compared with), with
``Processes(workers=2, threads=1)`` and with ``Ray(workers=2, num_cpus=1)`` on a local Ray
(``ray.init(num_cpus=2)``). Executors are started and their models loaded before the timed
runs ("warm": what a long sweep sees); their start-up is timed separately and reported, as is
the cold time (start-up + one run). Ratios are local time / executor time (above 1: faster).

Per-unit overhead: the same cache with one prompt per unit on ONE worker, against the local
loop: (executor time - local time) / units. Bytes moved per unit: the pickled unit description
and the pickled result the driver receives (activations stay in the store), and the job sent
once per worker.

Every timed run is repeated (``--repeats``, interleaved) and medians are compared; results
must equal the local run's (checked, recorded). JSON: ``benchmarks/results/bench_scale.json``.

    python benchmarks/bench_scale.py            # n=1024 (cache) and 64 (patching), 3 repeats
    python benchmarks/bench_scale.py --quick    # small smoke run
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import machine_info, stopwatch, write_json_atomic

import interp
from interp.activations.api import CacheJob
from interp.executors import Executor, Local, Processes, Ray

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NAMES = ["resid_post", "z"]


def timed(fn: Any) -> tuple[float, Any]:
    with stopwatch() as s:
        out = fn()
    return s.wall_s, out


def shard_bytes(store: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(store.glob("shard-*.safetensors"))}


def run_cache(model: Any, task: Any, ex: Executor, batch: int, names: list[str]) -> Path:
    store = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    shutil.rmtree(store)
    interp.cache(model, task, names=names, batch_size=batch, store=store, progress=False,
                 executor=ex)  # fmt: skip
    return store


def run_patch(model: Any, task: Any, ex: Executor, budget: str) -> Any:
    return interp.patching.activation_patch(
        model, task, target="z", per_position=True, n_boot=10, progress=False,
        memory_budget=budget, executor=ex,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1024, help="IOI prompts for caching")
    ap.add_argument("--n-patch", type=int, default=64, help="IOI prompts for patching")
    ap.add_argument("--batch", type=int, default=32, help="prompts per cache unit")
    ap.add_argument("--budget", default="64MiB", help="patching memory budget (unit size)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.n, args.n_patch, args.repeats = 64, 12, 1

    import ray

    model = interp.load_model("organism", device="cpu")
    ioi = interp.tasks.ioi(model, n=args.n, seed=0)
    ioi_patch = interp.tasks.ioi(model, n=args.n_patch, seed=1)
    tiny = interp.tasks.ioi(model, n=64, seed=2)

    startup: dict[str, float] = {}
    t, _ = timed(lambda: ray.init(num_cpus=2, log_to_driver=False, logging_level="error"))
    startup["ray_init_s"] = t
    procs, rays = Processes(workers=2, threads=1), Ray(workers=2, num_cpus=1)
    # Start each executor's workers (model loaded) on a first small sweep, timed: start-up.
    for name, ex in [("processes", procs), ("ray", rays)]:
        t, _ = timed(lambda ex=ex: run_cache(model, tiny, ex, 64, ["resid_post"]))
        startup[f"{name}_first_sweep_s"] = t
    executors: dict[str, Executor] = {
        "local": Local(),
        "local_1_thread": Local(),
        "processes": procs,
        "ray": rays,
    }
    threads = torch.get_num_threads()

    cache_s: dict[str, list[float]] = {k: [] for k in executors}
    patch_s: dict[str, list[float]] = {k: [] for k in executors}
    equal = {"cache": True, "patching": True}
    ref_bytes: dict[str, bytes] | None = None
    ref_patch: torch.Tensor | None = None
    n_cache_units = len(range(0, args.n, args.batch))
    n_patch_units = 0
    for _ in range(args.repeats):
        for name, ex in executors.items():
            # The single-core baseline: what one worker's thread does alone.
            torch.set_num_threads(1 if name == "local_1_thread" else threads)
            t, store = timed(lambda ex=ex: run_cache(model, ioi, ex, args.batch, NAMES))
            cache_s[name].append(t)
            got = shard_bytes(store)
            ref_bytes = ref_bytes or got
            equal["cache"] &= got == ref_bytes
            shutil.rmtree(store)
            t, res = timed(lambda ex=ex: run_patch(model, ioi_patch, ex, args.budget))
            patch_s[name].append(t)
            ref_patch = res.patched if ref_patch is None else ref_patch
            equal["patching"] &= bool(torch.equal(ref_patch, res.patched))
    torch.set_num_threads(threads)
    # Units of the patching sweep (as the plan makes them).
    from interp.analyses.patching.nodes import sweep
    from interp.analyses.patching.readout import parse_budget
    from interp.analyses.patching.units import PatchSpec

    swept, _, _ = sweep(model, "z", True, ioi_patch.seq_len)
    spec = PatchSpec(ioi_patch, "task", "denoise", "logit_diff",
                     tuple(sorted({n.hook for n in swept})), parse_budget(args.budget))  # fmt: skip
    _, patcher = spec.build(model)
    units, kept = patcher.plan([[n] for n in swept])
    n_patch_units = len(units)
    unit_desc = pickle.dumps((units[0], [kept[i] for i in units[0].rows]))
    unit_result = pickle.dumps(torch.zeros(len(units[0].rows), len(ioi_patch)))

    # Per-unit overhead on one worker: tiny units (one prompt each). The 2-worker executors
    # give their cores back first.
    procs.close()
    rays.close()
    one_proc, one_ray = Processes(workers=1, threads=1), Ray(workers=1, num_cpus=1)
    overhead: dict[str, list[float]] = {"local": [], "processes": [], "ray": []}
    one = {"local": Local(), "processes": one_proc, "ray": one_ray}
    for ex in (one_proc, one_ray):
        run_cache(model, tiny, ex, 64, ["resid_post"])  # warm
    for _ in range(args.repeats):
        for name, ex in one.items():
            t, store = timed(lambda ex=ex: run_cache(model, tiny, ex, 1, ["resid_post"]))
            overhead[name].append(t)
            shutil.rmtree(store)
    med = {k: statistics.median(v) for k, v in overhead.items()}
    per_unit_ms = {k: 1000 * (med[k] - med["local"]) / len(tiny) for k in ("processes", "ray")}

    job = CacheJob(ioi.clean_tokens, ioi.answer_pos, model.hook_names_for("resid_post"),
                   None, None, args.batch, Path("/store"), "f" * 64)  # fmt: skip
    from interp.activations.manifest import Shard

    shard = Shard("shard-00000000.safetensors", 0, 16, 10**6, "0" * 64)
    for ex in (one_proc, one_ray):
        ex.close()
    ray.shutdown()

    def summary(times: dict[str, list[float]], units: int) -> dict[str, Any]:
        m = {k: statistics.median(v) for k, v in times.items()}
        return {
            "units": units,
            "median_s": m,
            "all_s": times,
            "speedup_vs_local": {k: m["local"] / m[k] for k in ("processes", "ray")},
            "speedup_vs_local_1_thread": {
                k: m["local_1_thread"] / m[k] for k in ("processes", "ray")
            },
            "units_per_s_per_worker": {
                "local": units / m["local"],
                "local_1_thread": units / m["local_1_thread"],
                "processes": units / m["processes"] / 2,
                "ray": units / m["ray"] / 2,
            },
            "cold_speedup_vs_local": {
                k: m["local"] / (m[k] + startup[f"{k}_first_sweep_s"]) for k in ("processes", "ray")
            },
        }

    out = {
        "benchmark": "bench_scale",
        "machine": machine_info(),
        "argv": sys.argv[1:],
        "settings": vars(args),
        "workers": 2,
        "threads_per_worker": 1,
        "local_threads": torch.get_num_threads(),
        "startup_s": startup,
        "cache": summary(cache_s, n_cache_units),
        "patching": summary(patch_s, n_patch_units),
        "equal_to_local": equal,
        "per_unit_overhead_ms": per_unit_ms,
        "per_unit_overhead_runs_s": overhead,
        "bytes_per_unit": {
            "cache_unit_description": len(pickle.dumps(0)),
            "cache_result_shard_record": len(pickle.dumps(shard)),
            "cache_job_once_per_worker": len(pickle.dumps(job)),
            "patch_unit_description": len(unit_desc),
            "patch_result": len(unit_result),
        },
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    name = "bench_scale_quick.json" if args.quick else "bench_scale.json"
    write_json_atomic(RESULTS_DIR / name, out)
    print(f"cache    speedup: {out['cache']['speedup_vs_local']}")
    print(f"patching speedup: {out['patching']['speedup_vs_local']}")
    print(f"vs one thread: {out['cache']['speedup_vs_local_1_thread']}, "
          f"{out['patching']['speedup_vs_local_1_thread']}")  # fmt: skip
    print(f"start-up: {startup}; per-unit overhead ms: {per_unit_ms}; equal: {equal}")


if __name__ == "__main__":
    main()
