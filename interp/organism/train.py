"""Train the organism: a small GPT-2 on the four-task mixture, on CPU, then measure and card it."""

from __future__ import annotations

import json
import math
import os
import platform
import random
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from interp.errors import InterpError
from interp.nodes import head_label
from interp.organism.data import ARITH_NOISE, INDUCTION_MAX_LEN, MAX_LEN, MIXTURE, Mixture
from interp.organism.evaluate import ACCEPTANCE, acceptance, evaluate
from interp.organism.vocab import build_tokenizer


@dataclass(frozen=True)
class Recipe:
    """Architecture and schedule. The defaults are stage 1 of data/organism (card: `stages`)."""

    n_layer: int = 4
    n_embd: int = 192
    n_head: int = 8
    steps: int = 8000
    batch_size: int = 64
    lr: float = 2e-3
    warmup: int = 200
    weight_decay: float = 0.01
    seed: int = 0
    eval_every: int = 250
    arith_noise: float = ARITH_NOISE
    induction_gaps: bool = False  # repeats after a random lead and gap (Mixture.induction)
    ioi_orders: str = "both"  # "abba": IOI prompts in the ABBA order only (Mixture.ioi)
    induction_max_len: int = INDUCTION_MAX_LEN  # longest repeated run in induction sequences
    init_from: str | None = None  # continue training an existing organism directory
    mixture: tuple[tuple[str, float], ...] | None = None  # task weights; default data.MIXTURE
    note: str = ""


def _lr_at(step: int, r: Recipe) -> float:
    if step < r.warmup:
        return r.lr * (step + 1) / r.warmup
    frac = (step - r.warmup) / max(1, r.steps - r.warmup)
    return r.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


MONITOR_LEN = 20  # repeat length of the training-time induction check, as on the card


def induction_rows(mix: Mixture, n: int = 32, seq_len: int = MONITOR_LEN) -> torch.Tensor:
    """Fixed ``[bos, r, r]`` sequences of distinct random words (the same every evaluation)."""
    rng = random.Random(12345)
    return torch.tensor(
        [[mix.bos, *(seq * 2)] for seq in (rng.sample(mix.pool, seq_len) for _ in range(n))]
    )


@torch.no_grad()
def best_induction_head(model: Any, rows: torch.Tensor, seq_len: int = MONITOR_LEN) -> dict:
    """The best head's induction score on `rows` (the detector's score, read from the Hugging
    Face model being trained), tracked during training because induction heads form in a phase
    change, or not at all, and another solution (fixed-offset heads) can win instead."""
    from interp.analyses.attribution.detectors import detector_pattern, score_patterns

    was_training = model.training
    model.eval()
    fast = model.config._attn_implementation
    model.set_attn_implementation("eager")  # the fused attention kernels return no patterns
    try:
        attentions = model(input_ids=rows, output_attentions=True).attentions
    finally:
        model.set_attn_implementation(fast)
        model.train(was_training)
    scores = score_patterns(list(attentions), detector_pattern("induction", 1, seq_len))
    best = int(scores.argmax())
    return {
        "induction_head_score": round(float(scores.max()), 4),
        "induction_head": head_label(*divmod(best, scores.shape[1])),
    }


