"""The thin model handle every analysis talks to.

`Model` wraps a TransformerLens model (HookedTransformer or TransformerBridge) and answers what
analyses need: config numbers, canonical hook names, running with hooks and caches, the final
norm and unembedding, weights by layer, tokenizer helpers. Analyses never touch the wrapped
model: where a model cannot do what an analysis needs, `require` raises one clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import InterpError
from interp.models import hooks as _hooks
from interp.models.architecture import Architecture
from interp.models.hooks import Hooks
from interp.models.tokens import Tokens

# What an analysis may need from a model, and why a model may lack it.
_NEEDS = {
    "logits": "it reads logits, and {name} has no trained LM head (load a causal LM)",
    "attention": "it reads attention heads, and {name} has no attention heads",
    "hooked": (
        "it runs TransformerLens HookedTransformer internals (starting mid-model, hooking "
        "weights), and {name} is loaded as a TransformerBridge; load a causal LM by name, "
        "local directory or GGUF file so it converts to a HookedTransformer"
    ),
    "tokenizer": (
        "it needs text, and {name} has no tokenizer; give token ids instead "
        "(Task.from_tokens, or a tokens tensor)"
    ),
    "causal": "it needs causal (left-to-right) attention, and {name} is bidirectional",
}


@dataclass(frozen=True)
class ModelInfo:
    """What `interp info` prints: architecture numbers and where the model came from."""

    name: str
    source: str
    backend: str
    n_layers: int
    n_heads: int
    n_key_value_heads: int
    d_model: int
    d_head: int
    d_mlp: int | None
    d_vocab: int
    n_ctx: int
    normalization_type: str | None
    positional_embedding_type: str
    attention: str
    has_lm_head: bool
    has_tokenizer: bool
    n_params: int
    n_hooks: int


class Model(Architecture, Tokens):
    """Thin handle over a TransformerLens model (HookedTransformer or TransformerBridge).

    Attributes:
        tl: the wrapped TransformerLens model, for user code that needs anything not covered
            here (interp's analyses never use it).
        name: a short human-readable model name, recorded in every result's metadata.
        source: where the weights came from (organism directory, local path, GGUF, hub name).
    """

    def __init__(
        self, tl: Any, name: str, source: str, has_lm_head: bool = True, card: dict | None = None
    ) -> None:
        from transformer_lens import HookedTransformer

        self.tl = tl
        self.name = name
        self.source = source
        self.has_lm_head = has_lm_head
        self.card = card or {}
        # The load_model spec string this came from (None for objects): workers reload it.
        self.spec: str | None = None
        # CUDA devices its blocks are split over (load_model(n_devices=...)).
        self.n_devices = 1
        # `state_id()` as loaded from `spec`: a model edited since is not reloaded from it.
        self.loaded_state: str | None = None
        self.backend = (
            "HookedTransformer" if isinstance(tl, HookedTransformer) else "TransformerBridge"
        )
        self.tl.eval()

    def require(self, analysis: str, *needs: str) -> None:
        """Raise one clear error when this model lacks something `analysis` needs.

        needs: any of ``"logits"``, ``"attention"``, ``"hooked"``, ``"tokenizer"``, ``"causal"``.
        """
        # Checked lazily: the patching engine calls this on every forward.
        have: dict[str, Callable[[], bool]] = {
            "logits": lambda: self.has_lm_head,
            "attention": lambda: self.has_attention,
            "hooked": lambda: self.backend == "HookedTransformer",
            "tokenizer": lambda: self.has_tokenizer,
            "causal": lambda: self.is_causal,
        }
        for need in needs:
            if need not in have:
                raise ValueError(f"unknown requirement {need!r}")
            if not have[need]():
                why = _NEEDS[need].format(name=self.name)
                raise InterpError(f"{analysis} cannot run on {self.name}: {why}.")

    @property
    def device(self) -> torch.device:
        return next(self.tl.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.tl.parameters()).dtype

    # ---------------------------------------------------------------- hooks
    @property
    def hook_names(self) -> list[str]:
        """Every hook point name, in the model's registration (roughly forward) order."""
        return list(_hooks.hook_points(self.tl))

    def has_hook(self, name: str) -> bool:
        return name in _hooks.hook_points(self.tl)

    def hook_name(self, target: str, layer: int | None = None) -> str:
        """Canonical hook name of `target` (``"z"``, ``"resid_post"``, ...) at `layer`."""
        if layer is not None and not -self.n_layers <= int(layer) < self.n_layers:
            raise InterpError(
                f"layer={layer} does not exist: {self.name} has layers 0..{self.n_layers - 1}."
            )
        if layer is not None:
            layer = int(layer) % self.n_layers
        return _hooks.hook_name(target, layer)

    def hook_names_for(self, target: str, layers: Sequence[int] | None = None) -> list[str]:
        """`target`'s hook name at every layer (or the given ones)."""
        layers = range(self.n_layers) if layers is None else layers
        return [self.hook_name(target, layer) for layer in layers]

    def residual_names(self) -> list[str]:
        """The residual stream entering block 0, then after every block."""
        return [self.hook_name("resid_pre", 0), *self.hook_names_for("resid_post")]

    def hooked_layers(self) -> set[int]:
        """Layers with a forward hook attached (the caller's or an enclosing block's)."""
        return _hooks.hooked_layers(self.tl)

    def active_hooks(self) -> list[str]:
        """Hook points that carry any hook now (steering, a user's hook, an open `hooks` block)."""
        return _hooks.active_hooks(self.tl)

    @contextmanager
    def hooks(self, fwd_hooks: Hooks = (), bwd_hooks: Hooks = ()) -> Iterator[Model]:
        """Attach hooks for the duration of the block; they are removed even if it raises."""
        with _hooks.attached(self.tl, fwd_hooks, bwd_hooks):
            yield self

    def head_label(self, layer: int, head: int) -> str:
        """``L3H5``, as every result labels heads (interp.nodes.head_label)."""
        from interp.nodes import head_label

        return head_label(layer, head)

    def with_saes(self, saes: Sequence[Any], error_term: bool = True) -> Any:
        """Attach sae-lens SAEs: latents become hook points (``<site>.hook_sae_acts_post``).

        With ``error_term=True`` the model's outputs are unchanged. Works as a statement (detach
        with ``.detach()``) or as ``with model.with_saes([sae]):`` (see interp.sae.attach).
        """
        from interp.models.saes import Attached

        return Attached(self, saes, error_term)

    @property
    def saes(self) -> dict[str, Any]:
        """Hook name -> SAE for every SAE attached to this model."""
        from interp.models.saes import attached_saes

        return attached_saes(self)

    def fingerprint(self) -> str:
        """Cheap identity: name, size and a checksum of the unembedding (caches and SAEs
        trained by interp are matched to their model by it)."""
        import hashlib

        total = float(self.W_U.detach().double().sum())
        ident = f"{self.name}|{self.info().n_params}|{total:.10e}"
        return hashlib.sha256(ident.encode()).hexdigest()

    def state_id(self) -> str:
        """The weights as they are now, cheaply: every parameter's storage, dtype and in-place
        version counter (which any in-place edit bumps). Equal ids mean unchanged weights."""
        import hashlib

        h = hashlib.sha256()
        for i, p in enumerate(self.parameters()):
            h.update(f"{i}:{p.data_ptr()}:{p._version}:{p.dtype}:{p.device}|".encode())
        return h.hexdigest()

    def signature(self) -> str:
        """An identity that survives a change of dtype (an SAE trained on the float32 model fits
        its bfloat16 copy): name, sizes, and the sign pattern of the unembedding's first 64k
        entries (rounding keeps signs; another training run does not)."""
        import hashlib

        signs = (self.W_U.detach().flatten()[: 1 << 16] > 0).cpu().numpy().tobytes()
        ident = f"{self.name}|{self.info().n_params}|{self.d_model}|{self.d_vocab}|".encode()
        return hashlib.sha256(ident + signs).hexdigest()

    # ---------------------------------------------------------------- weights
    @property
    def W_E(self) -> Float[Tensor, "d_vocab d_model"]:
        return self.tl.W_E

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.tl.W_U

    @property
    def b_U(self) -> Float[Tensor, " d_vocab"]:
        b = getattr(self.tl, "b_U", None)
        if b is None:
            return torch.zeros(self.d_vocab_out, device=self.device, dtype=self.dtype)
        return b

    def W_O(self, layer: int) -> Float[Tensor, "head d_head d_model"]:
        return self.attention(layer).W_O

    def b_O(self, layer: int) -> Float[Tensor, " d_model"]:
        b = getattr(self.attention(layer), "b_O", None)
        return torch.zeros(self.d_model, device=self.device) if b is None else b

    def block(self, layer: int) -> Any:
        """Block `layer`'s module (HookedTransformer backend)."""
        self.require("Reading block weights", "hooked")
        return self.tl.blocks[layer]

    def attention(self, layer: int) -> Any:
        """Block `layer`'s attention module (W_Q, W_K, W_V, W_O, biases)."""
        return self.block(layer).attn

    @property
    def final_norm_module(self) -> Any | None:
        """The final norm module, or None for models without normalisation."""
        if self.normalization_type is None:
            return None
        return getattr(self.tl, "ln_final", None)

    def final_norm_params(self) -> tuple[Tensor | None, Tensor | None, bool]:
        """(weight, bias, centres) of the final norm; weight/bias are None when folded away.

        ``centres`` is True for LayerNorm (subtracts the mean), False for RMSNorm and for models
        without a final norm.
        """
        ln = self.final_norm_module
        w = getattr(ln, "w", None)
        b = getattr(ln, "b", None)
        norm = str(self.normalization_type or "")
        return (
            None if w is None else w.detach(),
            None if b is None else b.detach(),
            ln is not None and norm.startswith("LN"),
        )

    @property
    def final_scale_hook(self) -> str | None:
        """The hook holding the final norm's scale per position, or None (no normalisation)."""
        name = _hooks.hook_name("final_scale")
        return name if self.final_norm_module is not None and self.has_hook(name) else None

    # ---------------------------------------------------------------- readout
    def final_norm(self, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """The model's final norm applied afresh (identity for models without one)."""
        ln = self.final_norm_module
        return resid if ln is None else ln(resid)

    def unembed(
        self, resid: Float[Tensor, "... d_model"], soft_cap: bool = True
    ) -> Float[Tensor, "... d_vocab_out"]:
        """Final norm, unembedding and logit soft-capping: how the model's forward ends.

        ``soft_cap=False`` stops before the cap: the logits that are linear in the residual
        stream (what direct logit attribution decomposes).
        """
        self.require("Unembedding", "logits", "hooked")
        logits = self.tl.unembed(self.final_norm(resid))
        cap = self.logit_soft_cap
        return cap * torch.tanh(logits / cap) if soft_cap and cap > 0 else logits

    # ---------------------------------------------------------------- running
    def __call__(self, tokens: Int[Tensor, "batch seq"], **kwargs: Any) -> Tensor:
        self.check_tokens(tokens)
        return self.tl(tokens, **kwargs)

    def forward(
        self,
        x: Tensor,
        start_at_layer: int | None = None,
        stop_at_layer: int | None = None,
        past_kv_cache: Any = None,
    ) -> Tensor:
        """Run blocks ``[start_at_layer, stop_at_layer)``: tokens in when starting at the
        embedding, residual states otherwise; logits out when running to the end."""
        self.require("Running part of the model", "hooked")
        if start_at_layer is None:
            self.check_tokens(x)
        kwargs: dict[str, Any] = {}
        if start_at_layer is not None:
            kwargs["start_at_layer"] = start_at_layer
        if stop_at_layer is not None:
            kwargs["stop_at_layer"] = stop_at_layer
        if past_kv_cache is not None:
            kwargs["past_kv_cache"] = past_kv_cache
        return self.tl(x, **kwargs)

    def kv_cache(self, batch: int) -> Any:
        """An empty TransformerLens key-value cache for `batch` sequences."""
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        return TransformerLensKeyValueCache.init_cache(self.cfg, self.cfg.device, batch)

    def run_with_cache(self, tokens: Int[Tensor, "batch seq"], **kwargs: Any) -> tuple[Any, Any]:
        self.check_tokens(tokens)
        return self.tl.run_with_cache(tokens, **kwargs)

    def run_with_hooks(
        self,
        tokens: Int[Tensor, "batch seq"],
        fwd_hooks: Hooks = (),
        bwd_hooks: Hooks = (),
        **kwargs: Any,
    ) -> Any:
        self.check_tokens(tokens)
        with self.hooks(fwd_hooks, bwd_hooks):
            return self.tl(tokens, **kwargs)

    def activation_cache(self, tensors: dict[str, Tensor]) -> Any:
        """TransformerLens' ActivationCache over `tensors`, bound to this model."""
        from transformer_lens import ActivationCache

        return ActivationCache(tensors, self.tl)

    def generate(self, tokens: Int[Tensor, "batch seq"], **kwargs: Any) -> Tensor:
        """TransformerLens' generate on token ids (returns prompt + continuation ids)."""
        self.require("Generation", "logits", "causal")
        self.check_tokens(tokens, "the prompt")
        return self.tl.generate(tokens, **kwargs)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return self.tl.parameters()

    # ---------------------------------------------------------------- info
    def info(self) -> ModelInfo:
        return ModelInfo(
            name=self.name,
            source=self.source,
            backend=self.backend,
            n_layers=self.n_layers,
            n_heads=self.n_heads,
            n_key_value_heads=self.n_key_value_heads,
            d_model=self.d_model,
            d_head=self.d_head,
            d_mlp=self.d_mlp or None,
            d_vocab=self.d_vocab,
            n_ctx=self.n_ctx,
            normalization_type=self.normalization_type,
            positional_embedding_type=self.positional_embedding_type,
            attention="causal" if self.is_causal else "bidirectional",
            has_lm_head=self.has_lm_head,
            has_tokenizer=self.has_tokenizer,
            n_params=sum(p.numel() for p in self.tl.parameters()),
            n_hooks=len(self.hook_names),
        )

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, {self.backend}, {self.n_layers} layers x {self.n_heads} heads, "
            f"d_model={self.d_model}, source={self.source!r})"
        )
