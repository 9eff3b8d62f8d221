"""Benchmark: `interp.steering.evaluate` against a loop of hooked TransformerLens forwards, and
the cost of a steering hook during generation.

What it measures (one run, one machine):

* ``evaluate`` over 8 directions x 6 strengths (48 configurations, no random controls) on the
  task prompts (target-minus-other logit difference, target probability, KL at the answer
  position) and on neutral text (KL and next-token loss at every position steering reaches).
  Peer: the loop a user writes without interp, one ``model.tl.run_with_hooks(tokens,
  fwd_hooks=[(hook, add)])`` per configuration for the task prompts and one for the neutral
  text, each metric computed from the full logits. Both get identical tokens; the results must
  be equal (max |difference| recorded). Target: ours at least 5 x faster.
  Models: the organism (truth-of-statements: mean-difference directions at 4 residual sites and
  4 heads) and, with ``--smollm2``, SmolLM2-135M-Instruct (sentiment: CAA directions from
  contrast pairs at 8 layers, steering neutral prompts towards positive words).
  Both position settings are measured: ``"last"`` (the answer position: ours starts at the
  steered layer *and* position) and ``"all"`` (every position: ours can skip only the layers
  before the steered one and the unembedding of positions nothing reads).
* Generation: ``interp.steering.generate`` with a steering direction against the same call
  without one (32 new tokens, greedy, key-value cache); target: overhead at most 10 %.
  TransformerLens' own ``generate`` is timed beside them for reference.

Variants are interleaved and repeated (``--repeats``); medians are compared. Results go to
``benchmarks/results/bench_steering.json`` (``--smollm2`` merges its entry into it).

    python benchmarks/bench_steering.py             # the organism
    python benchmarks/bench_steering.py --smollm2   # SmolLM2 (about 10 minutes)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from _common import Sample, machine_info, stopwatch, write_json_atomic

import interp
from interp.analyses.steering import SteeringDirection
from interp.analyses.steering.objective import neutral_task, objective, word_objective
from interp.models import Model
from interp.tasks import sentiment

RESULTS = Path(__file__).resolve().parent / "results" / "bench_steering.json"
TARGET_SPEEDUP = 5.0
TARGET_OVERHEAD = 0.10
ALPHAS = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]

# Sentiment material from interp.tasks.sentiment: the direction uses 6 of its pairs, steering
# 8 of its neutral prompts, side effects 4 of its unrelated texts.
POS, NEG = sentiment.POSITIVE, sentiment.NEGATIVE
PAIRS = [sentiment.PAIRS[i] for i in (0, 1, 2, 3, 6, 11)]
SENTIMENT_PROMPTS = sentiment.NEUTRAL[:8]
OTHER_TEXT = sentiment.OTHER[:4]


def loop_peer(
    model: Model,
    steered: Any,
    target: torch.Tensor,
    other: torch.Tensor,
    neutral: Any,
    configs: list[tuple[SteeringDirection, float]],
    positions: str,
) -> tuple[Sample, torch.Tensor]:
    """One hooked forward per configuration on the task prompts and one on the neutral text;
    returns ``[config, 5]``: effect, target prob, task KL, neutral KL, neutral loss change."""
    tl = model.tl
    rows = torch.arange(len(steered))
    toks, apos = steered.clean_tokens, steered.answer_pos
    ntoks, npos = neutral.clean_tokens, neutral.answer_pos
    nrows = torch.arange(len(neutral))

    def answer_metrics(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lg = logits[rows, apos].float()
        lp = lg.log_softmax(-1)
        t = lp.gather(1, target).logsumexp(-1)
        if target.shape[1] == 1 and other.shape[1] == 1:
            diff = (lg.gather(1, target) - lg.gather(1, other))[:, 0]
        else:
            diff = t - lp.gather(1, other).logsumexp(-1)
        return diff, t.exp(), lp

    def neutral_metrics(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lp = logits.float().log_softmax(-1)
        nxt = torch.cat([ntoks[:, 1:], ntoks[:, -1:]], dim=1)
        loss = -lp.gather(2, nxt[..., None])[..., 0]
        p = torch.arange(ntoks.shape[1])[None]
        first = npos[:, None] if positions == "last" else torch.zeros_like(npos)[:, None]
        window = (p >= first) & (p <= npos[:, None])
        return lp, loss, window

    def adder(vec: torch.Tensor, head: int | None, where: torch.Tensor | None) -> Any:
        def hook(act: torch.Tensor, hook: Any) -> torch.Tensor:
            act = act.clone()
            view = act if head is None else act[:, :, head]
            if where is None:
                view += vec
            else:
                view[torch.arange(act.shape[0]), where] += vec
            return act

        return hook

    with stopwatch() as s, torch.inference_mode():
        base_logits = tl(toks)
        d0, _, lp0 = answer_metrics(base_logits)
        nlp0, nloss0, window = neutral_metrics(tl(ntoks))
        w = window.float()
        out = []
        for d, a in configs:
            name = model.hook_name(d.site.target, d.site.layer)
            vec = d.added(a)
            where_t = apos if positions == "last" else None
            where_n = npos if positions == "last" else None
            logits = tl.run_with_hooks(toks, fwd_hooks=[(name, adder(vec, d.site.head, where_t))])
            diff, tp, lp = answer_metrics(logits)
            kl_t = (lp0.exp() * (lp0 - lp)).sum(-1)
            nl = tl.run_with_hooks(ntoks, fwd_hooks=[(name, adder(vec, d.site.head, where_n))])
            nlp, nloss, _ = neutral_metrics(nl)
            kl_n = ((nlp0.exp() * (nlp0 - nlp)).sum(-1) * w).sum(-1) / w.sum(-1)
            dl = ((nloss - nloss0) * w).sum(-1) / w.sum(-1)
            out.append(
                torch.stack(
                    [(diff - d0).mean(), tp.mean(), kl_t.mean(), kl_n[nrows].mean(), dl.mean()]
                )
            )
    return s, torch.stack(out)


def ours(
    model: Model,
    task: Any,
    dirs: list[SteeringDirection],
    neutral: Any,
    positions: str,
    answer_sets: Any,
) -> tuple[Sample, torch.Tensor]:
    with stopwatch() as s:
        res = interp.steering.evaluate(
            model,
            task,
            dirs,
            alphas=ALPHAS,
            neutral=neutral,
            positions=positions,
            n_random=0,
            n_boot=200,
            progress=False,
            answer_sets=answer_sets,
        )
    m = res.coords["metric"]
    cols = [m.index(k) for k in ("effect", "target_prob", "task_kl", "kl", "loss_change")]
    return s, res.values[..., cols].reshape(-1, len(cols))


def bench_evaluate(
    model: Model,
    task: Any,
    dirs: list[SteeringDirection],
    neutral_texts: Any,
    answer_sets: Any,
    repeats: int,
) -> dict[str, Any]:
    obj = (
        word_objective(model, task, answer_sets)
        if answer_sets is not None
        else objective(model, task)
    )
    target, other = obj.answer_sets()
    neutral = neutral_task(model, neutral_texts)
    configs = [(d, a) for d in dirs for a in ALPHAS]
    out: dict[str, Any] = {}
    for positions in ("last", "all"):
        peer_t, our_t, diff = [], [], 0.0
        ours(model, task, dirs, neutral_texts, positions, answer_sets)  # warm-up
        for _ in range(repeats):
            s_peer, v_peer = loop_peer(model, obj.task, target, other, neutral, configs, positions)
            s_ours, v_ours = ours(model, task, dirs, neutral_texts, positions, answer_sets)
            peer_t.append(s_peer)
            our_t.append(s_ours)
            diff = max(diff, float((v_peer - v_ours).abs().max()))
        peer_med = statistics.median(s.wall_s for s in peer_t)
        our_med = statistics.median(s.wall_s for s in our_t)
        out[positions] = {
            "configurations": len(configs),
            "peer_s": peer_med,
            "ours_s": our_med,
            "speedup": peer_med / our_med,
            "target": TARGET_SPEEDUP,
            "met": peer_med / our_med >= TARGET_SPEEDUP,
            "max_abs_diff": diff,
            "peer_runs_s": [s.wall_s for s in peer_t],
            "ours_runs_s": [s.wall_s for s in our_t],
            "foreign_cpu_s": [s.foreign_cpu_s for s in peer_t + our_t],
        }
        print(
            f"  positions={positions}: peer {peer_med:.2f} s, ours {our_med:.2f} s, "
            f"{peer_med / our_med:.1f} x, max |diff| {diff:.1e}",
            flush=True,
        )
    return out


def bench_generation(
    model: Model, prompts: list[str], d: SteeringDirection, repeats: int, n_new: int = 32
) -> dict[str, Any]:
    kw = dict(max_new_tokens=n_new, stop_at_eos=False)
    steered_t, plain_t, tl_t = [], [], []
    interp.steering.generate(model, prompts, d, alpha=2.0, **kw)  # warm-up
    for _ in range(repeats):
        with stopwatch() as a:
            interp.steering.generate(model, prompts, None, **kw)
        with stopwatch() as b:
            interp.steering.generate(model, prompts, d, alpha=2.0, **kw)
        with stopwatch() as c, torch.inference_mode():
            for p in prompts:  # TransformerLens' own loop, one prompt at a time as ours batches
                model.tl.generate(
                    p,
                    max_new_tokens=n_new,
                    do_sample=False,
                    verbose=False,
                    stop_at_eos=False,
                    use_past_kv_cache=True,
                )
        plain_t.append(a.wall_s)
        steered_t.append(b.wall_s)
        tl_t.append(c.wall_s)
    plain, steered = statistics.median(plain_t), statistics.median(steered_t)
    return {
        "prompts": len(prompts),
        "new_tokens": n_new,
        "plain_s": plain,
        "steered_s": steered,
        "transformer_lens_generate_s": statistics.median(tl_t),
        "overhead": steered / plain - 1.0,
        "target": TARGET_OVERHEAD,
        "met": steered / plain - 1.0 <= TARGET_OVERHEAD,
        "plain_runs_s": plain_t,
        "steered_runs_s": steered_t,
    }


def organism(repeats: int) -> dict[str, Any]:
    model = interp.load_model("organism")
    train = interp.tasks.facts(model, n=256, seed=1, kind="statements", split="train")
    task = interp.tasks.facts(model, n=64, seed=2, kind="statements", split="eval")
    dirs = [interp.steering.direction(model, train, at="resid_pre", layer=l) for l in range(4)]
    dirs += [
        interp.steering.direction(model, train, at="z", head=h)
        for h in ("L3H0", "L3H2", "L3H6", "L2H1")
    ]
    neutral = interp.steering.neutral_prompts(model, n=32, exclude="facts")
    print("organism", flush=True)
    return {
        "model": "organism",
        "task": "facts statements (64 held-out; false ones steered towards ' true')",
        "directions": [d.label for d in dirs],
        "neutral_texts": len(neutral),
        "evaluate": bench_evaluate(model, task, dirs, neutral, None, repeats),
        "generation": bench_generation(model, task.clean_prompts[:8], dirs[3], repeats),
    }


def smollm2(repeats: int) -> dict[str, Any]:
    model = interp.load_model("smollm2")
    dirs = [
        interp.steering.direction(model, PAIRS, at="resid_post", layer=l, positions="mean")
        for l in range(3, 27, 3)
    ]
    print("smollm2", flush=True)
    return {
        "model": "smollm2",
        "task": f"{len(SENTIMENT_PROMPTS)} neutral prompts towards {len(POS)} positive words",
        "directions": [d.label for d in dirs],
        "neutral_texts": len(OTHER_TEXT),
        "evaluate": bench_evaluate(model, SENTIMENT_PROMPTS, dirs, OTHER_TEXT, (POS, NEG), repeats),
        "generation": bench_generation(model, SENTIMENT_PROMPTS[:4], dirs[2], repeats),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smollm2", action="store_true", help="SmolLM2 only (merged into the JSON)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    entry = smollm2(args.repeats) if args.smollm2 else organism(args.repeats)
    out = {**old, "machine": machine_info(), entry["model"]: entry}
    write_json_atomic(RESULTS, out)
    print(json.dumps({k: v for k, v in entry.items() if k != "directions"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
