"""`SteeringDirection`: a unit vector at a site, with the spread that gives strengths a unit.

Strengths are in sigma units (ITI's convention, METHODS.md section 9): steering with strength
``alpha`` adds ``alpha * sigma * vector``, where ``sigma`` is the standard deviation of the source
activations projected on the unit vector. So one strength means a comparable push at any site.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.errors import InterpError
from interp.files import atomic_save_tensors, check_readable
from interp.nodes import Node

#: Sites a direction can act on: residual streams and block outputs (width d_model), and an
#: attention head's output ``z`` (width d_head).
SITE_TARGETS = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z")


@dataclass(frozen=True)
class SteeringDirection:
    """A unit direction at one site, ready to steer with.

    Attributes:
        vector: ``[width]`` unit vector (float32, CPU): d_model, or d_head for a head's ``z``.
        site: where it acts (a `Node` without position: ``resid_post:L3`` or ``z:L3H5``).
        sigma: standard deviation of the source activations projected on `vector`; a strength
            ``alpha`` adds ``alpha * sigma * vector``.
        norm: the norm of the raw vector before normalising (the mean difference for CAA,
            the pair difference for ActAdd): ``alpha = c * norm / sigma`` reproduces CAA's
            ``c * v``.
        class_means: mean projection of the positive and of the negative source activations
            (their gap over sigma says how far apart the classes are along the direction).
        method: ``"mean_diff"``, ``"pca"``, ``"probe"``, ``"act_add"``, ``"random"`` ...
        sign: what a positive strength moves towards.
        model: the name of the model it was computed on.
        provenance: task, examples, positions, seed: how it was computed.
    """

    vector: Float[Tensor, " width"]
    site: Node
    sigma: float
    norm: float = 1.0
    class_means: tuple[float, float] = (math.nan, math.nan)
    method: str = "custom"
    sign: str = "positive strength = towards the positive examples"
    model: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        v = self.vector
        if not isinstance(v, Tensor) or v.ndim != 1 or not v.is_floating_point():
            raise InterpError("A steering direction's vector must be a 1-D float tensor.")
        if not bool(torch.isfinite(v).all()) or float(v.norm()) == 0.0:
            raise InterpError(
                "The steering vector is zero or not finite: the two sets of examples it was "
                "computed from have the same mean there; pick another site or other examples."
            )
        if self.site.target not in SITE_TARGETS or self.site.pos is not None:
            raise InterpError(
                f"Cannot steer at {self.site}: sites are {', '.join(SITE_TARGETS)} at a layer "
                "(z at a head), without a position (positions are given when steering)."
            )
        if (self.site.target == "z") != (self.site.head is not None):
            raise InterpError(f"{self.site}: a head is given exactly for target 'z'.")
        if not (math.isfinite(self.sigma) and self.sigma > 0):
            raise InterpError(
                f"sigma={self.sigma}: the source activations do not spread along the direction; "
                "strengths in sigma units need a positive, finite sigma."
            )
        v = v.detach().float().cpu()
        # A vector that is already unit (a saved direction, a negation) is kept bit for bit:
        # dividing by its norm again would move its last bits.
        if abs(float(v.double().norm()) - 1.0) > 1e-6:
            v = v / v.norm()
        object.__setattr__(self, "vector", v.contiguous())

    # ------------------------------------------------------------- use
    @property
    def width(self) -> int:
        return int(self.vector.shape[0])

    @property
    def label(self) -> str:
        """``mean_diff resid_post:L3``: method and site."""
        return f"{self.method} {self.site}"

    @property
    def separation(self) -> float:
        """Gap between the class means along the direction, in sigma units."""
        return (self.class_means[0] - self.class_means[1]) / self.sigma

    def added(self, alpha: float) -> Float[Tensor, " width"]:
        """The vector a strength `alpha` (sigma units) adds: ``alpha * sigma * vector``."""
        return self.vector * (float(alpha) * self.sigma)

    def alpha_for(self, coefficient: float) -> float:
        """The strength in sigma units that adds ``coefficient`` times the raw vector (CAA)."""
        return float(coefficient) * self.norm / self.sigma

    def negated(self) -> SteeringDirection:
        """The same direction pointing the other way (and its sign note saying so)."""
        lo, hi = self.class_means
        return replace(
            self,
            vector=-self.vector,
            class_means=(-lo, -hi),
            sign=f"reversed: {self.sign}",
            method=self.method,
        )

    def random(self, seed: int) -> SteeringDirection:
        """A random unit direction at the same site with the same sigma (so every strength adds
        a vector of the same norm): the control every steering effect is compared with."""
        g = torch.Generator().manual_seed(int(seed))
        v = torch.randn(self.width, generator=g, dtype=torch.float64).float()
        return SteeringDirection(
            vector=v,
            site=self.site,
            sigma=self.sigma,
            norm=self.norm,
            method="random",
            sign="random direction (control)",
            model=self.model,
            provenance={"control_of": self.label, "seed": int(seed)},
        )

    def project(self, acts: Float[Tensor, "... width"]) -> Float[Tensor, "..."]:
        """Projection of activations on the unit vector."""
        if acts.shape[-1] != self.width:
            raise InterpError(
                f"Activations have width {acts.shape[-1]}, the direction {self.width}."
            )
        return acts.float() @ self.vector.to(acts.device)

    def check(self, model: Any) -> None:
        """Refuse to steer `model` with a direction of another width, site or model."""
        if self.model and getattr(model, "name", self.model) != self.model:
            raise InterpError(
                f"This direction was computed on {self.model!r}, not {model.name!r}: compute it "
                "on the model you steer (interp.steering.direction(model, ...))."
            )
        L = model.n_layers
        if not 0 <= self.site.layer < L:
            raise InterpError(f"{self.site} does not exist: {model.name} has layers 0..{L - 1}.")
        if self.site.head is not None and not 0 <= self.site.head < model.n_heads:
            raise InterpError(
                f"{self.site} does not exist: {model.name} has heads 0..{model.n_heads - 1}."
            )
        width = model.d_head if self.site.target == "z" else model.d_model
        if self.width != width:
            raise InterpError(
                f"The direction has width {self.width} but {self.site} of {model.name} has "
                f"width {width}: it comes from another model or another site."
            )

    def __repr__(self) -> str:
        return (
            f"SteeringDirection({self.label}, sigma={self.sigma:.4g}, "
            f"separation={self.separation:.3g} sigma, model={self.model!r})"
        )

    @classmethod
    def from_probe(cls, result: Any, layer: Any, head: int | None = None) -> SteeringDirection:
        """The direction a probe sweep learned at `layer` (and `head`), with sigma the spread
        of the probed examples' projections on it (`ProbeResult.steering_direction`)."""
        from interp.models.hooks import layer_of, short_form

        li, h = result.unit(layer, head)
        probe_dir = result.direction(layer, head)
        if result.projection is None:
            raise InterpError("This probe result holds no projections to take sigma from.")
        proj = result.projection[li] if h is None else result.projection[li, h]
        along = proj[:, 0].double()
        hook = probe_dir.hook
        site_layer = layer_of(hook)
        if site_layer is None:
            raise InterpError(f"Cannot steer at {hook!r}: it is not inside a block.")
        means: tuple[float, float] = (math.nan, math.nan)
        y = result.example_labels
        if y is not None and len(y) == len(along) and set(y.tolist()) <= {0, 1}:
            means = (float(along[y == 1].mean()), float(along[y == 0].mean()))
        return cls(
            vector=probe_dir.vector,
            site=Node(short_form(hook), site_layer, h),
            sigma=float(along.std()),
            method=f"probe:{result.probe}",
            sign=probe_dir.sign or "positive strength = label 1",
            model=str(result.meta.get("model") or ""),
            class_means=means,
            provenance={"probe": result.probe, "unit": probe_dir.layer, "head": h},
        )

    # ------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> str:
        """Write to directory `path`: one safetensors file whose metadata holds the header, so
        the write has a single commit point (atomic rename)."""
        header = {
            "format": "interp.steering_direction/1",
            "site": str(self.site),
            "sigma": self.sigma,
            "norm": self.norm,
            "class_means": list(self.class_means),
            "method": self.method,
            "sign": self.sign,
            "model": self.model,
            "provenance": self.provenance,
        }
        out = Path(path)
        if out.exists() and not out.is_dir():
            raise InterpError(f"{out} is a file; give a directory to save the direction in.")
        out.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(out / _FILE, {"vector": self.vector}, {"header": json.dumps(header)})
        return os.fspath(out)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SteeringDirection:
        """Read a direction written by `save`."""
        from safetensors import safe_open

        file = Path(path) / _FILE
        check_readable(file, "a saved steering direction", "save one with direction.save(dir)")
        with safe_open(str(file), "pt") as f:
            h = json.loads((f.metadata() or {})["header"])
            vec = f.get_tensor("vector")
        return cls(
            vector=vec,
            site=Node.parse(h["site"]),
            sigma=float(h["sigma"]),
            norm=float(h["norm"]),
            class_means=(float(h["class_means"][0]), float(h["class_means"][1])),
            method=h["method"],
            sign=h["sign"],
            model=h["model"],
            provenance=h["provenance"],
        )


_FILE = "direction.safetensors"
