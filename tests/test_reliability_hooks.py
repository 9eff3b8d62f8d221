"""Reliability: every analysis leaves the model as it found it when a run fails or is interrupted.

Issue 18 keeps the standard its survey found (hooks always removed in 39 interrupted or failing
runs); this pins it for every analysis family, with an error and with a KeyboardInterrupt raised
from inside the model's forward pass, and checks the model still computes what it did before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import interp

Call = Callable[[Any, Any, Any], Any]

CALLS: dict[str, Call] = {
    "cache in memory": lambda m, t, p: interp.cache(m, t, names=["z"], progress=False),
    "cache on disk": lambda m, t, p: interp.cache(
        m, t, names=["resid_post"], batch_size=2, store=p, progress=False
    ),
    "direct_logit": lambda m, t, p: interp.attribution.direct_logit(m, t, n_boot=10),
    "logit_lens": lambda m, t, p: interp.attribution.logit_lens(m, t),
    "ablate": lambda m, t, p: interp.attribution.ablate(
        m, t, heads=[[(0, 0)], [(1, 1)]], how="mean", n_boot=10
    ),
    "detect_heads": lambda m, t, p: interp.attribution.detect_heads(m, kind="induction", n=4),
    "activation_patch": lambda m, t, p: interp.patching.activation_patch(
        m, t, target="z", n_boot=10, progress=False
    ),
    "attribution_patch": lambda m, t, p: interp.patching.attribution_patch(
        m, t, n_boot=10, progress=False
    ),
    "path_patch": lambda m, t, p: interp.patching.path_patch(
        m, t, sender=(0, 0), n_boot=10, progress=False
    ),
    "probe sweep": lambda m, t, p: interp.probes.sweep(
        m, interp.tasks.facts(m, n=16, seed=0), n_boot=10, progress=False
    ),
}


def no_hooks_left(model: Any) -> bool:
    return all(not hp.fwd_hooks and not hp.bwd_hooks for hp in model.tl.hook_dict.values())


def count_block_calls(model: Any, monkeypatch: Any, run: Callable[[], Any]) -> int:
    """How many times `run` enters the model's last block (so a failure can target the last)."""
    block = model.tl.blocks[model.n_layers - 1]
    original = block.forward
    calls = {"n": 0}

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(block, "forward", counting)
    run()
    monkeypatch.undo()
    return calls["n"]


@pytest.mark.parametrize(
    ("when", "exc"), [("first", RuntimeError("disk on fire")), ("last", KeyboardInterrupt())]
)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_failure_inside_the_forward_pass_leaves_no_hooks(
    organism: Any, tmp_path: Any, monkeypatch: Any, name: str, when: str, exc: BaseException
) -> None:
    task = interp.tasks.ioi(organism, n=4, seed=0)
    before = organism(task.clean_tokens)
    n_calls = count_block_calls(
        organism, monkeypatch, lambda: CALLS[name](organism, task, tmp_path / "a")
    )
    fail_at = 1 if when == "first" else n_calls
    block = organism.tl.blocks[organism.n_layers - 1]
    original = block.forward
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise exc
        return original(*args, **kwargs)

    monkeypatch.setattr(block, "forward", flaky)
    with pytest.raises(type(exc)):
        CALLS[name](organism, task, tmp_path / "b")
    monkeypatch.undo()
    assert calls["n"] == fail_at  # the failure happened inside the analysis, and stopped it
    assert no_hooks_left(organism)
    assert torch.equal(organism(task.clean_tokens), before)
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def test_a_user_metric_that_raises_leaves_no_hooks(organism: Any) -> None:
    task = interp.tasks.ioi(organism, n=4, seed=0)
    calls = {"n": 0}

    def metric(logits: torch.Tensor, t: Any) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ValueError("bug in my metric")
        return interp.tasks.logit_diff(logits, t)

    for fn in (interp.patching.activation_patch, interp.attribution.ablate):
        calls["n"] = 0
        with pytest.raises(ValueError, match="bug in my metric"):
            fn(organism, task, metric=metric)
        assert no_hooks_left(organism)


def test_a_user_hook_that_raises_leaves_no_hooks(organism: Any) -> None:
    task = interp.tasks.ioi(organism, n=4, seed=0)

    def bad(x: torch.Tensor, hook: Any) -> torch.Tensor:
        raise RuntimeError("my hook")

    with pytest.raises(RuntimeError, match="my hook"):
        organism.run_with_hooks(task.clean_tokens, fwd_hooks=[(organism.hook_name("z", 0), bad)])
    assert no_hooks_left(organism)
