"""Architecture numbers of the model handle, read from the wrapped model's config.

Mixed into `Model` (interp.models.handle): layer, head and width counts, grouped-query
attention, normalisation and positional embedding kinds, and whether attention is causal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_ENCODER_TYPES = {
    "bert",
    "roberta",
    "distilbert",
    "electra",
    "albert",
    "deberta",
    "deberta-v2",
    "xlm-roberta",
    "mpnet",
    "camembert",
    "modernbert",
}


class Architecture:
    """Mixed into `Model`: the numbers and kinds analyses size their work by."""

    tl: Any
    backend: str

    if TYPE_CHECKING:  # defined by Model

        @property
        def hook_names(self) -> list[str]: ...

    # ---------------------------------------------------------------- config
    @property
    def cfg(self) -> Any:
        return self.tl.cfg

    @property
    def n_layers(self) -> int:
        return int(self.cfg.n_layers)

    @property
    def n_heads(self) -> int:
        return int(self.cfg.n_heads)

    @property
    def n_key_value_heads(self) -> int:
        """Key-value heads as hook_k / hook_v hold them: one per query head when the model was
        loaded with ``ungroup_grouped_query_attention`` (TransformerLens repeats them)."""
        kv = getattr(self.cfg, "n_key_value_heads", None)
        if not kv or getattr(self.cfg, "ungroup_grouped_query_attention", False):
            return self.n_heads
        return int(kv)

    @property
    def d_model(self) -> int:
        return int(self.cfg.d_model)

    @property
    def d_head(self) -> int:
        return int(self.cfg.d_head)

    @property
    def d_mlp(self) -> int:
        """MLP width (0 for attention-only models)."""
        return int(getattr(self.cfg, "d_mlp", None) or 0)

    @property
    def d_vocab(self) -> int:
        """Input vocabulary size (valid token ids)."""
        return int(self.cfg.d_vocab)

    @property
    def d_vocab_out(self) -> int:
        """Output vocabulary size (valid answer ids); equals d_vocab for most models."""
        out = getattr(self.cfg, "d_vocab_out", None)
        return int(out) if out and int(out) > 0 else self.d_vocab

    @property
    def n_ctx(self) -> int:
        return int(self.cfg.n_ctx)

    @property
    def normalization_type(self) -> str | None:
        return getattr(self.cfg, "normalization_type", None)

    @property
    def positional_embedding_type(self) -> str:
        return str(getattr(self.cfg, "positional_embedding_type", "standard"))

    @property
    def adds_pos_embed(self) -> bool:
        """Whether learned position embeddings enter the residual stream (shortformer adds
        them to attention inputs only; rotary and ALiBi have none)."""
        return self.positional_embedding_type == "standard"

    @property
    def has_mlp(self) -> bool:
        """False for attention-only models."""
        return not getattr(self.cfg, "attn_only", False)

    @property
    def logit_soft_cap(self) -> float:
        """``cap`` in ``logits = cap * tanh(logits / cap)``; 0 when the model has none."""
        return float(getattr(self.cfg, "output_logits_soft_cap", 0.0) or 0.0)

    @property
    def kv_group(self) -> int:
        """Query heads per key-value head (1 without grouped-query attention)."""
        return self.n_heads // self.n_key_value_heads

    def kv_head(self, head: int) -> int:
        """The key-value head a query head reads (TransformerLens issue #980)."""
        return head // self.kv_group

    @property
    def is_causal(self) -> bool:
        if self.backend == "HookedTransformer":
            return getattr(self.cfg, "attention_dir", "causal") == "causal"
        # The bridge's cfg.attention_dir says "causal" for encoders too; ask the HF config.
        hf_cfg = getattr(getattr(self.tl, "original_model", None), "config", None)
        arch = str(getattr(self.cfg, "architecture", "") or "")
        if hf_cfg is not None and getattr(hf_cfg, "model_type", "") in _ENCODER_TYPES:
            return bool(getattr(hf_cfg, "is_decoder", False))
        return not arch.endswith(("ForMaskedLM", "Model"))

    @property
    def has_attention(self) -> bool:
        return self.n_heads > 0 and any(n.endswith("attn.hook_z") for n in self.hook_names)
