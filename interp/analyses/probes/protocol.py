"""The probing protocol: the sweep's options, splits, control tasks, curve summary.

The metrics and their bootstrap intervals are `interp.stats` (computed for every unit at once;
the intervals resample the evaluated examples, the held-out set or all examples' out-of-fold
predictions under k-fold, with one shared matrix of resample counts, so a difference such as
selectivity gets its interval from the same resamples).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.activations.capture import Positions
from interp.errors import InterpError
from interp.results.probes import Over


@dataclass(frozen=True)
class SweepOptions:
    """How a sweep reads its examples, splits and resamples them: the same for every probe."""

    over: Over = "layers"
    positions: Positions = "last"
    split: str | int = "holdout"
    test_size: float = 0.25
    n_boot: int = 1000
    seed: int = 0
    batch_size: int = 32
    progress: bool = True


@dataclass(frozen=True)
class Split:
    """Which examples train which fold's probe, and which it is evaluated on."""

    folds: list[tuple[Tensor, Tensor]]  # (train index, test index) per fold
    kind: str  # "holdout" or "kfold"
    description: dict[str, object]

    @property
    def eval_index(self) -> Tensor:
        """Evaluated examples in the order the out-of-fold predictions are concatenated."""
        return torch.cat([te for _, te in self.folds])


def make_split(
    y: Tensor, split: str | int, test_size: float = 0.25, seed: int = 0, stratify: bool = True
) -> Split:
    """``"holdout"`` (stratified, `test_size`) or an int k >= 2 (stratified k-fold)."""
    n = len(y)
    rng = random.Random(seed)
    if stratify:
        strata = [[i for i in range(n) if int(y[i]) == c] for c in sorted(set(y.tolist()))]
    else:
        strata = [list(range(n))]
    for s in strata:
        rng.shuffle(s)
    if split == "holdout":
        if not 0 < test_size < 1:
            raise InterpError(f"test_size must be in (0, 1), got {test_size}.")
        if stratify and min(len(s) for s in strata) < 2:
            raise InterpError(
                "A held-out split needs at least 2 examples of each class (one to train on, "
                "one to test); the smallest class has 1. Give more examples."
            )
        test = sorted(i for s in strata for i in s[: max(1, round(len(s) * test_size))])
        train = sorted(set(range(n)) - set(test))
        if not train:
            raise InterpError(f"{n} examples leave nothing to train on; give more examples.")
        folds = [(torch.tensor(train), torch.tensor(test))]
        desc: dict[str, object] = {
            "kind": "holdout",
            "test_size": test_size,
            "n_train": len(train),
            "n_test": len(test),
            "stratified": stratify,
            "seed": seed,
        }
        return Split(folds, "holdout", desc)
    if isinstance(split, int) and not isinstance(split, bool) and split >= 2:
        k = split
        if stratify and min(len(s) for s in strata) < k:
            raise InterpError(
                f"{k}-fold cross-validation needs at least {k} examples of each class; the "
                f"smallest class has {min(len(s) for s in strata)}. Use fewer folds or 'holdout'."
            )
        fold_of = {}
        for s in strata:
            for j, i in enumerate(s):
                fold_of[i] = j % k
        folds = []
        for f in range(k):
            test = [i for i in range(n) if fold_of[i] == f]
            train = [i for i in range(n) if fold_of[i] != f]
            folds.append((torch.tensor(train), torch.tensor(test)))
        desc = {"kind": "kfold", "k": k, "n": n, "stratified": stratify, "seed": seed}
        return Split(folds, "kfold", desc)
    raise InterpError(f"split={split!r}: use 'holdout' or a number of folds k >= 2.")


def control_labels(y: Tensor, types: Sequence[Hashable] | None, seed: int = 0) -> Tensor:
    """Hewitt & Liang's control task: each input type gets a label drawn once from the empirical
    label distribution; all examples of a type share it. ``types=None`` makes every example its
    own type (a random-label control)."""
    n = len(y)
    keys: Sequence[Hashable] = list(range(n)) if types is None else types
    if len(keys) != n:
        raise InterpError(f"control types has {len(keys)} entries for {n} examples.")
    rng = random.Random(seed)
    pool = y.tolist()
    table: dict[Hashable, object] = {}
    out = []
    for key in keys:
        if key not in table:
            table[key] = rng.choice(pool)
        out.append(table[key])
    return torch.tensor(out, dtype=y.dtype)


# ---------------------------------------------------------------- curve summary


def jump_and_plateau(
    acc: Float[Tensor, " layer"], chance: float = 0.5, tol: float = 0.02
) -> tuple[int, int]:
    """Indices of the layer where accuracy jumps, the first one reaching halfway from `chance`
    to the best accuracy (robust to noise below chance), and where it plateaus, the first one
    within `tol` of the best accuracy."""
    a = acc.double()
    best = float(a.max())
    # Below chance everywhere: the threshold falls back to the best layer itself.
    jump = int((a >= min(best, chance + 0.5 * (best - chance))).nonzero()[0])
    plateau = int((a >= best - tol).nonzero()[0])
    return jump, plateau
