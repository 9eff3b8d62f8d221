"""Benchmark: streaming activations to disk with `interp.cache` versus plain forward passes.

What it measures (one run, one machine, CPU or whatever device `interp.load_model` picks):

* Time. Every layer's ``resid_post`` for a dataset of random token ids is streamed to disk with
  ``interp.cache(model, tokens, names=["resid_post"], store=DIR, batch_size=B)`` and compared
  with plain forward passes over the same batches (``model.tl(batch)`` under
  ``torch.inference_mode()``). The model is GPT-2-small shaped with random weights. After one
  warm-up, each variant runs ``--repeats`` times, interleaved so drift hits both, and the medians
  are compared. Target: cache / plain <= 1.25. A second baseline, ``model.tl(batch,
  return_type=None)``, does exactly the compute the cache does (no unembedding) and is reported
  alongside for reference, as are CPU times and the CPU other processes used meanwhile (the
  summary warns when that contention makes the wall times unreliable).
* Memory. The streaming run is repeated in a fresh subprocess for N and 10 * N examples; the
  child's peak resident set size (``ru_maxrss``) is compared. Target: peak(10N) / peak(N) - 1
  <= 0.20. The child also reports its RSS after model load and the peak of the streaming phase
  alone (``VmHWM`` after resetting it through ``/proc/self/clear_refs``, where available); since
  model construction can set ``ru_maxrss`` on its own, the streaming-phase growth must meet the
  target too.

Results go to ``benchmarks/results/bench_cache.json`` (``bench_cache_quick.json`` for
``--quick``/``--small`` runs, so smoke runs never overwrite the published numbers).

Run from the repository root:

    python benchmarks/bench_cache.py            # GPT-2-small shape, 64 vs 640 examples
    python benchmarks/bench_cache.py --quick    # small model and data, a CI smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from _common import Sample, machine_info, stopwatch, write_json_atomic
from torch import Tensor

import interp
from interp.models import Model

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TIME_TARGET = 1.25
MEMORY_TARGET = 0.20
MEMORY_FACTOR = 10
NOISY_SHARE = 0.05  # warn when other processes took more of the CPUs than this
HOOKS = ["resid_post"]


@dataclass(frozen=True)
class Params:
    """Everything that defines one benchmark run."""

    small: bool
    n_examples: int
    seq_len: int
    batch_size: int
    repeats: int
    seed: int
    store_root: str | None


# ---------------------------------------------------------------- setup


def model_shape(small: bool) -> dict[str, Any]:
    """GPT-2 small's shape, or a 4-layer, 256-wide version of it for smoke runs."""
    if small:
        return {"n_layers": 4, "d_model": 256, "n_heads": 4, "d_head": 64, "d_mlp": 1024}
    return {"n_layers": 12, "d_model": 768, "n_heads": 12, "d_head": 64, "d_mlp": 3072}


def build_model(small: bool, seed: int) -> Model:
    """A randomly initialised GPT-2-shaped HookedTransformer wrapped in an interp Model."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(
        **model_shape(small),
        d_vocab=50257,
        n_ctx=1024,
        act_fn="gelu_new",
        normalization_type="LN",
        seed=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # HookedTransformer in TL >= 3
        return interp.load_model(HookedTransformer(cfg))


def make_tokens(n_examples: int, seq_len: int, d_vocab: int, seed: int) -> Tensor:
    """Random token ids, ``[n_examples, seq_len]``, reproducible from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, d_vocab, (n_examples, seq_len), generator=gen)


def split_batches(tokens: Tensor, batch_size: int) -> list[Tensor]:
    """The same batches `interp.cache` forms: consecutive rows, the last one possibly short."""
    return [tokens[i : i + batch_size] for i in range(0, len(tokens), batch_size)]


def new_store(store_root: str | None) -> Path:
    """A fresh, empty directory for one cache run."""
    return Path(tempfile.mkdtemp(prefix="bench_cache_", dir=store_root))


# ---------------------------------------------------------------- measuring one run


