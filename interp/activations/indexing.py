"""Translate a tensor index into the examples to read and the index to apply to them.

``stored[idx]`` must equal ``stored.load()[idx]`` for every index torch accepts while reading
only the examples it needs. The index on the first (example) axis becomes a list of row ids;
those rows are read; the same index, with the first-axis part replaced by its equivalent on
the rows read, is applied to the result. Every replacement is of the same kind as what it
replaces (int for int, slice for slice, integer tensor for integer tensor, mask for mask), so
torch's rules for combining indices (axis order of advanced indices, dropped axes) are
unchanged. One extension: slices with a negative step follow Python's sequence rule on the
first axis (torch refuses them).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Plan:
    rows: range | Tensor  # examples to read, in this order (a range reads a contiguous run)
    then: Any  # the index to apply to those rows (see `apply`)


@dataclass(frozen=True)
class _Whole:
    """Read every example, then apply `original` unchanged."""

    original: Any


def _whole(idx: Any, shape: tuple[int, ...], probe: bool = False) -> Plan:
    if probe:
        # An item torch may refuse by its type alone (a str, a float): let torch refuse it on a
        # data-less tensor before every example is read. (Only then: a meta tensor is not a
        # faithful stand-in for every index, e.g. two ellipses.)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            torch.empty(shape, device="meta")[idx]
    return Plan(range(shape[0]), _Whole(idx))


def _is_mask_dtype(x: Tensor | np.ndarray) -> bool:
    # uint8 is a (deprecated) mask to torch, for tensors and numpy arrays alike.
    return x.dtype in (torch.bool, torch.uint8, np.bool_, np.uint8)


def _is_int(x: Any) -> bool:
    if isinstance(x, bool | np.bool_):
        return False
    if isinstance(x, int | np.integer):
        return True
    if isinstance(x, Tensor | np.ndarray) and x.ndim == 0 and not _is_mask_dtype(x):
        return not x.dtype.is_floating_point if isinstance(x, Tensor) else x.dtype.kind in "iu"
    return False


def _as_index_tensor(x: Any) -> Tensor | None:
    """A flat list, numpy array or tensor as a bool or long tensor; None if torch would not
    read it as one advanced index (nested lists are multi-axis indices to torch)."""
    if isinstance(x, list):
        if any(isinstance(v, list | tuple | Tensor | np.ndarray | slice) or v is None for v in x):
            return None
        if x and all(isinstance(v, bool | np.bool_) for v in x):
            return torch.tensor([bool(v) for v in x])
        if all(isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_) for v in x):
            return torch.tensor([int(v) for v in x], dtype=torch.long)
        return None
    if isinstance(x, np.ndarray):
        if _is_mask_dtype(x):
            return _as_index_tensor(torch.from_numpy(x.copy()))  # the tensor rule
        if x.dtype.kind in "iu" or x.size == 0:
            return torch.from_numpy(x.astype(np.int64))
        return None
    if isinstance(x, Tensor):
        if x.dtype in (torch.bool, torch.uint8):  # uint8 is a (deprecated) mask to torch
            return x.bool().cpu()
        if x.dtype in (torch.int64, torch.int32):
            return x.long().cpu()
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    return None


def _dims_used(item: Any) -> int:
    """How many axes of the indexed tensor one index item consumes."""
    if item is None or item is Ellipsis or isinstance(item, bool | np.bool_):
        return 0
    if isinstance(item, Tensor | np.ndarray) and item.ndim == 0:
        return 0 if _is_mask_dtype(item) else 1
    if isinstance(item, Tensor | np.ndarray | list):
        t = _as_index_tensor(item)
        if t is not None and t.dtype == torch.bool:
            return t.ndim
    return 1


def plan(idx: Any, shape: tuple[int, ...]) -> Plan:
    """What to read for ``tensor[idx]`` on a tensor of `shape` (examples first)."""
    n = shape[0]
    items = list(idx) if isinstance(idx, tuple) else [idx]
    p = 0
    while p < len(items) and items[p] is None:
        p += 1  # new axes in front consume no axis
    if p == len(items):
        return _whole(idx, shape)
    item = items[p]
    if item is Ellipsis:
        rest = items[:p] + items[p + 1 :]
        if any(i is Ellipsis for i in rest) or sum(_dims_used(i) for i in rest) != len(shape):
            return _whole(idx, shape)  # the ellipsis spans the example axis (or is refused)
        return plan(tuple(rest), shape)  # an ellipsis spanning no axis changes nothing
    if _is_int(item):
        i = int(item)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of bounds for dimension 0 with size {n}")
        return Plan(range(i % n, i % n + 1), (*items[:p], 0, *items[p + 1 :]))
    if isinstance(item, slice):
        if item.step == 0:
            raise ValueError("slice step cannot be zero")
        return Plan(range(n)[item], (*items[:p], slice(None), *items[p + 1 :]))
    if isinstance(item, Tensor) and item.ndim == 0 and not _is_mask_dtype(item):
        # A 0-d float (or complex) tensor: refused by torch, before anything is read.
        raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
    if isinstance(item, Tensor | np.ndarray) and item.ndim == 0:
        # A 0-d mask: a new axis, like None with a mask; a 0-d numpy float: torch decides.
        return _whole(idx, shape, probe=not _is_mask_dtype(item))
    if not isinstance(item, list | np.ndarray | Tensor):
        return _whole(idx, shape, probe=not isinstance(item, bool))  # torch decides
    index = _as_index_tensor(item)
    if index is None:
        return _whole(idx, shape)
    if index.dtype == torch.bool:
        if index.shape[0] != n:
            raise IndexError(
                f"The shape of the mask {list(index.shape)} at index 0 does not match the shape "
                f"of the indexed tensor {list(shape)} at index 0"
            )
        rows = index.reshape(n, -1).any(1).nonzero()[:, 0]
        return Plan(rows, (*items[:p], index[rows], *items[p + 1 :]))
    bad = index[(index < -n) | (index >= n)]
    if bad.numel():
        # torch checks bounds only while gathering: an index whose result is empty passes.
        try:
            result = torch.empty(shape, device="meta")[idx].shape
        except (IndexError, RuntimeError, NotImplementedError):
            result = torch.Size([1])
        if result.numel() == 0:
            return Plan(range(0), _Empty(tuple(result)))
        raise IndexError(f"index {int(bad[0])} is out of bounds for dimension 0 with size {n}")
    rows, local = torch.unique(index % n, return_inverse=True)  # each example read once
    return Plan(rows, (*items[:p], local, *items[p + 1 :]))


@dataclass(frozen=True)
class _Empty:
    """Nothing to read: the result is empty, of this shape."""

    shape: tuple[int, ...]


def apply(block: Tensor, then: Any) -> Tensor:
    """Index the rows read with the plan's remaining index."""
    if isinstance(then, _Empty):
        return torch.empty(then.shape, dtype=block.dtype)
    return block[then.original] if isinstance(then, _Whole) else block[then]
