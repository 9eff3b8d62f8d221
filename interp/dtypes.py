"""Floating dtypes by name: the one table of names and aliases (``"half"``, ``"bf16"``) for
model loading (`load_model(dtype=...)`) and activation caches (`interp.cache(dtype=...)`)."""

from __future__ import annotations

from typing import Any

import torch

# The floating types by name (a cache stores only these: an integer type would truncate
# activations, and safetensors has no code for some types).
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}
# Other spellings users write for the same types.
_ALIASES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16"}
_ALIASES |= {"bf16": "bfloat16", "fp64": "float64", "double": "float64"}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float16`` -> ``"float16"``."""
    return str(dtype).removeprefix("torch.")


def float_dtype_name(value: Any) -> str:
    """The canonical name of a floating dtype given as a torch dtype or a name/alias
    (``"half"`` -> ``"float16"``); ``""`` for anything else."""
    if isinstance(value, torch.dtype):
        return dtype_name(value)
    if isinstance(value, str):
        key = value.strip().lower().removeprefix("torch.")
        return _ALIASES.get(key, key)
    return ""
