"""Sampling with capture: several answers per prompt, each with its hidden-state trajectory.

Generation uses the model's key-value cache (``model.kv_cache``), one prompt at a time with its
`n` samples on the batch axis. Each generated token is fed back once; hooks on every block's
``hook_resid_post`` read its residual stream there, and running sums pool it into chunks of
`chunk` tokens on the fly, so memory per trace is one chunk accumulator plus the finished chunk
means, never the per-token states. Per token the log-probability (temperature 1), the
top-1/top-2 logit margin and the entropy are kept; the task's checker gives each finished answer
its verdict.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.trajectories.store import TraceStore
from interp.analyses.trajectories.trace import Trace
from interp.checks import checked
from interp.errors import InterpError
from interp.executors import Executor, ExecutorName, Job, executor_for
from interp.models import Model, load_model
from interp.tasks.task import Task

# The sampling defaults, shared with `evaluate` (n, max_new_tokens, chunk, temperature, seed are
# checked by @checked). max_new_tokens=None is derived per call from the task and the model: what
# the context leaves after the longest prompt, at most MAX_NEW_TOKENS. A fixed number fit one
# task on one model only (64 overflowed the organism's 64-token context on its own arithmetic).
DEFAULT_N = 6
DEFAULT_MAX_NEW_TOKENS: int | None = None
MAX_NEW_TOKENS = 48  # the organism's worked 3-digit answers take 20-35 tokens
DEFAULT_TEMPERATURE = 1.0
DEFAULT_CHUNK = 4
DEFAULT_SEED = 0


@checked
def sample(
    model: Model | Any,
    task: Task,
    n: int = DEFAULT_N,
    max_new_tokens: int | None = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = DEFAULT_TEMPERATURE,
    chunk: int = DEFAULT_CHUNK,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
    store: str | Path | None = None,
    executor: ExecutorName | Executor = "local",
) -> list[Trace]:
    """Generate `n` answers per prompt and capture their trajectories.

    Args:
        model: a causal model with an LM head, converted to a HookedTransformer (a model
            without a tokenizer works too: answers are then decoded as ``#id`` labels, and the
            checker sees those).
        task: prompts with ``targets`` and a ``checker`` (e.g. ``interp.tasks.arithmetic``).
        n: samples per prompt (every default here is `evaluate`'s too).
        max_new_tokens: generation stops there or at end-of-text. None: what the model's
            context leaves after the task's longest prompt, at most ``MAX_NEW_TOKENS`` (48);
            a number that does not fit the context is refused with the largest that does.
        temperature: 0 for greedy decoding.
        chunk: tokens per pooled chunk (the signals' `k`).
        seed: seeds the sampler; each prompt draws from its own stream derived from
            ``(seed, prompt index)``, so a resumed run samples the same answers as an
            uninterrupted one.
        store: a directory to write each finished prompt's traces to; a rerun with the same
            directory and settings skips the prompts already there (resume after an
            interruption). Read it back with ``load_traces``.
        executor: where prompts are sampled: ``"local"``, ``"processes"``, ``"ray"`` or an
            `interp.executors` executor. Each prompt's own random stream makes the traces the
            same wherever it runs; finished prompts come back to this process, which writes
            them to `store` (so the store need not be shared with the workers).
    """
    model = load_model(model)
    if task.checker is None or task.targets is None:
        raise InterpError(
            f"Task {task.name!r} has no checker and targets: trajectory analyses need to know "
            "whether each answer is right (use interp.tasks.arithmetic or set task.checker)."
        )
    try:
        model.require("Sampling trajectories", "logits", "causal", "hooked")
    except InterpError as err:
        raise InterpError(f"{err} Score existing traces with text_signals instead.") from None
    max_new_tokens = new_token_budget(model, task, max_new_tokens)
    job = SampleJob(task, n, max_new_tokens, temperature, chunk, seed)
    run_on, own = executor_for(executor)
    try:
        run_on.check(model, job)  # before any forward pass or write
        return _run(model, job, store, run_on, progress)
    finally:
        if own:
            run_on.close()


def _run(
    model: Model, job: SampleJob, store: str | Path | None, run_on: Executor, progress: bool
) -> list[Trace]:
    """Every prompt's traces: read from `store` where finished, else sampled by `run_on`."""
    task = job.task
    disk = None
    if store is not None:
        params = {
            "model": model.name,
            "task": task.name,
            "prompts": _fingerprint(task),
            "n": job.n,
            "max_new_tokens": job.max_new,
            "temperature": job.temperature,
            "chunk": job.chunk,
            "seed": job.seed,
        }
        disk = TraceStore(store, params)
    by_prompt: dict[int, list[Trace]] = {}
    for i in range(len(task)):
        if disk is not None and disk.done(i):
            by_prompt[i] = disk.read(i)
    todo = [i for i in range(len(task)) if i not in by_prompt]
    with tqdm(total=len(task), desc="sample", disable=not progress, unit="prompt") as bar:
        bar.update(len(by_prompt))

        def keep(j: int, new: list[Trace]) -> None:
            if disk is not None:
                disk.write(todo[j], new)
            by_prompt[todo[j]] = new
            bar.update(1)

        run_on.map(model, job, todo, keep)
    return [t for i in range(len(task)) for t in by_prompt[i]]


class SampleJob(Job[int, list[Trace]]):
    """One prompt per unit, sampled from its own random stream (see `_prompt_seed`)."""

    def __init__(
        self, task: Task, n: int, max_new: int, temperature: float, chunk: int, seed: int
    ) -> None:
        super().__init__()
        self.task, self.n, self.max_new = task, n, max_new
        self.temperature, self.chunk, self.seed = temperature, chunk, seed

    def run(self, state: Any, model: Model, unit: int) -> list[Trace]:
        i, task = unit, self.task
        prompt = task.clean_tokens[i, : int(task.answer_pos[i]) + 1]
        gen = torch.Generator().manual_seed(_prompt_seed(self.seed, i))
        return _sample_prompt(
            model, task, i, prompt, self.n, self.max_new, self.temperature, self.chunk, gen
        )


def new_token_budget(model: Model, task: Task, max_new_tokens: int | None) -> int:
    """The tokens each answer may take: `max_new_tokens` checked against the room the model's
    context leaves after the task's longest prompt, or (None) that room, at most MAX_NEW_TOKENS."""
    longest = int(task.answer_pos.max()) + 1
    room = model.n_ctx - longest
    if room < 1:
        raise InterpError(
            f"Prompts of up to {longest} tokens fill {model.name}'s context of {model.n_ctx} "
            "tokens: no room to generate; use shorter prompts."
        )
    if max_new_tokens is None:
        return min(MAX_NEW_TOKENS, room)
    if max_new_tokens > room:
        raise InterpError(
            f"Prompts of up to {longest} tokens plus max_new_tokens={max_new_tokens} exceed "
            f"{model.name}'s context of {model.n_ctx} tokens: use max_new_tokens <= {room} "
            "(or leave it unset to fit the context)."
        )
    return max_new_tokens


def _prompt_seed(seed: int, i: int) -> int:
    # SeedSequence mixes (seed, i) so that neighbouring seeds give unrelated streams.
    return int(np.random.SeedSequence([seed, i]).generate_state(1, np.uint64)[0] >> 1)


def _fingerprint(task: Task) -> str:
    """A short digest of the task's prompts and targets: a store resumes only the same task."""
    h = hashlib.sha256()
    for i in range(len(task)):
        h.update(task.clean_tokens[i, : int(task.answer_pos[i]) + 1].numpy().tobytes())
        h.update(b"|" + (task.targets[i] if task.targets else "").encode() + b"\n")
    return h.hexdigest()[:16]


@torch.inference_mode()
def _sample_prompt(
    model: Model,
    task: Task,
    i: int,
    prompt: Tensor,
    n: int,
    max_new: int,
    temperature: float,
    k: int,
    gen: torch.Generator,
) -> list[Trace]:
    L, d = model.n_layers, model.d_model
    eos = getattr(model.tokenizer, "eos_token_id", None) if model.has_tokenizer else None
    rows = prompt[None].repeat(n, 1).to(model.device)
    cache = model.kv_cache(n)
    logits = model(rows, past_kv_cache=cache, attention_mask=torch.ones_like(rows))[:, -1]
    captured: dict[int, Tensor] = {}

    def grabber(layer: int) -> Any:
        def grab(act: Tensor, hook: Any) -> None:
            captured[layer] = act[:, -1].double()

        return grab

    grabs = [(nm, grabber(l)) for l, nm in enumerate(model.hook_names_for("resid_post"))]
    acc = torch.zeros(n, L, d, dtype=torch.float64)
    count = torch.zeros(n, dtype=torch.long)
    chunks: list[list[Tensor]] = [[] for _ in range(n)]
    tokens: list[list[int]] = [[] for _ in range(n)]
    stats: list[list[tuple[float, float, float]]] = [[] for _ in range(n)]
    done = torch.zeros(n, dtype=torch.bool)
    for _ in range(max_new):
        lg = logits.double().cpu()
        logp = torch.log_softmax(lg, -1)
        if temperature == 0:
            nxt = lg.argmax(-1)
        else:
            probs = torch.softmax(lg / temperature, -1)
            nxt = torch.multinomial(probs, 1, generator=gen)[:, 0]
        top2 = lg.topk(2, dim=-1).values
        ent = -(logp.exp() * logp).sum(-1)
        ended = nxt == eos if eos is not None else torch.zeros(n, dtype=torch.bool)
        live = ~done & ~ended
        for r in live.nonzero()[:, 0].tolist():
            tokens[r].append(int(nxt[r]))
            stats[r].append((float(logp[r, nxt[r]]), float(top2[r, 0] - top2[r, 1]), float(ent[r])))
        done |= ended
        if done.all():
            break
        with model.hooks(grabs):
            # The ids stay on the host: Model.__call__'s range check is then a host op (no
            # device sync per token), and TransformerLens moves them to the model's device.
            logits = model(
                nxt[:, None],
                past_kv_cache=cache,
                attention_mask=torch.ones(n, 1, dtype=torch.long, device=model.device),
            )[:, -1]
        states = torch.stack([captured[l] for l in range(L)], 1).cpu()  # [n, L, d]
        for r in live.nonzero()[:, 0].tolist():
            acc[r] += states[r]
            count[r] += 1
            if count[r] == k:
                chunks[r].append(acc[r] / k)
                acc[r].zero_()
                count[r] = 0
    out = []
    for r in range(n):
        if count[r] > 0:  # the last, shorter chunk
            chunks[r].append(acc[r] / int(count[r]))
        text = model.decode(tokens[r])
        answer = task.answer_of(text) if task.answer_of else " ".join(text.split())
        st = torch.tensor(stats[r], dtype=torch.float64).reshape(-1, 3)
        out.append(
            Trace(
                prompt_index=i,
                sample_index=r,
                tokens=tokens[r],
                text=text,
                logprobs=st[:, 0],
                margins=st[:, 1],
                entropies=st[:, 2],
                chunks=torch.stack(chunks[r]) if chunks[r] else torch.zeros(0, L, d),
                correct=bool(task.checker(text, task.targets[i])),  # type: ignore[misc,index]
                chunk=k,
                answer=answer,
            )
        )
    return out
