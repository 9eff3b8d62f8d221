"""SmolLM2-135M-Instruct under interp: the induction and IOI measurements of docs/smollm2.md.

    .venv/bin/python scripts/smollm2_case_study.py                 # both parts, ~20 min on 2 CPUs
    .venv/bin/python scripts/smollm2_case_study.py --part induction --figures out/smollm2

Induction: head detectors (induction, previous-token), then the repeat-half loss increase when
the top-k induction heads are ablated together, against k random heads drawn from the same
layers (several draws), by zero and by mean ablation.

IOI: the model's logit difference logit(IO) - logit(S), direct logit attribution per head, exact
patching of every head's z over all positions (denoising and noising), the overlap of their
top heads, and the share of the logit difference that the top-k heads by denoising restore when
patched together. Everything goes to one JSON file (default benchmarks/results/smollm2.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import interp
from interp.tasks.common import single_token_words
from interp.tasks.induction import repeat_loss
from interp.tasks.metrics import logit_diff
from interp.tasks.words import NAMES


def ranked(values: torch.Tensor, n_heads: int, k: int, sign: int = 1) -> list[tuple[str, float]]:
    flat = values.flatten()
    order = (sign * flat).argsort(descending=True)[:k]
    return [(f"L{int(i) // n_heads}H{int(i) % n_heads}", round(float(flat[i]), 4)) for i in order]


def random_same_layers(
    heads: list[tuple[int, int]], n_heads: int, draws: int, seed: int
) -> list[list[tuple[int, int]]]:
    """`draws` sets of random heads, one from each top head's layer, never a top head."""
    gen = torch.Generator().manual_seed(seed)
    top = set(heads)
    out = []
    for _ in range(draws):
        pick: list[tuple[int, int]] = []
        for layer, _h in heads:
            cands = [(layer, h) for h in range(n_heads) if (layer, h) not in top | set(pick)]
            pick.append(cands[int(torch.randint(len(cands), (1,), generator=gen))])
        out.append(pick)
    return out


