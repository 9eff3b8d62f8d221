"""Benchmark: SAE latents as units, `interp.sae` against sae-lens's `HookedSAETransformer`.

What it measures (one run, one machine), on the organism, IOI prompts, with the SAE at
``blocks.2.hook_resid_post`` (``data/organism/saes/L2_resid_post``; if that directory does not
exist yet, a quick SAE is trained first and the JSON says so):

* Attribution patching over every latent, ``interp.sae.attribution_patch(model, task, sae)``
  (two forwards and one backward), against the peer a user would otherwise write: exact
  patching of every latent one at a time with sae-lens, a ``HookedSAETransformer`` built from
  the organism's weights with the SAE added with its error term, one
  ``run_with_hooks(corrupted, fwd_hooks=[("blocks.2.hook_resid_post.hook_sae_acts_post",
  set latent i to its clean value at every position)])`` per latent, metric = logit difference
  at each prompt's answer position (mean over prompts, normalised by the unpatched clean and
  corrupted runs). Target: AtP at least 100 x faster. Recorded: AtP's agreement with the
  peer's exact scores (Spearman of the signed scores, top-10 recall of the largest |exact|;
  also on the latents active in either run), and interp's own exact
  ``interp.sae.activation_patch`` against the peer (max |difference| of the normalised scores;
  they should agree to about 1e-5), with its time. With ``--peer-latents N`` the peer (and
  interp's exact sweep) runs on N random latents and the peer's time for every latent is
  extrapolated as ``clean and corrupted runs + d_sae x time per latent``; the agreement is then
  measured on those N latents. The JSON says which numbers are extrapolated.
* Caching latent activations over a dataset, ``interp.sae.cache_latents(model, tokens, sae)``
  (compressed sparse rows), against caching the residual stream the SAE reads,
  ``interp.cache(model, tokens, names=["blocks.2.hook_resid_post"])``, on the same token rows:
  the time ratio, and bytes (sparse latents, dense latents, residual stream).

AtP and the caches are repeated (``--repeats``), interleaved, and medians compared; the peer's
loop and the exact sweep run once (each is hundreds of forwards). Other processes' CPU time is
recorded for every timed run. ``--threads`` sets torch's threads (on a 2-core machine shared
with other work, 1 thread avoids OpenMP barrier stalls; the JSON records what was used).
Results go to ``benchmarks/results/bench_sae.json`` (``bench_sae_quick.json`` with ``--quick``).

    python benchmarks/bench_sae.py                 # the organism's L2 SAE, IOI n=32
    python benchmarks/bench_sae.py --threads 1     # on a machine shared with other work
    python benchmarks/bench_sae.py --quick         # small smoke run (peer on 32 latents)
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import Sample, machine_info, stopwatch, write_json_atomic

import interp
from interp.models import Model
from interp.stats import spearman

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SAE_DIR = ROOT / "data" / "organism" / "saes" / "L2_resid_post"
SITE = "blocks.2.hook_resid_post"
LATENTS = f"{SITE}.hook_sae_acts_post"
ATP_TARGET = 100.0
EXACT_TOLERANCE = 1e-5
CONTENDED = 0.10  # other processes' CPU share above which timings are marked unreliable
# What the brief's quick SAE is: enough to exercise every path when the shipped one is missing.
QUICK_SAE = {"d_sae": 256, "k": 8, "training_tokens": 20000, "batch_size": 512}


def get_sae(model: Model, path: Path) -> tuple[Any, dict[str, Any]]:
    """The shipped SAE at `path`, or a quick one trained here when it does not exist."""
    if (path / "cfg.json").is_file():
        sae = interp.sae.load(path, model=model)
        how = {"path": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)}
        how["trained_here"] = False
    else:
        print(f"{path} does not exist: training a quick SAE ...", file=sys.stderr)
        data = interp.tasks.ioi(model, n=64, seed=0)
        sae = interp.sae.train(model, SITE, data, **QUICK_SAE)
        how = {"path": None, "trained_here": True, "quick_sae": QUICK_SAE}
    record = getattr(sae, "interp_record", None) or {}
    how.update(
        hook=SITE,
        d_in=int(sae.cfg.d_in),
        d_sae=int(sae.cfg.d_sae),
        k=getattr(sae.cfg, "k", None),
        architecture=sae.cfg.architecture(),
        quality=record.get("quality"),
        training=record.get("training"),
    )
    return sae, how


def build_peer(model: Model, sae: Any) -> Any:
    """sae-lens's HookedSAETransformer with the organism's weights and the SAE (error term).

    The organism's config names a temporary tokenizer directory, so the tokenizer is passed
    in; the SAE is a copy, so the peer's hook points are its own.
    """
    from sae_lens import HookedSAETransformer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = HookedSAETransformer(copy.deepcopy(model.tl.cfg), tokenizer=model.tl.tokenizer)
    peer.load_state_dict(model.tl.state_dict())
    peer.eval()
    peer.add_sae(copy.deepcopy(sae), use_error_term=True)
    return peer


def run_peer(
    peer: Any, task: Any, latents: list[int]
) -> tuple[Sample, Sample, torch.Tensor, torch.Tensor]:
    """The loop a user writes: one hooked forward per latent. Returns the timing of the clean
    and corrupted runs, of the loop, the normalised scores ``[latent]``, and which latents are
    active anywhere in either run ``[d_sae]``."""
    rows = torch.arange(len(task))
    pos, ans = task.answer_pos, task.answers

    def logit_diff(logits: torch.Tensor) -> torch.Tensor:
        lg = logits[rows, pos]
        return lg.gather(1, ans[:, :1])[:, 0] - lg.gather(1, ans[:, 1:2])[:, 0]

    with torch.inference_mode():
        with stopwatch() as setup:
            clean_logits, cache = peer.run_with_cache(task.clean_tokens, names_filter=[LATENTS])
            clean = cache[LATENTS]
            corrupt_logits, ccache = peer.run_with_cache(
                task.corrupt_tokens, names_filter=[LATENTS]
            )
            m_clean, m_corrupt = logit_diff(clean_logits).mean(), logit_diff(corrupt_logits).mean()
        active = ((clean != 0) | (ccache[LATENTS] != 0)).flatten(0, 1).any(0)
        out = []
        with stopwatch() as loop:
            for i in latents:

                def patch(act: torch.Tensor, hook: Any, i: int = i) -> torch.Tensor:
                    act[:, :, i] = clean[:, :, i]
                    return act

                logits = peer.run_with_hooks(task.corrupt_tokens, fwd_hooks=[(LATENTS, patch)])
                out.append(logit_diff(logits).mean())
    scores = (torch.stack(out).double() - m_corrupt.double()) / (m_clean - m_corrupt).double()
    return setup, loop, scores, active


def run_atp(model: Model, task: Any, sae: Any, verify: int | None = None) -> tuple[Sample, Any]:
    with stopwatch() as s:
        res = interp.sae.attribution_patch(model, task, sae, verify_top_k=verify, progress=False)
    return s, res


def run_exact(model: Model, task: Any, sae: Any, latents: list[int]) -> tuple[Sample, Any]:
    with stopwatch() as s:
        res = interp.sae.activation_patch(model, task, sae, latents=latents, progress=False)
    return s, res


def contention(samples: list[Sample]) -> float | None:
    """Other processes' CPU time as a share of the machine during these runs."""
    if any(s.foreign_cpu_s is None for s in samples):
        return None
    wall = sum(s.wall_s for s in samples) * (os.cpu_count() or 1)
    return sum(s.foreign_cpu_s or 0.0 for s in samples) / max(wall, 1e-9)


