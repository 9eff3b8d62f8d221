"""Shapes at the public boundary: jaxtyping annotations are enforced by @checked (interp.shapes).

Every public function with a jaxtyping-annotated tensor parameter carries @checked, except the
ones listed in EXEMPT with the reason; a tensor of the wrong shape fails before the body runs,
with a message naming the argument, the expected axes and what was given.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch
from test_reliability_args import FUNCTIONS

import interp
from interp.errors import InterpError
from interp.shapes import shape_params
from interp.stats import roc_auc, spearman
from interp.tasks import logit_diff

#: Public functions whose tensor shapes are checked another way, and why.
EXEMPT = {
    # The model handle runs inside every analysis' loops; it checks token ids and their shape
    # itself (Model.check_tokens) at one device sync per call.
    "Model.",
    # Task checks its tensors in __post_init__ with task-specific messages.
    "Task.__init__",
    # Result constructors are called by the analyses; Result.__post_init__ checks values
    # against dims and intervals against values.
    "Result.__init__",
}

SHAPED = {
    name: fn
    for name, fn in FUNCTIONS.items()
    if shape_params(inspect.unwrap(fn))
    and not any(e in name.rsplit(".", 2)[-2] + "." + name.rsplit(".", 1)[-1] for e in EXEMPT)
    and not name.rsplit(".", 1)[0].endswith("Result")
}


def test_the_walk_finds_the_shaped_functions() -> None:
    short = {n.rsplit(".", 1)[-1] for n in SHAPED}
    assert {"logit_diff", "roc_auc", "ranks", "bootstrap_mean"} <= short


@pytest.mark.parametrize("name", sorted(SHAPED))
def test_every_public_function_with_shaped_tensors_is_checked(name: str) -> None:
    assert getattr(SHAPED[name], "__interp_checked__", False), (
        f"{name} annotates tensor shapes but has no @checked to enforce them"
    )


def test_a_wrong_rank_names_the_argument_and_the_axes(organism: Any) -> None:
    task = interp.tasks.ioi(organism, n=4, seed=0)
    logits = organism(task.clean_tokens)
    torch.testing.assert_close(logit_diff(logits, task), logit_diff(logits.clone(), task))
    with pytest.raises(InterpError, match=r"logit_diff: logits must have axes \[batch seq vocab\]"):
        logit_diff(logits[:, -1], task)


def test_axes_bind_across_arguments() -> None:
    with pytest.raises(
        InterpError, match=r"roc_auc: y must have axes \[m\], with the axes of score"
    ):
        roc_auc(torch.randn(3, 5), torch.ones(4, dtype=torch.long))
    with pytest.raises(InterpError) as err:
        roc_auc(torch.randn(5), torch.ones(6))
    assert "jaxtyping" not in str(err.value) and not getattr(err.value, "__notes__", None)
    # the same call with matching sizes runs, and dtype words are not enforced (labels as float)
    assert 0.0 <= float(roc_auc(torch.randn(3, 5), torch.tensor([0.0, 1, 0, 1, 1]))[0]) <= 1.0
    assert spearman(torch.arange(5.0), torch.arange(5.0)) == pytest.approx(1.0)