def induction_part(model, args, figures: Path | None) -> dict:
    H = model.n_heads
    t = time.time()
    det = interp.attribution.detect_heads(model, kind="induction", n=16, seq_len=12, seed=0)
    prev = interp.attribution.detect_heads(model, kind="previous_token", n=16, seq_len=12, seed=0)
    if figures:
        det.plot().write_html(figures / "induction_scores.html", include_plotlyjs=True)
    task = interp.tasks.induction(model, n=16, seq_len=10, seed=1)
    with torch.inference_mode():
        clean = repeat_loss(model(task.clean_tokens.to(model.device)), task)
    out: dict = {
        "detector": {"n": 16, "seq_len": 12, "seed": 0},
        "top_induction": ranked(det.values, H, 20),
        "top_previous_token": ranked(prev.values, H, 10),
        "task": {"n": 16, "seq_len": 10, "seed": 1},
        "clean_repeat_loss": round(float(clean.mean()), 4),
        "ablations": [],
    }
    flat = det.values.flatten()
    order = flat.argsort(descending=True)
    for k in args.k:
        heads = [(int(i) // H, int(i) % H) for i in order[:k]]
        sets = [heads, *random_same_layers(heads, H, args.draws, seed=0)]
        for how in ("zero", "mean"):
            r = interp.attribution.ablate(
                model, task, heads=sets, how=how, metric=repeat_loss, n_boot=200
            )
            v = [round(float(x), 4) for x in r.values]
            out["ablations"].append(
                {
                    "k": k,
                    "how": how,
                    "detector_heads": [f"L{l}H{h}" for l, h in heads],
                    "detector_increase": v[0],
                    "random_increases": v[1:],
                    "random_sets": [[f"L{l}H{h}" for l, h in s] for s in sets[1:]],
                    "ratio_to_largest_random": round(v[0] / max(v[1:]), 2),
                }
            )
            print(out["ablations"][-1], flush=True)
    out["seconds"] = round(time.time() - t, 1)
    return out


def ioi_part(model, args, figures: Path | None) -> dict:
    H = model.n_heads
    t = time.time()
    task = interp.tasks.ioi(model, n=args.ioi_n, seed=0)
    with torch.inference_mode():
        ld = logit_diff(model(task.clean_tokens.to(model.device)), task)
        lr = logit_diff(model(task.corrupt_tokens.to(model.device)), task)
    dla = interp.attribution.direct_logit(model, task, n_boot=200)
    den = interp.patching.activation_patch(model, task, target="z", n_boot=200, progress=False)
    noi = interp.patching.activation_patch(
        model, task, target="z", mode="noise", n_boot=200, progress=False
    )
    if figures:
        for name, res in (("ioi_dla", dla), ("ioi_denoise", den), ("ioi_noise", noi)):
            res.plot().write_html(figures / f"{name}.html", include_plotlyjs=True)
    top = {
        "dla": ranked(dla.values, H, 10),
        "dla_negative": ranked(dla.values, H, 5, sign=-1),
        "denoise": ranked(den.values, H, 10),
        "noise": ranked(noi.values, H, 10, sign=-1),
        "noise_positive": ranked(noi.values, H, 5),
    }
    sets = {}
    for k in args.ioi_k:
        nodes = [name for name, _ in top["denoise"][:k]] if k <= 10 else None
        if nodes is None:
            nodes = [name for name, _ in ranked(den.values, H, k)]
        d = interp.patching.activation_patch(model, task, nodes=nodes, n_boot=500, progress=False)
        n = interp.patching.activation_patch(
            model, task, nodes=nodes, mode="noise", n_boot=500, progress=False
        )
        sets[str(k)] = {
            "heads": nodes,
            "denoise": [round(float(x), 4) for x in (d.values[0], d.ci_low[0], d.ci_high[0])],
            "noise": [round(float(x), 4) for x in (n.values[0], n.ci_low[0], n.ci_high[0])],
        }
        print(k, sets[str(k)], flush=True)

    def names(key: str, k: int) -> set[str]:
        return {n for n, _ in top[key][:k]}

    overlap = {
        f"top{k}": {
            "dla&denoise": sorted(names("dla", k) & names("denoise", k)),
            "dla&noise": sorted(names("dla", k) & names("noise", k)),
            "denoise&noise": sorted(names("denoise", k) & names("noise", k)),
        }
        for k in (5, 10)
    }
    return {
        "task": {"n": args.ioi_n, "seed": 0, "corruption": "abc", "templates": "all 12"},
        "names_kept": len(single_token_words(model, NAMES, "names", 5)),
        "logit_diff_clean": round(float(ld.mean()), 4),
        "fraction_io_preferred": round(float((ld > 0).float().mean()), 4),
        "logit_diff_corrupt": round(float(lr.mean()), 4),
        "top": top,
        "overlap": overlap,
        "sets_patched_together": sets,
        "seconds": round(time.time() - t, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--part", choices=["all", "induction", "ioi"], default="all")
    ap.add_argument("--k", type=int, nargs="+", default=[3, 5, 10], help="induction heads ablated")
    ap.add_argument("--draws", type=int, default=8, help="random head sets per k")
    ap.add_argument("--ioi-n", type=int, default=8, help="IOI prompts")
    ap.add_argument("--ioi-k", type=int, nargs="+", default=[3, 5, 8, 12, 20])
    ap.add_argument("--out", default="benchmarks/results/smollm2.json")
    ap.add_argument("--figures", default=None, help="directory for plotly HTML figures")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    figures = Path(args.figures) if args.figures else None
    if figures:
        figures.mkdir(parents=True, exist_ok=True)
    t = time.time()
    model = interp.load_model("smollm2", device="cpu")
    path = Path(args.out)
    out = json.loads(path.read_text()) if path.exists() else {}
    out["model"] = "smollm2 (SmolLM2-135M-Instruct, Q4_1 GGUF dequantised to float32)"
    out["load_seconds"] = round(time.time() - t, 1)
    if args.part in ("all", "induction"):
        out["induction"] = induction_part(model, args, figures)
    if args.part in ("all", "ioi"):
        out["ioi"] = ioi_part(model, args, figures)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
