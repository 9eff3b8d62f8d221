"""Benchmark: sampling with capture vs plain generation of the same number of tokens.

What it measures (one run, one machine), on the organism's arithmetic prompts:

* overhead: ``interp.trajectories.sample(model, task, n, max_new_tokens, chunk)`` (KV cache,
  hooks on every ``hook_resid_post``, chunk pooling, per-token statistics, checker) against
  TransformerLens' own ``model.tl.generate`` with the KV cache, sampling at temperature 1, the
  same prompts and ``n`` copies each, with end-of-text stopping off on both sides so both
  generate exactly ``max_new_tokens`` tokens. Target: overhead at most 30%.
* memory kept: what the capture keeps per trace, for growing generation lengths at one chunk
  size (the organism's context caps the length): bytes of the chunk means (N x L x d) and of
  the per-token statistics, against the bytes the per-token states would take (T x L x d).
* peak memory: the rise of the process's peak RSS during one generation (each run in a fresh
  subprocess, after loading and a warm-up; Linux only) for plain generation and for sampling
  with capture on a GPT-2-small-shaped random model (12 layers,
  d_model 768, context 1024), one prompt x 4 samples, 64 to 512 new tokens, chunks of 16. The
  KV cache grows with length in both; the difference between them is what the capture costs,
  which should not grow with length at a fixed chunk size (target), against the per-token
  states a full capture would hold (T x L x d per sample).

Results: ``benchmarks/results/bench_trajectories.json``.

    python benchmarks/bench_trajectories.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import torch
from _common import machine_info, stopwatch, write_json_atomic

import interp
from interp.analyses.trajectories import sample

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_OVERHEAD = 0.30


def plain(model: Any, task: Any, n: int, max_new: int) -> None:
    for i in range(len(task)):
        prompt = task.clean_tokens[i, : int(task.answer_pos[i]) + 1]
        model.tl.generate(
            prompt[None].repeat(n, 1),
            max_new_tokens=max_new,
            stop_at_eos=False,
            do_sample=True,
            temperature=1.0,
            use_past_kv_cache=True,
            verbose=False,
        )


def captured(model: Any, task: Any, n: int, max_new: int, chunk: int) -> list[Any]:
    # End-of-text never stops the capture here: it is given an impossible id for the timing.
    eos = model.tokenizer.eos_token_id
    model.tokenizer.eos_token_id = None
    try:
        return sample(model, task, n=n, max_new_tokens=max_new, chunk=chunk, progress=False)
    finally:
        model.tokenizer.eos_token_id = eos


PEAK_LENGTHS = (64, 128, 256, 512)
PEAK_SAMPLES = 4
PEAK_CHUNK = 16


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_child(kind: str, length: int) -> None:
    """Run in a fresh process: load and warm up, reset the peak-RSS counter (Linux
    ``clear_refs`` 5), generate, then print the peak RSS above the resident size at the reset."""
    from bench_patching import gpt2_shaped

    model = gpt2_shaped(small=False)
    task = interp.tasks.arithmetic(model, n=1, seed=0)
    torch.manual_seed(0)
    run = (
        (lambda k: plain(model, task, PEAK_SAMPLES, k))
        if kind == "plain"
        else (lambda k: captured(model, task, PEAK_SAMPLES, k, PEAK_CHUNK))
    )
    run(4)  # warm-up: allocator pools and lazy initialisation outside the measurement
    Path("/proc/self/clear_refs").write_text("5")
    base = _rss("VmRSS")
    out = run(length)
    if kind != "plain":
        assert all(len(t.tokens) == length for t in out)
    print(_rss("VmHWM") - base)


def peak_memory() -> list[dict[str, Any]]:
    import subprocess

    rows = []
    for length in PEAK_LENGTHS:
        peaks = {}
        for kind in ("plain", "capture"):
            out = subprocess.run(
                [sys.executable, __file__, "--peak-child", kind, str(length)],
                capture_output=True,
                text=True,
                check=True,
                cwd=Path(__file__).parent,
            )
            peaks[kind] = int(out.stdout.strip().splitlines()[-1])
        rows.append(
            {
                "tokens": length,
                "plain_peak_rss_bytes": peaks["plain"],
                "capture_peak_rss_bytes": peaks["capture"],
                "capture_minus_plain_bytes": peaks["capture"] - peaks["plain"],
                "per_token_states_bytes": PEAK_SAMPLES * length * 12 * 768 * 4,
            }
        )
        print(f"peak RSS at {length} tokens: {rows[-1]}", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--peak-child", nargs=2, metavar=("KIND", "LENGTH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.peak_child:
        _peak_child(args.peak_child[0], int(args.peak_child[1]))
        return
    torch.manual_seed(0)
    model = interp.load_model("organism", device="cpu")
    task = interp.tasks.arithmetic(model, n=args.prompts, seed=0)
    plain(model, task, args.n, 4)  # warm-up
    captured(model, task, args.n, 4, args.chunk)
    peer_t, ours_t = [], []
    for _ in range(args.repeats):
        with stopwatch() as s:
            plain(model, task, args.n, args.tokens)
        peer_t.append(s.wall_s)
        with stopwatch() as s:
            traces = captured(model, task, args.n, args.tokens, args.chunk)
        ours_t.append(s.wall_s)
    assert all(len(t.tokens) == args.tokens for t in traces)
    peer, ours = statistics.median(peer_t), statistics.median(ours_t)
    overhead = ours / peer - 1
    memory = []
    prompt_len = int(task.answer_pos.max()) + 1
    for length in (8, 16, 32, model.n_ctx - prompt_len):
        t = captured(model, task, 1, length, args.chunk)[0]
        kept = t.chunks.numel() * t.chunks.element_size() + 3 * length * 8
        per_token = length * model.n_layers * model.d_model * 8
        memory.append({"tokens": length, "kept_bytes": kept, "per_token_states_bytes": per_token})
    peaks = peak_memory()
    result = {
        "benchmark": "trajectories",
        "command": "python benchmarks/bench_trajectories.py",
        "machine": machine_info(),
        "prompts": args.prompts,
        "samples_per_prompt": args.n,
        "new_tokens": args.tokens,
        "chunk": args.chunk,
        "plain_generation_s": peer_t,
        "sample_with_capture_s": ours_t,
        "median_plain_s": peer,
        "median_capture_s": ours,
        "overhead": overhead,
        "target_overhead": TARGET_OVERHEAD,
        "met": overhead <= TARGET_OVERHEAD,
        "memory_by_length": memory,
        "peak_memory_gpt2_shape": peaks,
        "peak_samples": PEAK_SAMPLES,
        "peak_chunk": PEAK_CHUNK,
    }
    write_json_atomic(RESULTS_DIR / "bench_trajectories.json", result)
    print(
        f"plain generation {peer:.2f} s, sampling with capture {ours:.2f} s -> overhead "
        f"{overhead:+.0%} (target <= {TARGET_OVERHEAD:.0%}); kept per trace by length: "
        + ", ".join(
            f"{m['tokens']}: {m['kept_bytes'] / 1e3:.1f} kB "
            f"(states {m['per_token_states_bytes'] / 1e3:.0f} kB)"
            for m in memory
        ),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
