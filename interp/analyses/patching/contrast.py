"""A contrast: clean vs corrupted runs with a mode, the one place that knows which run is which.

``denoise`` runs the corrupted prompts and patches clean activations in (is the component
sufficient?); ``noise`` runs the clean prompts and patches corrupted activations in (is it
necessary?). The run that is patched is the *base*, the run activations come from the *source*.
Scores are normalised by the unpatched runs' metrics (METHODS.md section 3): ``(M_patched -
M_base) / (M_clean - M_corrupt)``, so denoising reads 1 for full recovery and noising -1 for a
fully destroyed behaviour. Exact patching, AtP/AtP* and path patching all go through this type.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch
from torch import Tensor

from interp.analyses.patching.runs import Corruption, Input, inputs
from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model
from interp.results.patching import Mode
from interp.stats import bootstrap_ratio
from interp.tasks.metrics import Metric
from interp.tasks.task import Task

T = TypeVar("T")


@checked
@dataclass(frozen=True)
class Contrast:
    """The clean and corrupted inputs, the mode, and (once measured) each run's metric.

    Attributes:
        clean, corrupt: the two runs' inputs (tokens and the hooks that make the run).
        mode: ``"denoise"`` or ``"noise"``.
        clean_metric, corrupt_metric: the unpatched runs' metric per prompt, on the CPU (None
            until `measured`).
    """

    clean: Input
    corrupt: Input
    mode: Mode = "denoise"
    clean_metric: Tensor | None = None
    corrupt_metric: Tensor | None = None

    @classmethod
    def of(cls, model: Model, task: Task, corruption: Corruption, mode: Mode) -> Contrast:
        """The contrast of `task` under `corruption` (the task's corrupted prompts or noise)."""
        if mode not in ("denoise", "noise"):
            raise InterpError(f"mode={mode!r}: use 'denoise' or 'noise'.")
        clean, corrupt = inputs(model, task, corruption)
        return cls(clean, corrupt, mode)

    def _swap(self, a: T, b: T) -> tuple[T, T]:
        """(clean, corrupt) -> (base, source), and back: the mode's only decision. Denoising
        swaps the pair, noising keeps it, so the same map converts in both directions."""
        return (b, a) if self.mode == "denoise" else (a, b)

    # ----------------------------------------------------------------- runs
    @property
    def base(self) -> Input:
        """The run that is patched."""
        return self._swap(self.clean, self.corrupt)[0]

    @property
    def source(self) -> Input:
        """The run the patched activations come from."""
        return self._swap(self.clean, self.corrupt)[1]

    @property
    def source_is_clean(self) -> bool:
        """Whether the source run is the clean one (then its logits are the KL reference)."""
        return self.source is self.clean

    def reference_logits(self, model: Model, metric: str | Metric) -> Tensor | None:
        """The KL metric's reference (the clean run's logits); other metrics need none."""
        if metric != "kl":
            return None
        with torch.inference_mode(), model.hooks(self.clean.hooks):
            logits: Tensor = model(self.clean.tokens)
        return logits

    # -------------------------------------------------------------- metrics
    def measured(self, base: Tensor, source: Tensor) -> Contrast:
        """This contrast with the unpatched base and source runs' metrics per prompt."""
        clean, corrupt = self._swap(base, source)
        return replace(self, clean_metric=_host(clean), corrupt_metric=_host(corrupt))

    @property
    def metrics(self) -> tuple[Tensor, Tensor]:
        """(clean, corrupted) metric per prompt."""
        if self.clean_metric is None or self.corrupt_metric is None:
            raise InterpError("The contrast's runs are not measured yet (internal error).")
        return self.clean_metric, self.corrupt_metric

    @property
    def base_metric(self) -> Tensor:
        """The unpatched base run's metric per prompt: what a patch that changes nothing gives."""
        return self._swap(*self.metrics)[0]

    @property
    def gap(self) -> Tensor:
        """``M_clean - M_corrupt`` per prompt: the normaliser of every score."""
        clean, corrupt = self.metrics
        return clean - corrupt

    def mean_gap(self) -> Tensor:
        """The mean gap, in float64 (a scalar normaliser for ranking scores)."""
        return self.gap.double().mean()

    def check_gap(self) -> None:
        if abs(float(self.mean_gap())) < 1e-9:
            raise InterpError(
                "The clean and corrupted runs give the same mean metric, so normalised scores "
                "are undefined: the corruption does not change the behaviour. Use a stronger "
                "corruption."
            )

    # --------------------------------------------------------------- scores
    @checked
    def scores(self, per_prompt: Tensor, n_boot: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised scores of patched metrics ``[prompt, ...]`` with bootstrap intervals over
        prompts (the ratio of means, resampled together)."""
        self.check_gap()
        shape = (per_prompt.shape[0],) + (1,) * (per_prompt.ndim - 1)
        return bootstrap_ratio(
            per_prompt - self.base_metric.reshape(shape), self.gap, n_boot=n_boot, seed=seed
        )

    def mean_scores(self, patched_mean: Tensor) -> Tensor:
        """Normalised scores of patched metrics already averaged over prompts (float64)."""
        return (patched_mean - self.base_metric.double().mean()) / self.mean_gap()


def _host(metric: Tensor) -> Tensor:
    # Results carry no graph and live on the CPU; float32 whatever the model's dtype.
    return metric.detach().float().cpu()


def describe_corruption(corruption: Corruption) -> Any:
    """The corruption as recorded in a result's parameters (JSON)."""
    if isinstance(corruption, str):
        return corruption
    pos = corruption.positions
    return {
        "gaussian_noise": {
            "positions": pos.int().tolist() if isinstance(pos, Tensor) else list(pos),
            "scale": corruption.scale,
            "seed": corruption.seed,
        }
    }
