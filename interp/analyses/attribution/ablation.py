"""Head ablations: zero, mean (per template and position) and resample, for single heads or sets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from interp.analyses.attribution.heads import head_axis, is_head, model_heads
from interp.analyses.attribution.summary import averaged
from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.nodes import HeadLike, Node, head_node
from interp.results.attribution import AblationResult
from interp.results.base import Coord
from interp.results.meta import make_meta
from interp.tasks.metrics import Metric, get_metric, metric_name, require_finite, warn_nonfinite
from interp.tasks.task import Task

How = Literal["zero", "mean", "resample"]
HeadSpec = Literal["each"] | Sequence[HeadLike] | Sequence[Sequence[HeadLike]]
ANALYSIS = "ablate"
_HINT = (
    " nor a list of them; give heads=[(layer, head), ...] (one set ablated together), "
    "[[(l, h), ...], [(l, h), ...]] (several sets) or 'each'; a head may also be written "
    "'L3H5' or a Node"
)


def _head_sets(model: Model, heads: HeadSpec) -> list[list[Node]]:
    if heads == "each":
        return [[head_node(l, h)] for l in range(model.n_layers) for h in range(model.n_heads)]
    if isinstance(heads, tuple) and is_head(heads):
        raise InterpError(
            f"heads={heads!r} is one head given as a bare tuple; heads takes a list of "
            f"(layer, head) pairs: pass heads=[{heads!r}] to ablate it alone, or 'each'."
        )
    items = list(heads)
    if not items:
        raise InterpError("heads is empty: give (layer, head) pairs or 'each'.")
    groups: list[Any] = [items] if is_head(items[0]) else items
    for group in groups:
        if not isinstance(group, tuple | list) or not group or not all(map(is_head, group)):
            raise InterpError(f"heads: {group!r} is not a (layer, head) pair{_HINT}.")
    return [model_heads(model, group, _HINT) for group in groups]


def _replacements(
    model: Model, task: Task, how: How, reference: Task | None, seed: int
) -> dict[int, Tensor] | None:
    """Per layer, the z values that replace ablated heads: [batch, pos, head, d_head]."""
    if how == "zero":
        return None
    names = model.hook_names_for("z")
    if how == "resample":
        groups = task.groups or ["all"] * len(task)
        gen = torch.Generator().manual_seed(seed)
        source = torch.arange(len(task))
        for g in set(groups):
            idx = [i for i, x in enumerate(groups) if x == g]
            if len(idx) < 2:
                raise InterpError(f"Resample ablation needs 2+ prompts per template; {g!r} has 1.")
            perm = torch.randperm(len(idx), generator=gen)
            # A derangement: shift the permutation so no prompt receives its own activation.
            src = [idx[int(perm[(j + 1) % len(idx)])] for j in range(len(idx))]
            for j, i in enumerate([idx[int(p)] for p in perm]):
                source[i] = src[j]
        _check_lengths(task, source)
        _, cache = model.run_with_cache(
            task.clean_tokens.to(model.device), names_filter=lambda n: n in names
        )
        return {l: cache[names[l]][source.to(model.device)] for l in range(model.n_layers)}
    ref = reference or task
    _, cache = model.run_with_cache(
        ref.clean_tokens.to(model.device), names_filter=lambda n: n in names
    )
    ref_groups = ref.groups or ["all"] * len(ref)
    groups = task.groups or ["all"] * len(task)
    out = {}
    for l in range(model.n_layers):
        z = cache[names[l]]
        means = {
            g: z[[i for i, x in enumerate(ref_groups) if x == g]].mean(0) for g in set(ref_groups)
        }
        missing = set(groups) - set(means)
        if missing:
            raise InterpError(f"The reference has no prompts of template(s) {sorted(missing)}.")
        if z.shape[1] != task.seq_len:
            raise InterpError(
                "Mean ablation needs the reference prompts to have the task's length."
            )
        out[l] = torch.stack([means[g] for g in groups])
    return out


def _replace_heads(
    repl: dict[int, Tensor] | None, layer: int, heads: list[int]
) -> Callable[[Tensor, object], Tensor]:
    def hook(z: Tensor, hook: object) -> Tensor:
        z = z.clone()
        z[:, :, heads] = 0.0 if repl is None else repl[layer][:, :, heads]
        return z

    return hook


def _check_lengths(task: Task, source: Tensor) -> None:
    if not torch.equal(task.answer_pos, task.answer_pos[source]):
        raise InterpError(
            "Resample ablation swaps activations between prompts of one template; prompts of a "
            "template must share a length (set task.groups to template ids)."
        )


@torch.inference_mode()
@checked
def ablate(
    model: Model,
    task: Task,
    heads: HeadSpec = "each",
    how: How = "mean",
    metric: str | Metric = "logit_diff",
    reference: Task | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> AblationResult:
    """Knock out heads and measure the change in the task metric (ablated - clean).

    Args:
        model: a model with an LM head (every metric reads logits; an encoder without one is
            refused before any forward pass).
        task: prompts, answers and (optionally) template groups; token-id tasks
            (``Task.from_tokens``) work on models without a tokenizer.
        heads: ``"each"`` (every head alone: a layer x head result), a list of heads (one set
            ablated together), or a list of such lists (several sets). A head is written
            ``(layer, head)``, ``"L3H5"``, ``"3.5"`` or as a `Node` (`interp.nodes.as_head`).
        how: ``"zero"`` (z := 0), ``"mean"`` (z := its mean over `reference` prompts of the
            same template, per position; default reference = the task itself) or
            ``"resample"`` (z := z of another random prompt of the same template).
        metric: ``logit_diff`` (default), ``log_prob``, ``prob`` or a callable
            ``(logits, task) -> [batch]``.
        reference: prompts for mean ablation.
        n_boot / seed: bootstrap intervals over prompts; the seed also drives resampling.
    """
    model = load_model(model)
    model.require(ANALYSIS, "attention")
    model.require(ANALYSIS, "logits")
    metric_fn = get_metric(metric)
    sets = _head_sets(model, heads)
    tokens = task.clean_tokens.to(model.device)
    clean = metric_fn(model(tokens), task).float().cpu()
    if clean.shape != (len(task),):
        raise InterpError(f"The metric must return one value per prompt, got {tuple(clean.shape)}.")
    require_finite(clean, "the clean run")
    repl = _replacements(model, task, how, reference, seed)
    effects = []
    for head_set in sets:
        by_layer: dict[int, list[int]] = {}
        for node in head_set:
            assert node.head is not None  # _head_sets gives heads only
            by_layer.setdefault(node.layer, []).append(node.head)

        fwd = [(model.hook_name("z", l), _replace_heads(repl, l, hs)) for l, hs in by_layer.items()]
        ablated = metric_fn(model.run_with_hooks(tokens, fwd_hooks=fwd), task).float().cpu()
        effects.append(ablated - clean)
    per_prompt = torch.stack(effects, dim=1)  # [prompt, set]
    set_names = [" ".join(node.label for node in s) for s in sets]
    warn_nonfinite(per_prompt, "ablated runs", set_names)
    coords: dict[str, list[Coord]]
    if heads == "each":
        per_prompt = per_prompt.reshape(len(task), model.n_layers, model.n_heads)
        dims: tuple[str, ...] = ("layer", "head")
        coords = {"layer": list(range(model.n_layers)), "head": list(range(model.n_heads))}
        labels = {"head": head_axis(model.n_heads)}
    else:
        dims = ("set",)
        coords = {"set": list(set_names)}
        labels = {}
    name = metric_name(metric)
    return averaged(
        AblationResult,
        per_prompt,
        n_boot,
        seed,
        dims=dims,
        coords=coords,
        labels=labels,
        clean_metric=clean,
        clean_metric_mean=float(clean.mean()),
        meta=make_meta(
            model=model,
            task=task,
            metric=name,
            params={
                "how": how,
                "heads": heads
                if isinstance(heads, str)
                else [[[node.layer, node.head] for node in s] for s in sets],
            },
            seed=seed,
            value_label=f"change in {name}",
            description=f"{how.capitalize()} ablation of heads: change in {name} "
            "(ablated - clean).",
        ),
        title=f"{how.capitalize()} ablation of heads ({name})",
    )