def bench_atp(
    model: Model, sae: Any, n: int, repeats: int, peer_latents: int | None, k: int
) -> dict[str, Any]:
    task = interp.tasks.ioi(model, n=n, seed=0)
    d_sae = int(sae.cfg.d_sae)
    subset = peer_latents is not None and peer_latents < d_sae
    if subset:
        g = torch.Generator().manual_seed(0)
        latents = sorted(torch.randperm(d_sae, generator=g)[:peer_latents].tolist())
    else:
        latents = list(range(d_sae))
    peer = build_peer(model, sae)
    with torch.inference_mode():  # warm-up: one forward of each input on both models
        for tl in (model.tl, peer):
            tl(task.clean_tokens)
            tl(task.corrupt_tokens)
    run_atp(model, task, sae)  # warm-up (first backward, autograd set-up)
    print(f"  peer: {len(latents)} latents ...", file=sys.stderr)
    setup, loop, peer_scores, active = run_peer(peer, task, latents)
    per_latent = loop.wall_s / len(latents)
    peer_total = setup.wall_s + per_latent * d_sae
    print("  interp exact ...", file=sys.stderr)
    exact_s, exact = run_exact(model, task, sae, latents)
    exact_diff = float((exact.values.double() - peer_scores).abs().max())
    atp_samples, atp = [], None
    for _ in range(repeats):
        s, atp = run_atp(model, task, sae)
        atp_samples.append(s)
    assert atp is not None
    verify_s, verified = run_atp(model, task, sae, verify=k)
    atp_med = statistics.median(s.wall_s for s in atp_samples)
    idx = torch.tensor(latents)
    # Agreement on the latents the peer measured (every latent unless --peer-latents), with
    # the definitions of interp.patching.agreement: Spearman of the signed scores, of |AtP|
    # against |exact|, and the share of the k largest |exact| among AtP's top k.
    est, ref = atp.values[idx].double(), peer_scores
    kk = min(k, len(latents))
    top_ref = set(torch.argsort(ref.abs(), descending=True)[:kk].tolist())
    top_est = set(torch.argsort(est.abs(), descending=True)[:kk].tolist())
    alive = active[idx].cpu()
    n_alive = int(alive.sum())
    ver = verified.verified[idx].double() if verified.verified is not None else None
    hit = torch.isfinite(ver) if ver is not None else torch.zeros(len(latents), dtype=torch.bool)
    samples = [setup, loop, exact_s, *atp_samples, verify_s]
    share = contention(samples)
    ratio = peer_total / atp_med
    return {
        "task": {"name": "ioi", "n": n, "seed": 0, "prompt_tokens": task.seq_len},
        "latents_total": d_sae,
        "peer_latents": len(latents),
        "peer_extrapolated": subset,
        "peer_setup_s": setup.wall_s,
        "peer_loop_s": loop.wall_s,
        "peer_per_latent_s": per_latent,
        "peer_all_latents_s": peer_total,
        "atp_s": [s.wall_s for s in atp_samples],
        "median_atp_s": atp_med,
        "atp_verify_top_k_s": verify_s.wall_s,
        "verify_top_k": k,
        "atp_speedup_vs_peer": ratio,
        "atp_target": ATP_TARGET,
        "atp_met": ratio >= ATP_TARGET,
        "agreement_on": f"{len(latents)} of {d_sae} latents" if subset else "every latent",
        "spearman": spearman(est, ref),
        "spearman_abs": spearman(est.abs(), ref.abs()),
        "top_k_recall": len(top_ref & top_est) / kk,
        "active_latents": n_alive,
        "spearman_active": spearman(est[alive], ref[alive]) if n_alive > 2 else None,
        "verified_latents": int(hit.sum()),
        "verified_max_abs_difference": float((ver[hit] - ref[hit]).abs().max())
        if ver is not None and bool(hit.any())
        else None,
        "exact_s": exact_s.wall_s,
        "exact_latents": len(latents),
        "exact_speedup_vs_peer": loop.wall_s / max(exact_s.wall_s, 1e-9),
        "exact_max_abs_difference": exact_diff,
        "exact_tolerance": EXACT_TOLERANCE,
        "exact_equal": exact_diff <= EXACT_TOLERANCE,
        "max_abs_score": float(peer_scores.abs().max()),
        "foreign_cpu_share": share,
        "timing_reliable": share is not None and share < CONTENDED,
    }