# ---------------------------------------------------------------- the measured work


def run_plain(model: Model, batches: list[Tensor], return_type: str | None = "logits") -> Sample:
    """Plain forward passes over `batches`; ``return_type=None`` skips the unembedding."""
    with stopwatch() as sample, torch.inference_mode():
        for batch in batches:
            model.tl(batch.to(model.device), return_type=return_type)
        if model.device.type == "cuda":
            torch.cuda.synchronize()  # the cache run waits for its copies to the CPU
    return sample


def cache_to(model: Model, tokens: Tensor, batch_size: int, store: Path) -> None:
    """Stream every layer's resid_post for `tokens` into `store`."""
    interp.cache(model, tokens, names=HOOKS, store=store, batch_size=batch_size, progress=False)


def run_cache(model: Model, tokens: Tensor, batch_size: int, store_root: str | None) -> Sample:
    """One `interp.cache` run into a fresh store (deleted afterwards, untimed)."""
    store = new_store(store_root)
    try:
        with stopwatch() as sample:
            cache_to(model, tokens, batch_size, store)
        return sample
    finally:
        shutil.rmtree(store, ignore_errors=True)


# ---------------------------------------------------------------- timing


def time_interleaved(model: Model, tokens: Tensor, params: Params) -> dict[str, list[Sample]]:
    """Warm up once, then run each variant `repeats` times, interleaved."""
    batches = split_batches(tokens, params.batch_size)
    variants: dict[str, Callable[[], Sample]] = {
        "plain": lambda: run_plain(model, batches),
        "cache": lambda: run_cache(model, tokens, params.batch_size, params.store_root),
        "plain_no_unembed": lambda: run_plain(model, batches, return_type=None),
    }
    for warm_up in variants.values():
        warm_up()
    samples: dict[str, list[Sample]] = {name: [] for name in variants}
    for _ in range(params.repeats):
        for name, run in variants.items():
            samples[name].append(run())
    return samples


def contention(samples: dict[str, list[Sample]]) -> float | None:
    """Largest share of the machine's CPU capacity other processes took during any run."""
    n_cpu = os.cpu_count() or 1
    shares = [
        s.foreign_cpu_s / (s.wall_s * n_cpu)
        for runs in samples.values()
        for s in runs
        if s.foreign_cpu_s is not None
    ]
    return max(shares) if shares else None


def timing_summary(samples: dict[str, list[Sample]], n_examples: int) -> dict[str, Any]:
    """Medians, ratios and throughput from the raw repeats (wall time, plus CPU time)."""
    wall = {name: [s.wall_s for s in runs] for name, runs in samples.items()}
    cpu = {name: [s.cpu_s for s in runs] for name, runs in samples.items()}
    med = {name: statistics.median(ts) for name, ts in wall.items()}
    med_cpu = {name: statistics.median(ts) for name, ts in cpu.items()}
    return {
        "repeats_s": wall,
        "median_s": med,
        "ratio_cache_over_plain": med["cache"] / med["plain"],
        "ratio_cache_over_plain_no_unembed": med["cache"] / med["plain_no_unembed"],
        "examples_per_s": {name: n_examples / t for name, t in med.items()},
        "cpu_repeats_s": cpu,
        "cpu_median_s": med_cpu,
        "cpu_ratio_cache_over_plain": med_cpu["cache"] / med_cpu["plain"],
        "foreign_cpu_repeats_s": {
            name: [s.foreign_cpu_s for s in runs] for name, runs in samples.items()
        },
        "max_foreign_cpu_share": contention(samples),
    }


# ---------------------------------------------------------------- memory (child process)


