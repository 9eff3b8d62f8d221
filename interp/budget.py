"""The memory budget of stacked forwards (patching, steering): parsed once, one default."""

from __future__ import annotations

from interp.errors import InterpError

__all__ = ["DEFAULT_BUDGET", "parse_budget"]

DEFAULT_BUDGET = 1 << 30  # bytes of activations per stacked forward


def parse_budget(budget: int | str) -> int:
    """``1073741824``, ``"512MiB"``, ``"2GiB"`` -> bytes."""
    if isinstance(budget, int):
        value = budget
    else:
        units = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "b": 1}
        text = budget.strip().lower()
        unit = next((u for u in units if text.endswith(u)), None)
        try:
            value = int(float(text[: -len(unit)] if unit else text) * units.get(unit or "b", 1))
        except ValueError:
            raise InterpError(f"memory_budget={budget!r}: write bytes or e.g. '512MiB'.") from None
    if value <= 0:
        raise InterpError(f"memory_budget must be positive, got {budget!r}.")
    return value
