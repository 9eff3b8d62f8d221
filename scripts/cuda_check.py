"""CUDA check: every analysis on a GPU, exact against TransformerLens there, and patching speed.

Runs on one CUDA device (CI never does: it has none) and writes JSON:

    python scripts/cuda_check.py --out cuda_check.json

Models: the organism (LayerNorm GPT-2), a random Llama-shaped model (RMSNorm, rotary, grouped-query
attention, gated MLP: the lean-block path SmolLM2 takes), and a random model of SmolLM2's shape
(30 layers, d_model 576, 9/3 heads, vocabulary 49152) for the speed ratio of the head x position
sweep of ``z`` against ``transformer_lens.patching.get_act_patch_attn_head_out_by_pos``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from typing import Any

import torch
import transformer_lens.patching as tlp
from transformer_lens import HookedTransformer, HookedTransformerConfig

import interp
from interp.tasks.metrics import logit_diff


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _llama(
    n_layers: int, d_model: int, n_heads: int, kv: int, d_mlp: int, vocab: int, device: str
) -> Any:
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_model // n_heads,
        n_key_value_heads=kv,
        d_mlp=d_mlp,
        d_vocab=vocab,
        n_ctx=64,
        act_fn="silu",
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=d_model // n_heads,
        gated_mlp=True,
        final_rms=True,
        seed=0,
    )
    return interp.load_model(HookedTransformer(cfg), device=device)


def _task(model: Any, n: int, seq: int, seed: int) -> interp.Task:
    g = torch.Generator().manual_seed(seed)
    clean = torch.randint(1, model.d_vocab, (n, seq), generator=g)
    corrupt = clean.clone()
    corrupt[:, seq // 3] = torch.randint(1, model.d_vocab, (n,), generator=g)
    answers = torch.stack([clean[:, seq // 3], corrupt[:, seq // 3]], 1)
    return interp.Task.from_tokens(model, clean=clean, corrupt=corrupt, answers=answers)


def _peer(
    model: Any, task: interp.Task, fn: Any, index_df: Any = None, cache: Any = None
) -> torch.Tensor:
    if cache is None:
        _, cache = model.tl.run_with_cache(task.clean_tokens.to(model.device))
    kwargs = {} if index_df is None else {"index_df": index_df, "index_axis_names": None}
    return fn(
        model.tl,
        task.corrupt_tokens.to(model.device),
        cache,
        lambda lg: logit_diff(lg, task.to(model.device)).mean(),
        **kwargs,
    )


def check_model(name: str, model: Any, task: interp.Task) -> dict[str, Any]:
    out: dict[str, Any] = {"device": str(model.device)}
    out["dla_sum_error"] = interp.attribution.sum_to_total(model, task)["max_rel_error"]
    lens = interp.attribution.logit_lens(model, task)
    out["logit_lens_last_layer_error"] = lens.final_layer_max_abs_logprob_error
    for target, fn in (
        ("z", tlp.get_act_patch_attn_head_out_by_pos),
        ("resid_pre", tlp.get_act_patch_resid_pre),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ours = interp.patching.activation_patch(
                model, task, target=target, per_position=True, n_boot=10, progress=False
            ).raw
        ref = _peer(model, task, fn).float().cpu()
        scale = float(ref.abs().max())
        out[f"patch_{target}_max_rel_diff"] = float((ours - ref).abs().max()) / scale
        out[f"patch_{target}_warnings"] = [str(w.message)[:200] for w in caught]
    atp = interp.patching.attribution_patch(model, task, target="z", n_boot=10, progress=False)
    out["atp_finite"] = bool(torch.isfinite(atp.values).all())
    path = interp.patching.path_patch(model, task, sender=[(0, 0), (1, 1)], n_boot=10)
    out["path_patch"] = path.values.tolist()
    probe_task = _task(model, 32, 8, 1)
    probe_task.labels = (probe_task.clean_tokens[:, -1] % 2).clone()
    probes = interp.probes.sweep(model, probe_task, over="layers", n_boot=20, progress=False)
    out["probe_layers_finite"] = bool(torch.isfinite(probes.values).all())
    gen = task[:1]
    gen.targets, gen.checker = ["x"], (lambda text, target: target in text)
    traces = interp.trajectories.sample(model, gen, n=2, max_new_tokens=6, chunk=2)
    out["sample_chunks_shape"] = list(traces[0].chunks.shape)
    print(name, json.dumps(out), flush=True)
    return out


def speed(model: Any, task: interp.Task, peer_layers: list[int]) -> dict[str, Any]:
    """Ours on the full z head x position sweep; the peer on `peer_layers`, extrapolated."""
    import pandas as pd

    interp.patching.activation_patch(model, task[:2], target="z", per_position=True, n_boot=10)
    _sync()
    t0 = time.perf_counter()
    ours = interp.patching.activation_patch(
        model, task, target="z", per_position=True, n_boot=10, progress=False
    ).raw
    _sync()
    ours_s = time.perf_counter() - t0
    rows = [
        (l, p, h) for l in peer_layers for p in range(task.seq_len) for h in range(model.n_heads)
    ]
    index = pd.DataFrame(rows, columns=["layer", "pos", "head"])
    _sync()
    t0 = time.perf_counter()
    _, cache = model.tl.run_with_cache(task.clean_tokens.to(model.device))
    _sync()
    cache_s = time.perf_counter() - t0
    ref = _peer(model, task, tlp.get_act_patch_attn_head_out_by_pos, index_df=index, cache=cache)
    _sync()
    peer_s = time.perf_counter() - t0 - cache_s
    full = model.n_layers * task.seq_len * model.n_heads
    sub = torch.stack([ours[l, p, h] for l, p, h in rows])
    diff = float((sub - ref.float().cpu()).abs().max())
    return {
        "components": full,
        "ours_s": ours_s,
        "peer_components_timed": len(rows),
        "peer_s_timed": peer_s,
        "peer_cache_s": cache_s,
        "peer_s_extrapolated": cache_s + peer_s * full / len(rows),
        "ratio": (cache_s + peer_s * full / len(rows)) / ours_s,
        "max_abs_diff_on_timed_subset": diff,
        "largest_value": float(ref.abs().max()),
    }


def stats_on_device(device: str) -> dict[str, Any]:
    """interp.stats keeps tensors on the input's device (ranks, roc_curve), equal to CPU."""
    from interp.stats import ranks, roc_curve

    v = torch.tensor([3.0, 1.0, 1.0, 2.0], device=device)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0], device=device)
    out = {
        "ranks_device": str(ranks(v).device),
        "ranks_equal": torch.equal(ranks(v).cpu(), ranks(v.cpu())),
    }
    pairs = zip(roc_curve(v, y), roc_curve(v.cpu(), y.cpu()), strict=True)
    out["roc_curve_equal"] = all(g.device == v.device and torch.equal(g.cpu(), w) for g, w in pairs)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="cuda_check.json")
    ap.add_argument("--device", default="cuda", help="cpu runs the checks without the speed run")
    ap.add_argument("--speed-only", action="store_true", help="only the SmolLM2-shape speed run")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("No CUDA device: this check runs on a GPU machine (or pass --device cpu).")
    gpu = torch.cuda.get_device_name(0) if args.device == "cuda" else None
    result: dict[str, Any] = {"gpu": gpu, "torch": torch.__version__}
    if not args.speed_only:
        result["stats"] = stats_on_device(args.device)
        organism = interp.load_model("organism", device=args.device)
        result["organism"] = check_model(
            "organism", organism, interp.tasks.ioi(organism, n=6, seed=0, templates=[0])
        )
        llama = _llama(3, 64, 8, 2, 128, 500, args.device)
        result["llama_small"] = check_model("llama_small", llama, _task(llama, 4, 12, 0))
    if args.device == "cuda":
        smol_shape = _llama(30, 576, 9, 3, 1536, 49152, args.device)
        result["smollm2_shape_speed"] = speed(smol_shape, _task(smol_shape, 8, 16, 0), [0, 15, 29])
        print("speed", json.dumps(result["smollm2_shape_speed"]), flush=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