def proc_status_kb(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child_memory(params: Params, n_examples: int) -> dict[str, Any]:
    """Runs in a fresh process: load the model, stream `n_examples` to disk, report RSS."""
    model = build_model(params.small, params.seed)
    tokens = make_tokens(n_examples, params.seq_len, model.d_vocab, params.seed)
    rss_after_load = proc_status_kb("VmRSS")
    maxrss_after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm_reset = reset_peak_rss()
    store = new_store(params.store_root)
    try:
        t0 = time.perf_counter()
        cache_to(model, tokens, params.batch_size, store)
        elapsed = time.perf_counter() - t0
        disk_bytes = sum(f.stat().st_size for f in store.iterdir())
    finally:
        shutil.rmtree(store, ignore_errors=True)
    return {
        "n_examples": n_examples,
        "rss_after_load_kb": rss_after_load,
        "maxrss_after_load_kb": maxrss_after_load,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "streaming_peak_rss_kb": proc_status_kb("VmHWM") if hwm_reset else None,
        "rss_at_end_kb": proc_status_kb("VmRSS"),
        "cache_s": elapsed,
        "store_bytes": disk_bytes,
    }


def param_flags(params: Params) -> list[str]:
    """Command-line flags that recreate `params` in a child process."""
    flags = [
        f"--seq-len={params.seq_len}",
        f"--batch-size={params.batch_size}",
        f"--seed={params.seed}",
    ]
    if params.small:
        flags.append("--small")
    if params.store_root:
        flags.append(f"--store-root={params.store_root}")
    return flags


def measure_memory(params: Params, n_examples: int) -> dict[str, Any]:
    """Run `child_memory` in a fresh interpreter and return what it printed."""
    cmd = [sys.executable, __file__, f"--child-mem={n_examples}", *param_flags(params)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_summary(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    """Growth of the peak from N to 10N examples: whole process, and streaming phase alone.

    ``ru_maxrss`` covers the whole process, model construction included, whose transient peak
    can hide what streaming does; the streaming-phase peak (VmHWM reset after loading) cannot.
    """
    summary: dict[str, Any] = {
        "n": small,
        "ten_n": large,
        "growth": large["peak_rss_kb"] / small["peak_rss_kb"] - 1,
    }
    if small["streaming_peak_rss_kb"] and large["streaming_peak_rss_kb"]:
        summary["streaming_growth"] = (
            large["streaming_peak_rss_kb"] / small["streaming_peak_rss_kb"] - 1
        )
        summary["streaming_peak_above_load_kb"] = {
            "n": small["streaming_peak_rss_kb"] - small["rss_after_load_kb"],
            "ten_n": large["streaming_peak_rss_kb"] - large["rss_after_load_kb"],
        }
    return summary


def meets_memory_target(mem: dict[str, Any]) -> bool:
    """Both the whole-process and (where measured) the streaming-phase growth are in target."""
    growths = [mem["growth"], mem.get("streaming_growth", mem["growth"])]
    return max(growths) <= MEMORY_TARGET


# ---------------------------------------------------------------- reporting


def mib(kb: float) -> str:
    return f"{kb / 1024:.0f} MiB"


def timing_lines(result: dict[str, Any]) -> list[str]:
    t, p = result["timing"], result["params"]
    med = t["median_s"]
    lines = [
        f"bench_cache: {p['n_examples']} examples x {p['seq_len']} tokens, batch {p['batch_size']}"
        f", {result['model']['n_layers']} layers (median of {p['repeats']})",
        f"  plain forward          {med['plain']:8.2f} s",
        f"  interp.cache (disk)    {med['cache']:8.2f} s",
        f"  ratio cache/plain      {t['ratio_cache_over_plain']:8.3f}   target <= {TIME_TARGET}"
        f"   {'OK' if result['meets_time_target'] else 'MISSED'}",
        f"  plain, no unembed      {med['plain_no_unembed']:8.2f} s"
        f"   (cache/this {t['ratio_cache_over_plain_no_unembed']:.3f})",
        f"  CPU-time ratio cache/plain {t['cpu_ratio_cache_over_plain']:.3f}",
    ]
    busy = t["max_foreign_cpu_share"]
    if busy is not None and busy > NOISY_SHARE:
        lines.append(
            f"  WARNING: other processes took up to {busy:.0%} of the CPUs during a timed run;"
            " these wall times are unreliable."
        )
    return lines


def memory_lines(result: dict[str, Any]) -> list[str]:
    m = result["memory"]
    small, large = m["n"], m["ten_n"]
    lines = [
        f"  peak RSS   N={small['n_examples']:<6}  {mib(small['peak_rss_kb']):>10}"
        f"   (after model load {mib(small['rss_after_load_kb'])})",
        f"  peak RSS 10N={large['n_examples']:<6}  {mib(large['peak_rss_kb']):>10}"
        f"   (after model load {mib(large['rss_after_load_kb'])})",
        f"  growth                 {m['growth']:8.1%}   target <= {MEMORY_TARGET:.0%}"
        f"   {'OK' if result['meets_memory_target'] else 'MISSED'}",
    ]
    if "streaming_growth" in m:
        lines.append(
            f"  streaming-phase peak   {mib(small['streaming_peak_rss_kb'])} -> "
            f"{mib(large['streaming_peak_rss_kb'])} ({m['streaming_growth']:+.1%}, also held to"
            " the target)"
        )
    return lines


def human_summary(result: dict[str, Any]) -> str:
    lines = timing_lines(result)
    if "memory" in result:
        lines += memory_lines(result)
    return "\n".join(lines)


# ---------------------------------------------------------------- entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--small", action="store_true", help="4 layers, d_model 256")
    ap.add_argument("--quick", action="store_true", help="small model and data (CI smoke)")
    ap.add_argument("--n-examples", type=int, default=None, help="base N (default 64; quick 16)")
    ap.add_argument("--seq-len", type=int, default=None, help="tokens per example (default 128)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store-root", default=None, help="where temporary stores go")
    ap.add_argument("--out", type=Path, default=None, help="JSON output path")
    ap.add_argument("--skip-memory", action="store_true", help="timing only")
    ap.add_argument("--child-mem", type=int, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def params_from(args: argparse.Namespace) -> Params:
    quick = bool(args.quick)
    return Params(
        small=quick or args.small,
        n_examples=args.n_examples or (16 if quick else 64),
        seq_len=args.seq_len or (32 if quick else 128),
        batch_size=args.batch_size,
        repeats=args.repeats,
        seed=args.seed,
        store_root=args.store_root,
    )


def default_out(params: Params) -> Path:
    name = "bench_cache_quick.json" if params.small else "bench_cache.json"
    return RESULTS_DIR / name


def run_benchmark(params: Params, skip_memory: bool, command: str) -> dict[str, Any]:
    model = build_model(params.small, params.seed)
    tokens = make_tokens(params.n_examples, params.seq_len, model.d_vocab, params.seed)
    timing = timing_summary(time_interleaved(model, tokens, params), params.n_examples)
    result: dict[str, Any] = {
        "benchmark": "bench_cache",
        "command": command,
        "machine": machine_info(),
        "params": asdict(params),
        "model": {**model_shape(params.small), "n_params": model.info().n_params},
        "hooks": HOOKS,
        "targets": {"max_time_ratio": TIME_TARGET, "max_memory_growth": MEMORY_TARGET},
        "timing": timing,
        "meets_time_target": timing["ratio_cache_over_plain"] <= TIME_TARGET,
        "timing_reliable": (timing["max_foreign_cpu_share"] or 0.0) <= NOISY_SHARE,
    }
    del model
    if not skip_memory:
        mem = memory_summary(
            measure_memory(params, params.n_examples),
            measure_memory(params, MEMORY_FACTOR * params.n_examples),
        )
        result["memory"] = mem
        result["meets_memory_target"] = meets_memory_target(mem)
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    params = params_from(args)
    if args.child_mem is not None:
        print(json.dumps(child_memory(params, args.child_mem)))
        return
    command = " ".join(["python", "benchmarks/bench_cache.py", *argv])
    result = run_benchmark(params, args.skip_memory, command)
    out = args.out or default_out(params)
    write_json_atomic(out, result)
    print(human_summary(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