@torch.no_grad()
def _task_losses(model: Any, batches: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> dict:
    model.eval()
    out = {k: float(model(input_ids=i, labels=lab).loss) for k, (i, lab) in batches.items()}
    model.train()
    return out


def train(
    out: str | Path = "data/organism",
    recipe: Recipe | None = None,
    progress: bool = True,
    evaluate_n: int = 200,
    command: str | None = None,
) -> dict[str, Any]:
    """Train, save in Hugging Face format, measure acceptance, and write card.json / card.md.

    The directory is assembled under a temporary name and renamed into place, so an interrupted
    run never leaves a half-written model. Returns the card.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    from interp.models import load_model

    r = recipe or Recipe()
    if r.steps < 1 or r.batch_size < 1:
        raise InterpError(f"steps and batch_size must be positive, got {r.steps}, {r.batch_size}.")
    if r.n_embd % r.n_head:
        raise InterpError(f"n_embd {r.n_embd} must be divisible by n_head {r.n_head}.")
    out = Path(out)
    torch.manual_seed(r.seed)
    tok = build_tokenizer()
    weights = dict(r.mixture) if r.mixture else MIXTURE
    mix = Mixture(
        tok,
        seed=r.seed,
        weights=weights,
        arith_noise=r.arith_noise,
        induction_gaps=r.induction_gaps,
        ioi_orders=r.ioi_orders,
        induction_max_len=r.induction_max_len,
    )
    eval_batches = {k: Mixture(tok, seed=r.seed + 99, weights={k: 1.0}).batch(128) for k in MIXTURE}
    monitor = induction_rows(mix)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=MAX_LEN,
        n_embd=r.n_embd,
        n_layer=r.n_layer,
        n_head=r.n_head,
        n_inner=4 * r.n_embd,
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    previous: dict[str, Any] | None = None
    if r.init_from is not None:
        src = Path(r.init_from)
        if not (src / "config.json").exists():
            raise InterpError(f"--init-from {src}: not a model directory (no config.json).")
        model = GPT2LMHeadModel.from_pretrained(str(src))
        if model.config.vocab_size != len(tok):
            raise InterpError(f"{src} has another vocabulary; it cannot be trained further here.")
        if (src / "card.json").exists():
            previous = json.loads((src / "card.json").read_text())
    else:
        model = GPT2LMHeadModel(cfg)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": r.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=r.lr,
        betas=(0.9, 0.98),
    )
    history: list[dict[str, Any]] = []
    start = time.time()
    bar = tqdm(range(r.steps), desc="train organism", disable=not progress, unit="step")
    first_loss = last_loss = float("nan")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, r)
        parts = mix.batches(r.batch_size)
        n_tokens = sum(int((lab[:, 1:] != -100).sum()) for _, lab in parts)
        loss = torch.zeros(())
        for ids, labels in parts:
            # Token-weighted mean over the whole step, as one padded batch would give.
            n = int((labels[:, 1:] != -100).sum())
            part = model(input_ids=ids, labels=labels).loss * (n / n_tokens)
            part.backward()
            loss = loss + part.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        last_loss = float(loss)
        if step == 0:
            first_loss = last_loss
        if (step + 1) % r.eval_every == 0 or step + 1 == r.steps:
            losses = _task_losses(model, eval_batches)
            heads = best_induction_head(model, monitor)
            history.append({"step": step + 1, "train_loss": last_loss, **losses, **heads})
            bar.set_postfix(loss=f"{last_loss:.3f}")
            tqdm.write(
                f"step {step + 1}: "
                + " ".join(f"{k}={v:.3f}" for k, v in losses.items())
                + f" best induction head {heads['induction_head']} "
                f"{heads['induction_head_score']:.3f}",
                file=sys.stderr,
            )
    train_seconds = time.time() - start

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        model.eval()
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        raw = json.loads((tmp / "config.json").read_text())
        raw["n_ctx"] = MAX_LEN  # TransformerLens' GPT-2 converter reads n_ctx
        (tmp / "config.json").write_text(json.dumps(raw, indent=2))
        handle = load_model(tmp, device="cpu")
        measured = evaluate(handle, n=evaluate_n)
        card = _card(r, handle, measured, history, first_loss, last_loss, train_seconds, command)
        if previous is not None:
            # A continued run: keep every stage, and count the time of all of them.
            stages = previous.get("stages") or [_stage(previous)]
            card["stages"] = [*stages, _stage(card)]
            seconds_all = sum(st["training_seconds"] for st in card["stages"])
            card["training_seconds"] = round(seconds_all, 1)
        (tmp / "card.json").write_text(json.dumps(card, indent=1))
        (tmp / "card.md").write_text(card_markdown(card))
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return card


def _card(
    r: Recipe,
    handle: Any,
    measured: dict[str, Any],
    history: list[dict[str, Any]],
    first_loss: float,
    last_loss: float,
    seconds: float,
    command: str | None,
) -> dict[str, Any]:
    info = asdict(handle.info())
    weights = Path(handle.source) / "model.safetensors"
    return {
        "name": "organism",
        "command": command or "interp train-organism " + shlex.join(sys.argv[2:]),
        "recipe": asdict(r),
        "mixture": dict(r.mixture) if r.mixture else MIXTURE,
        "note": r.note,
        "architecture": {
            k: info[k]
            for k in ("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "d_vocab", "n_ctx")
        },
        "n_params": info["n_params"],
        "weights_mb": round(weights.stat().st_size / 1e6, 2) if weights.exists() else None,
        "training_seconds": round(seconds, 1),
        "first_loss": round(first_loss, 4),
        "final_loss": round(last_loss, 4),
        "history": history,
        "hardware": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        "measured": measured,
        "acceptance": acceptance(measured),
        "all_pass": all(v["pass"] for v in acceptance(measured).values()),
    }


def _stage(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": card["command"],
        "recipe": card["recipe"],
        "mixture": card.get("mixture"),
        "training_seconds": card["training_seconds"],
        "first_loss": card["first_loss"],
        "final_loss": card["final_loss"],
    }


def card_markdown(card: dict[str, Any]) -> str:
    lines = [
        "# The organism: interp's embedded model",
        "",
        "A small GPT-2-architecture model trained from scratch by interp on a synthetic mixture "
        "of induction, indirect object identification, multi-step addition and facts about a "
        "synthetic world, so every analysis has known mechanisms to recover.",
        "",
        f"- command: `{card['command']}`",
        f"- seed: {card['recipe']['seed']}, steps: {card['recipe']['steps']}, batch size: "
        f"{card['recipe']['batch_size']}",
        f"- training time: {card['training_seconds'] / 60:.1f} min on "
        f"{card['hardware']['cpu_count']} CPU cores (torch {card['hardware']['torch']})",
        f"- architecture: {card['architecture']}",
        f"- parameters: {card['n_params']:,}; weights: {card['weights_mb']} MB",
        f"- loss: {card['first_loss']} at step 1 -> {card['final_loss']} at the end",
        "",
    ]
    stages = card.get("stages", [])
    for i, st in enumerate(stages, 1):
        lines.append(
            f"- stage {i}: `{st['command']}` ({st['recipe']['steps']} steps, "
            f"{st['training_seconds'] / 60:.1f} min, loss {st['first_loss']} -> {st['final_loss']})"
        )
    if card.get("note"):
        lines += [*([""] if stages else []), str(card["note"]), ""]
    elif stages:
        lines.append("")
    lines += [
        "## Acceptance (held-out prompts)",
        "",
        "| check | value | needed | pass |",
        "|---|---|---|---|",
    ]
    for key, row in card["acceptance"].items():
        lines.append(
            f"| {key} | {row['value']} | {row['need']} | {'yes' if row['pass'] else 'NO'} |"
        )
    m = card["measured"]
    lines += [
        "",
        f"Best induction head: {m.get('induction_best_head')} "
        f"(score {m.get('induction_best_head_score', float('nan')):.3f}).",
        f"Example greedy arithmetic: `{m.get('arithmetic_example', '')}`",
        "",
    ]
    return "\n".join(lines)


__all__ = ["ACCEPTANCE", "Recipe", "card_markdown", "train"]
