"""Benchmark: sampling with capture vs plain generation of the same number of tokens.

What it measures (one run, one machine), on the organism's arithmetic prompts:

* overhead: ``interp.trajectories.sample(model, task, n, max_new_tokens, chunk)`` (KV cache,
  hooks on every ``hook_resid_post``, chunk pooling, per-token statistics, checker) against
  TransformerLens' own ``model.tl.generate`` with the KV cache, sampling at temperature 1, the
  same prompts and ``n`` copies each, with end-of-text stopping off on both sides so both
  generate exactly ``max_new_tokens`` tokens. Target: overhead at most 30%.
* memory: what the capture keeps per trace, for growing generation lengths at one chunk size
  (the organism's context caps the length): bytes of the chunk means (N x L x d) and of the
  per-token statistics, against the bytes the per-token states would take (T x L x d). The
  working memory of the capture itself is one accumulator per sample, whatever the length; the
  KV cache grows with length for plain generation too. (Process peak memory is not measured:
  torch's allocations are invisible to tracemalloc and RSS on a small model is noise.)

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


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
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
