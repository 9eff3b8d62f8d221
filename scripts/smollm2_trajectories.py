"""Latent-trajectory signals on SmolLM2-135M-Instruct: do they tell right answers from wrong?

Samples answers to arithmetic questions (interp.tasks.word_arithmetic, through the model's chat
template), captures every layer's residual stream along each answer, and writes the ROC-AUC of
every signal against correctness beside the confidence baselines and both nulls (shuffled
labels; change signals on a random projection), plus the best-of-n selection table, to JSON.
The numbers in docs/smollm2.md come from:

    .venv/bin/python scripts/smollm2_trajectories.py --n 40 --samples 6 --steps 1 \
        --max-operand 9 --ops plus minus --style digits \
        --instruction " Answer with a number only." --max-new-tokens 16 --chunk 2 \
        --temperature 0.7 --figures out/smollm2

(3.5 minutes of sampling on a quiet 2-core CPU; JSON in
benchmarks/results/smollm2_trajectories.json). Questions in words ("What is seven plus
five?", the default style) are answered right only about 2% of the time by this model.
Sampling resumes from --store when interrupted (prompt by prompt), and stored answers are
judged again by the current checker. Plotly figures (signals, ROC curves, per-layer ROC-AUC)
go beside the JSON as HTML with --figures.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

import torch

import interp
from interp.tasks.word_arithmetic import word_arithmetic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=40, help="questions")
    ap.add_argument("--samples", type=int, default=6, help="sampled answers per question")
    ap.add_argument("--steps", type=int, nargs="+", default=[2], help="operations per question")
    ap.add_argument("--max-operand", type=int, default=12)
    ap.add_argument("--ops", nargs="+", default=["plus", "minus", "times"], help="operations")
    ap.add_argument("--style", choices=["words", "digits"], default="words")
    ap.add_argument("--instruction", default="", help="appended to every question")
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--chunk", type=int, default=4, help="tokens per pooled chunk (k)")
    ap.add_argument("--early", type=int, default=3, help="chunks of the early signals")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", default="out/smollm2_traces", help="trace store (resumable)")
    ap.add_argument("--out", default="benchmarks/results/smollm2_trajectories.json")
    ap.add_argument("--figures", default=None, help="directory for plotly HTML figures")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    start = time.time()
    model = interp.load_model("smollm2", device="cpu")
    task = word_arithmetic(
        model,
        n=args.n,
        seed=args.seed,
        steps=args.steps,
        max_operand=args.max_operand,
        ops=args.ops,
        style=args.style,
        instruction=args.instruction,
    )
    sampled = interp.trajectories.sample(
        model,
        task,
        n=args.samples,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        chunk=args.chunk,
        seed=args.seed,
        store=args.store,
    )
    # Correctness is judged again from the texts, so a store sampled under an older checker
    # is scored by the current one.
    for t in sampled:
        t.correct = task.checker(t.text, task.targets[t.prompt_index])
        t.answer = task.answer_of(t.text)
    sampled_s = round(time.time() - start, 1)
    res = interp.trajectories.evaluate(sampled, task, early=args.early, seed=args.seed)
    traces = res.table
    auroc = res.auroc()
    out = {
        "model": "smollm2 (SmolLM2-135M-Instruct, Q4_1 GGUF dequantised to float32)",
        "command": "scripts/smollm2_trajectories.py "
        + " ".join(
            f"--{k.replace('_', '-')} "
            + (" ".join(map(str, v)) if isinstance(v, list) else shlex.quote(str(v)))
            for k, v in vars(args).items()
            if v is not None
        ),
        "task": {
            "generator": "interp.tasks.word_arithmetic",
            "n": args.n,
            "steps": args.steps,
            "max_operand": args.max_operand,
            "ops": args.ops,
            "style": args.style,
            "instruction": args.instruction,
            "temperature": args.temperature,
            "example_prompt": task.metadata["questions"][0],
        },
        "samples_per_question": args.samples,
        "traces": len(traces),
        "accuracy": float(traces["correct"].mean()),
        "questions_always_right": int(traces.groupby("prompt")["correct"].all().sum()),
        "questions_never_right": int((~traces.groupby("prompt")["correct"].any()).sum()),
        "mean_tokens": float(traces["n_tokens"].mean()),
        "auroc": json.loads(auroc.to_json(orient="records")),
        "selection": json.loads(res.selection.to_json(orient="records")),
        "examples": [
            {
                "question": task.metadata["questions"][t.prompt_index],
                "target": task.targets[t.prompt_index],
                "text": t.text,
                "correct": bool(t.correct),
            }
            for t in sampled[:: max(1, len(sampled) // 16)]
        ],
        "seconds_load_and_sample": sampled_s,
        "seconds": round(time.time() - start, 1),
    }
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(auroc.to_string())
    print(f"accuracy {out['accuracy']:.3f} over {out['traces']} traces; wrote {path}")
    if args.figures:
        fig_dir = Path(args.figures)
        fig_dir.mkdir(parents=True, exist_ok=True)
        res.plot().write_html(fig_dir / "auroc.html", include_plotlyjs=True)
        res.plot_roc().write_html(fig_dir / "roc.html", include_plotlyjs=True)
        res.plot_layers().write_html(fig_dir / "layers.html", include_plotlyjs=True)


if __name__ == "__main__":
    main()
