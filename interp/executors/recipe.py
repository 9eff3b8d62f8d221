"""How a worker gets its own copy of the driver's model.

A model loaded from a spec (``"organism"``, a path, a GGUF file, a hub name) is loaded again by
each worker from that spec, on the worker's device, and checked against the driver's fingerprint
(a different file behind the same path on another node is refused). A model that cannot be loaded
again (an object passed in, SAEs attached) is pickled and sent once per worker. Hooks attached to
the driver's model (steering, a user's hook) cannot follow it: sweeps with them run locally.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import weakref
from dataclasses import dataclass
from typing import Any

import torch

from interp.errors import InterpError


def versions() -> dict[str, str]:
    """What driver and workers must share for results to match."""
    from importlib.metadata import version

    return {k: version(k) for k in ("interp", "torch", "transformer-lens")}


@dataclass(frozen=True)
class ModelRecipe:
    """A picklable description of the driver's model (see the module docstring)."""

    name: str
    fingerprint: str
    dtype: str
    identity: str  # this exact state of the driver's model: workers are reused only for it
    spec: str | None = None
    payload: bytes | None = None
    n_devices: int = 1

    @classmethod
    def of(cls, model: Any, executor: str) -> ModelRecipe:
        hooked = model.active_hooks()
        if hooked:
            raise InterpError(
                f"executor={executor!r} runs a fresh copy of {model.name} in each worker, and the "
                f"hooks attached to this one ({', '.join(hooked[:3])}"
                f"{', ...' if len(hooked) > 3 else ''}) would not reach it: leave the steering or "
                "hooks block first, or use executor='local'."
            )
        ident = identity(model)
        known = _RECIPES.get(model)
        if known is not None and known.identity == ident:
            return known  # one serialisation per state of the model, however many checks
        dtype = str(model.dtype).removeprefix("torch.")
        fp = model.fingerprint()
        # Reloading from the spec gives the weights as loaded: only for a model left as it was.
        if model.spec is not None and not model.saes and model.state_id() == model.loaded_state:
            recipe = cls(model.name, fp, dtype, ident, spec=model.spec, n_devices=model.n_devices)
            _RECIPES[model] = recipe
            return recipe
        try:
            buf = io.BytesIO()
            torch.save(model, buf)  # read back onto the CPU first (map_location), whatever GPU
            payload = buf.getvalue()
        except Exception as e:
            raise InterpError(
                f"{model.name} cannot be sent to {executor} workers ({type(e).__name__}: {e}). "
                "Load it by name or path with interp.load_model (workers then load it "
                "themselves), or use executor='local'."
            ) from None
        _RECIPES[model] = recipe = cls(model.name, fp, dtype, ident, payload=payload)
        return recipe

    def build(self, device: str | None = None) -> Any:
        """Load the model in a worker (on `device`, default CUDA when the worker has a GPU)."""
        from interp.models import load_model

        if self.payload is not None:
            obj = torch.load(io.BytesIO(self.payload), map_location="cpu", weights_only=False)
            model = load_model(obj, device=device)
        else:
            split = {"n_devices": self.n_devices} if self.n_devices > 1 else {}
            model = load_model(self.spec, device=device, dtype=self.dtype, **split)
        if model.fingerprint() != self.fingerprint:
            raise InterpError(
                f"The worker's {self.name} (loaded from {self.spec!r}) is not the driver's: their "
                "weights differ. Give every node the same model files (a shared path or the same "
                "hub revision), or use executor='local'."
            )
        return model


# The last recipe of each live model: a sweep checks it, then its executor sends it.
_RECIPES: weakref.WeakKeyDictionary[Any, ModelRecipe] = weakref.WeakKeyDictionary()


def identity(model: Any) -> str:
    """This state of the model: its weights as they are now (`Model.state_id`) and the SAEs
    attached to it."""
    from interp.activations.api import model_id

    return hashlib.sha256(f"{model_id(model)}|{model.state_id()}".encode()).hexdigest()


def check_sendable(executor: str, model: Any, *payload: Any) -> ModelRecipe:
    """The model's recipe, after checking that it and `payload` (a job's parts) can be sent."""
    recipe = ModelRecipe.of(model, executor)
    try:
        pickle.dumps(payload)
    except Exception as e:
        raise InterpError(
            f"This sweep cannot be sent to {executor} workers ({type(e).__name__}: {e}); a "
            "lambda or local function (a custom metric, say) must become a module-level "
            "function, or use executor='local'."
        ) from None
    return recipe


def check_versions(worker: dict[str, str], where: str) -> None:
    here = versions()
    diff = {k: (here[k], worker.get(k)) for k in here if worker.get(k) != here[k]}
    if diff:
        parts = ", ".join(f"{k} {a} here vs {b} there" for k, (a, b) in diff.items())
        raise InterpError(
            f"{where} runs other versions ({parts}): install the same versions on every node "
            "(results would not match a local run otherwise)."
        )
