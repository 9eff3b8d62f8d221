"""Probe results: metrics per layer (or head) with intervals, directions, and 2-D projections.

``values`` has a trailing ``metric`` axis (accuracy, f1, auroc, control_accuracy, selectivity; r2
for ridge; method accuracies for CCS), so ``to_dataframe()`` has ``layer`` (and ``head``),
``metric``, ``value``, ``ci_low``, ``ci_high``. `ProbeResult.directions` holds one unit vector per
layer/head in the raw activation space, `ProbeResult.projection` each example's coordinates on
(probe direction, top orthogonal principal component).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from torch import Tensor

from interp.checks import checked
from interp.errors import InterpError
from interp.results.base import RankBy, Result

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from interp.nodes import HeadLike

#: The unit axis of a probe sweep: one probe per layer, or one per attention head.
Over = Literal["layers", "heads"]


@dataclass(frozen=True)
class Direction:
    """A probe direction, ready for steering and projection plots."""

    vector: Tensor  # unit norm, raw activation space
    layer: int
    head: int | None
    hook: str
    probe: str
    sign: str  # what a positive projection means

    def project(self, acts: Tensor) -> Tensor:
        """Projection of activations ``[..., d]`` on the direction."""
        if acts.shape[-1] != self.vector.shape[0]:
            raise InterpError(
                f"Activations have width {acts.shape[-1]}, the direction {self.vector.shape[0]}."
            )
        return acts.to(self.vector.dtype) @ self.vector


@checked  # its Literal fields (over) are checked when a result is built or loaded
@dataclass(kw_only=True, repr=False)  # Result.__repr__ stays
class ProbeResult(Result):
    """A probe sweep: metrics per unit (``values``), and what the probes learned and saw.

    Attributes:
        probe: ``"logistic"``, ``"mass_mean"``, ``"ridge"`` or ``"ccs"``.
        over: the unit axis, ``"layers"`` or ``"heads"``.
        positions: where each example was read (``"last"`` or a position).
        split: the held-out split or k-fold protocol (kind, sizes, seed).
        control: how the control task's labels were drawn (None for CCS).
        n_examples: examples probed.
        class_balance: fraction of label 1 (None for continuous targets).
        hooks: the hook each layer coordinate was read from.
        direction_sign: what a positive projection on a direction means.
        jump_layer, plateau_layer, best_layer: where the main metric first jumps, plateaus and
            peaks (layer sweeps only).
        contrast, distractor, ccs_loss: CCS only: the two completions, the distractor words,
            and CCS's training loss per unit.
        directions: ``[layer, (head,) d]`` unit directions in the raw activation space.
        projection: ``[layer, (head,) example, 2]`` coordinates on (direction, top orthogonal
            principal component).
        example_labels: ``[example]`` the labels (or targets) probed.
        eval_index: the evaluated examples, in the order their out-of-fold scores were pooled.
    """

    kind: ClassVar[str] = "probe"
    #: Keys the earlier sweep wrote to meta even when None (ridge's class_balance; CCS's
    #: control and distractor).
    legacy_always: ClassVar[tuple[str, ...]] = ("class_balance", "control", "distractor")
    rank_by: ClassVar[RankBy] = "desc"
    # `labels` is the base's display labels per axis: the probed labels got their own name.
    legacy_names: ClassVar[dict[str, str]] = {"labels": "example_labels"}

    probe: str = "logistic"
    over: Over = "layers"
    positions: str | int | list[int] | None = "last"
    split: dict[str, Any] = field(default_factory=dict)
    control: str | None = None
    n_examples: int = 0
    class_balance: float | None = None
    hooks: list[str] = field(default_factory=list)
    direction_sign: str = ""
    jump_layer: int | None = None
    plateau_layer: int | None = None
    best_layer: int | None = None
    contrast: list[str] | None = None
    distractor: list[str] | None = None
    ccs_loss: list[float] | None = None
    directions: Tensor | None = None
    projection: Tensor | None = None
    example_labels: Tensor | None = None
    eval_index: Tensor | None = None

    @property
    def main_metric(self) -> str:
        return str(self.coords["metric"][0])

    def metric(self, name: str) -> Tensor:
        """One metric over layers (or layers x heads)."""
        return self.sel(metric=name)

    def unit(self, layer: int | HeadLike, head: int | None = None) -> tuple[int, int | None]:
        """(layer index, head) of a unit: ``(3)``, ``(2, 5)``, ``("L2H5")`` or a head Node."""
        if not isinstance(layer, int):
            from interp.nodes import as_head  # results stay importable before the models

            node = as_head(layer)
            if head is not None:
                raise InterpError(f"Give the head once: {layer!r} names it already.")
            layer, head = node.layer, node.head
        if (head is None) != (self.over == "layers"):
            raise InterpError(
                "This result probes heads: give layer and head."
                if self.over == "heads"
                else "This result probes layers: give only the layer."
            )
        try:
            li = self.coords["layer"].index(layer)
        except ValueError:
            raise InterpError(f"layer {layer} not in {self.coords['layer']}.") from None
        return li, head

    def direction(self, layer: int | HeadLike, head: int | None = None) -> Direction:
        """The unit direction of the probe at `layer` (and `head` for head sweeps); a head can
        also be given as ``"L2H3"``, ``(2, 3)`` or a Node."""
        li, head = self.unit(layer, head)
        if self.directions is None:
            raise InterpError("This result holds no probe directions.")
        vec = self.directions[li] if head is None else self.directions[li, head]
        return Direction(
            vector=vec.clone(),
            layer=int(self.coords["layer"][li]),
            head=head,
            hook=self.hooks[li] if li < len(self.hooks) else "",
            probe=self.probe,
            sign=self.direction_sign,
        )

    def steering_direction(self, layer: int | HeadLike, head: int | None = None) -> Any:
        """The probe direction at `layer` (and `head`) as a `SteeringDirection` (sigma = the
        spread of the probed examples along it), ready for `interp.steering.steer`."""
        from interp.analyses.steering.vector import SteeringDirection

        return SteeringDirection.from_probe(self, layer, head)

    def plot(self, **kw: Any) -> go.Figure:
        """Layers: the main metric by layer with its band, the control curve and selectivity.
        Heads: a layer x head heatmap of the main metric."""
        from interp.viz.probes import probe_figure

        return probe_figure(self, **kw)

    def plot_projection(
        self, layer: int | HeadLike | None = None, head: int | None = None
    ) -> go.Figure:
        """Examples on (probe direction, top orthogonal PC), coloured by label; default: the best
        layer (or head)."""
        from interp.viz.probes import projection_figure

        return projection_figure(self, layer, head)