def bench_cache(model: Model, sae: Any, n: int, repeats: int) -> dict[str, Any]:
    tokens = interp.tasks.ioi(model, n=n, seed=1).clean_tokens
    kinds = {
        "residual": lambda: interp.cache(model, tokens, names=[SITE], progress=False),
        "latents_sparse": lambda: interp.sae.cache_latents(
            model, tokens, sae, layout="sparse", progress=False
        ),
        "latents_dense": lambda: interp.sae.cache_latents(
            model, tokens, sae, layout="dense", progress=False
        ),
    }
    for make in kinds.values():  # warm-up
        make()
    samples: dict[str, list[Sample]] = {k: [] for k in kinds}
    made: dict[str, Any] = {}
    for _ in range(repeats):
        for name, make in kinds.items():
            with stopwatch() as s:
                made[name] = make()
            samples[name].append(s)
    med = {k: statistics.median(s.wall_s for s in v) for k, v in samples.items()}
    resid = made["residual"][SITE]
    sparse, dense = made["latents_sparse"], made["latents_dense"]
    auto = interp.sae.cache_latents(model, tokens, sae, progress=False)
    assert torch.equal(sparse.dense(), dense.dense())
    share = contention([s for v in samples.values() for s in v])
    return {
        "data": {"name": "ioi", "n": n, "seed": 1, "tokens": list(tokens.shape)},
        "repeats": repeats,
        "residual_s": [s.wall_s for s in samples["residual"]],
        "latents_sparse_s": [s.wall_s for s in samples["latents_sparse"]],
        "latents_dense_s": [s.wall_s for s in samples["latents_dense"]],
        "median_residual_s": med["residual"],
        "median_latents_sparse_s": med["latents_sparse"],
        "median_latents_dense_s": med["latents_dense"],
        "time_ratio_sparse_vs_residual": med["latents_sparse"] / med["residual"],
        "time_ratio_dense_vs_residual": med["latents_dense"] / med["residual"],
        "auto_layout": "sparse" if auto.sparse else "dense",
        "density": sparse.density,
        "bytes_latents_sparse": sparse.nbytes,
        "bytes_latents_dense": dense.nbytes,
        "bytes_residual": resid.numel() * resid.element_size(),
        "sparse_vs_dense": sparse.nbytes / dense.nbytes,
        "sparse_vs_residual": sparse.nbytes / (resid.numel() * resid.element_size()),
        "foreign_cpu_share": share,
        "timing_reliable": share is not None and share < CONTENDED,
    }


