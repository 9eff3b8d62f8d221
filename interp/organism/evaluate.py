"""Acceptance measurements of the organism, taken through the public API on held-out prompts.

Each check returns plain numbers; `ACCEPTANCE` says what they must reach. The same function writes
the model card after training and is re-run by the tests on a small sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from interp.analyses.attribution.detectors import detector_pattern, score_patterns
from interp.models import Model
from interp.nodes import head_label
from interp.tasks.arithmetic import arithmetic
from interp.tasks.facts import ATTRIBUTES, RECALL_TEMPLATES, facts, make_world
from interp.tasks.ioi import ioi
from interp.tasks.metrics import logit_diff
from interp.tasks.task import Task
from interp.tasks.vocab import repeated_tokens

EVAL_SEED = 10_000  # far from any training stream

# name -> (measured key, comparison, threshold)
ACCEPTANCE: dict[str, tuple[str, str, float]] = {
    "induction_loss_ratio": ("induction", "<=", 0.30),
    "induction_best_head_score": ("induction", ">=", 0.5),
    "ioi_fraction_io_over_s": ("ioi", ">=", 0.95),
    "ioi_mean_logit_diff": ("ioi", ">=", 2.0),
    "arithmetic_greedy_accuracy": ("arithmetic", ">=", 0.70),
    "arithmetic_sampled_wrong_fraction_min": ("arithmetic", ">=", 0.20),
    "arithmetic_sampled_wrong_fraction_max": ("arithmetic", "<=", 0.90),
    "facts_recall_accuracy": ("facts", ">=", 0.90),
    "facts_statement_accuracy": ("facts", ">=", 0.90),
}


@torch.inference_mode()
def induction_check(model: Model, n: int = 64, seq_len: int = 20, seed: int = EVAL_SEED) -> dict:
    """Loss on the repeated half vs the first half of ``[BOS, r, r]``, and induction scores."""
    tokens = repeated_tokens(model, n, seq_len, seed).to(model.device)
    names = model.hook_names_for("pattern")
    logits, cache = model.run_with_cache(tokens, names_filter=lambda nm: nm in names)
    logp = logits.log_softmax(-1)[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]
    p0 = len(model.prefix_ids)
    # Predictions of r_2..r_T (first half) and of the whole repeat r_1..r_T (second half).
    first = -logp[:, p0 : p0 + seq_len - 1].mean()
    second = -logp[:, p0 + seq_len - 1 :].mean()
    # The induction detector's own score, on the same forward pass as the losses.
    scores = score_patterns([cache[nm] for nm in names], detector_pattern("induction", p0, seq_len))
    best = int(scores.argmax())
    return {
        "induction_first_half_loss": float(first),
        "induction_second_half_loss": float(second),
        "induction_loss_ratio": float(second / first),
        "induction_best_head_score": float(scores.max()),
        "induction_best_head": head_label(*divmod(best, scores.shape[1])),
    }


@torch.inference_mode()
def ioi_check(model: Model, n: int = 200, seed: int = EVAL_SEED) -> dict:
    task = ioi(model, n=n, seed=seed)
    ld = logit_diff(model(task.clean_tokens.to(model.device)), task)
    return {
        "ioi_fraction_io_over_s": float((ld > 0).float().mean()),
        "ioi_mean_logit_diff": float(ld.mean()),
    }


@torch.inference_mode()
def generate(
    model: Model, task: Task, max_new_tokens: int, temperature: float, seed: int
) -> list[str]:
    """Continuations for every prompt of `task` (same-length prompts), stopping at EOS."""
    torch.manual_seed(seed)
    out = model.generate(
        task.clean_tokens.to(model.device),
        max_new_tokens=max_new_tokens,
        do_sample=temperature > 0,
        temperature=max(temperature, 1e-6),
        stop_at_eos=True,
        eos_token_id=model.tokenizer.eos_token_id,
        verbose=False,
        use_past_kv_cache=True,
    )
    new = out[:, task.clean_tokens.shape[1] :]
    eos = model.tokenizer.eos_token_id
    texts = []
    for row in new.tolist():
        cut = row.index(eos) if eos in row else len(row)
        texts.append(model.tokenizer.decode(row[:cut]))
    return texts


def arithmetic_check(model: Model, n: int = 200, seed: int = EVAL_SEED) -> dict:
    task = arithmetic(model, n=n, seed=seed, digits=3)
    assert task.targets is not None and task.checker is not None
    check: Callable[[str, str], bool] = task.checker
    greedy = generate(model, task, 48, 0.0, seed)
    sampled = generate(model, task, 48, 1.0, seed)
    right_g = [check(g, t) for g, t in zip(greedy, task.targets, strict=True)]
    right_s = [check(s, t) for s, t in zip(sampled, task.targets, strict=True)]
    wrong = 1 - sum(right_s) / n
    return {
        "arithmetic_greedy_accuracy": sum(right_g) / n,
        "arithmetic_sampled_wrong_fraction": wrong,
        "arithmetic_sampled_wrong_fraction_min": wrong,
        "arithmetic_sampled_wrong_fraction_max": wrong,
        "arithmetic_example": f"{task.clean_prompts[0]}{greedy[0]}",
    }


@torch.inference_mode()
def facts_check(model: Model, n: int = 200, seed: int = EVAL_SEED) -> dict:
    world = make_world(0)
    prompts, truths = [], []
    for person in sorted(world):
        for attr in sorted(ATTRIBUTES):
            prompts.append(RECALL_TEMPLATES[attr].format(P=person))
            truths.append(model.to_single_token(" " + world[person][attr]))
    recall = Task.from_prompts(model, clean=prompts, answers=truths)
    logits = model(recall.clean_tokens.to(model.device))
    top = logits[torch.arange(len(recall)), recall.answer_pos].argmax(-1).cpu()
    statements = facts(model, n=n, seed=seed, kind="statements", split="eval")
    ld = logit_diff(model(statements.clean_tokens.to(model.device)), statements)
    return {
        "facts_recall_accuracy": float((top == torch.tensor(truths)).float().mean()),
        "facts_statement_accuracy": float((ld > 0).float().mean()),
    }


def evaluate(model: Model, n: int = 200, seed: int = EVAL_SEED) -> dict[str, Any]:
    """Every acceptance number of the organism on held-out prompts (n per task)."""
    measured: dict[str, Any] = {}
    measured.update(induction_check(model, n=max(8, n // 2), seed=seed))
    measured.update(ioi_check(model, n=n, seed=seed))
    measured.update(arithmetic_check(model, n=n, seed=seed))
    measured.update(facts_check(model, n=n, seed=seed))
    return measured


def acceptance(measured: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each acceptance check with its threshold, measured value and verdict."""
    out = {}
    for key, (task, op, bound) in ACCEPTANCE.items():
        value = float(measured[key])
        ok = value <= bound if op == "<=" else value >= bound
        out[key] = {"task": task, "value": round(value, 4), "need": f"{op} {bound}", "pass": ok}
    return out