def summary(r: dict[str, Any]) -> str:
    a, c = r["atp"], r["cache"]
    peer = (
        f"{a['peer_all_latents_s']:.1f} s"
        + (f" (extrapolated from {a['peer_latents']})" if a["peer_extrapolated"] else "")
        + f" for {a['latents_total']} latents"
    )
    return "\n".join(
        [
            f"SAE {r['sae']['path'] or 'trained here (quick)'}: {r['sae']['d_sae']} latents",
            f"peer (HookedSAETransformer loop) {peer}; AtP {a['median_atp_s']:.3f} s -> "
            f"{a['atp_speedup_vs_peer']:.0f}x (target {ATP_TARGET:.0f})",
            f"AtP vs peer ({a['agreement_on']}): Spearman {a['spearman']:.3f} "
            f"(active latents {a['spearman_active']}), top-{a['verify_top_k']} recall "
            f"{a['top_k_recall']:.2f}",
            f"interp exact vs peer: max |diff| {a['exact_max_abs_difference']:.2e} "
            f"({a['exact_s']:.1f} s for {a['exact_latents']} latents, peer loop "
            f"{a['peer_loop_s']:.1f} s)",
            f"cache: residual {c['median_residual_s']:.3f} s, latents sparse "
            f"{c['median_latents_sparse_s']:.3f} s ({c['time_ratio_sparse_vs_residual']:.2f}x); "
            f"bytes sparse {c['bytes_latents_sparse']}, dense {c['bytes_latents_dense']}, "
            f"residual {c['bytes_residual']}",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small smoke run (writes *_quick.json)")
    p.add_argument("--sae", type=Path, default=SAE_DIR, help="SAE directory (sae-lens format)")
    p.add_argument("--n", type=int, default=None, help="IOI prompts for patching (32)")
    p.add_argument("--cache-n", type=int, default=None, help="IOI prompts to cache (512)")
    p.add_argument("--repeats", type=int, default=None, help="AtP and cache repeats (5)")
    p.add_argument(
        "--peer-latents", type=int, default=None, help="time the peer on N random latents only"
    )
    p.add_argument("--top-k", type=int, default=10, help="k of top-k recall and verify_top_k")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    quick = args.quick
    n = args.n or (8 if quick else 32)
    cache_n = args.cache_n or (64 if quick else 512)
    repeats = args.repeats or (1 if quick else 5)
    peer_latents = args.peer_latents or (32 if quick else None)
    load_before = list(os.getloadavg())
    model = interp.load_model("organism", device="cpu")
    sae, how = get_sae(model, args.sae)
    print("benchmarking latent AtP ...", file=sys.stderr)
    atp = bench_atp(model, sae, n, repeats, peer_latents, args.top_k)
    print("benchmarking the latent cache ...", file=sys.stderr)
    cache = bench_cache(model, sae, cache_n, max(1, min(repeats, 3)))
    argv_text = " ".join(sys.argv[1:] if argv is None else argv)
    result = {
        "benchmark": "sae",
        "command": "python benchmarks/bench_sae.py" + (f" {argv_text}" if argv_text else ""),
        "machine": machine_info(),
        "sae": how,
        "atp": atp,
        "cache": cache,
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
    }
    out = args.out or RESULTS_DIR / ("bench_sae_quick.json" if quick else "bench_sae.json")
    write_json_atomic(out, result)
    print(summary(result))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
