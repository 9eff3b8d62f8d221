"""Model loading and the thin handle every analysis talks to.

`load_model` accepts the embedded organism, a TransformerLens model name, a local Hugging Face
directory, or an existing `HookedTransformer` / `TransformerBridge`. Analyses only use the
`Model` handle: canonical hook names, config numbers, unembedding, final norm and tokenizer helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.errors import InterpError

HookFn = Callable[..., Any]
Hooks = Sequence[tuple[str | Callable[[str], bool], HookFn]]

ORGANISM_NAME = "organism"
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
_LM_HEAD_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForMaskedLM", "ForConditionalGeneration")


def organism_dir() -> Path:
    """Where the embedded organism lives: $INTERP_ORGANISM_DIR, else data/organism in the repo."""
    env = os.environ.get("INTERP_ORGANISM_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "data" / "organism"


def _parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float64": torch.float64,
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if dtype not in table:
        raise InterpError(f"Unknown dtype {dtype!r}; use one of {sorted(table)}.")
    return table[dtype]


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


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
    n_params: int
    n_hooks: int


class Model:
    """Thin handle over a TransformerLens model (HookedTransformer or TransformerBridge).

    Attributes:
        tl: the wrapped TransformerLens model (use it directly for anything not covered here).
        name: a short human-readable model name, recorded in every result's metadata.
        source: where the weights came from (organism directory, local path or hub name).
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
        self.backend = (
            "HookedTransformer" if isinstance(tl, HookedTransformer) else "TransformerBridge"
        )
        self.tl.eval()

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
        kv = getattr(self.cfg, "n_key_value_heads", None)
        return int(kv) if kv else self.n_heads

    @property
    def d_model(self) -> int:
        return int(self.cfg.d_model)

    @property
    def d_head(self) -> int:
        return int(self.cfg.d_head)

    @property
    def d_vocab(self) -> int:
        return int(self.cfg.d_vocab)

    @property
    def n_ctx(self) -> int:
        return int(self.cfg.n_ctx)

    @property
    def normalization_type(self) -> str | None:
        return getattr(self.cfg, "normalization_type", None)

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

    def _special_around(self) -> tuple[list[int], list[int]]:
        """The special tokens the model puts (before, after) a prompt."""
        with_special = [int(t) for t in self.to_tokens("a")[0].tolist()]
        bare = self.tokenizer.encode("a", add_special_tokens=False)
        for i in range(len(with_special) - len(bare) + 1):
            if with_special[i : i + len(bare)] == bare:
                return with_special[:i], with_special[i + len(bare) :]
        return [], []

    @property
    def prefix_ids(self) -> list[int]:
        """Special tokens the model puts before a prompt (BOS for GPT-2, [CLS] for BERT)."""
        return self._special_around()[0]

    @property
    def suffix_ids(self) -> list[int]:
        """Special tokens the model puts after a prompt ([SEP] for BERT, none for GPT-2)."""
        return self._special_around()[1]

    @property
    def device(self) -> torch.device:
        return next(self.tl.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.tl.parameters()).dtype

    @property
    def tokenizer(self) -> Any:
        return self.tl.tokenizer

    @property
    def hook_names(self) -> list[str]:
        """Every hook point name, in the model's registration (roughly forward) order."""
        return list(self.tl.hook_dict.keys())

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.tl.W_U

    @property
    def b_U(self) -> Float[Tensor, " d_vocab"]:
        b = getattr(self.tl, "b_U", None)
        if b is None:
            return torch.zeros(self.d_vocab, device=self.device, dtype=self.dtype)
        return b

    def head_label(self, layer: int, head: int) -> str:
        return f"L{layer}H{head}"

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
            d_mlp=getattr(self.cfg, "d_mlp", None),
            d_vocab=self.d_vocab,
            n_ctx=self.n_ctx,
            normalization_type=self.normalization_type,
            positional_embedding_type=str(getattr(self.cfg, "positional_embedding_type", "")),
            attention="causal" if self.is_causal else "bidirectional",
            has_lm_head=self.has_lm_head,
            n_params=sum(p.numel() for p in self.tl.parameters()),
            n_hooks=len(self.hook_names),
        )

    # ---------------------------------------------------------------- tokens
    def to_tokens(
        self, text: str | Sequence[str], prepend_bos: bool | None = None
    ) -> Int[Tensor, "batch seq"]:
        # Never truncate silently: Task validation must see the real length to reject it.
        return self.tl.to_tokens(text, prepend_bos=prepend_bos, truncate=False)

    def to_str_tokens(self, tokens_or_text: Any) -> list[str]:
        return list(self.tl.to_str_tokens(tokens_or_text))

    def to_single_token(self, word: str) -> int:
        """The id of `word` as one token, or an InterpError that says how it splits."""
        ids = self.tokenizer.encode(word, add_special_tokens=False)
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if ids and unk is not None and ids == [unk] and word.strip() != self.tokenizer.unk_token:
            raise InterpError(
                f"{word!r} is not in {self.name}'s vocabulary (it tokenises to the unknown token "
                f"{self.tokenizer.unk_token!r}); pick a word the tokenizer knows."
            )
        if len(ids) != 1:
            pieces = [self.tokenizer.decode([i]) for i in ids]
            raise InterpError(
                f"Answer {word!r} is {len(ids)} tokens for {self.name} ({pieces}); answers must "
                "be single tokens. Pick another word, or include the leading space the "
                "tokenizer expects (GPT-2 names are ' Mary', not 'Mary')."
            )
        return int(ids[0])

    # ---------------------------------------------------------------- running
    def __call__(self, tokens: Int[Tensor, "batch seq"], **kwargs: Any) -> Tensor:
        return self.tl(tokens, **kwargs)

    def run_with_cache(self, tokens: Int[Tensor, "batch seq"], **kwargs: Any) -> tuple[Any, Any]:
        return self.tl.run_with_cache(tokens, **kwargs)

    def run_with_hooks(
        self,
        tokens: Int[Tensor, "batch seq"],
        fwd_hooks: Hooks = (),
        bwd_hooks: Hooks = (),
        **kwargs: Any,
    ) -> Any:
        with self.hooks(fwd_hooks, bwd_hooks):
            return self.tl(tokens, **kwargs)

    @contextlib.contextmanager
    def hooks(self, fwd_hooks: Hooks = (), bwd_hooks: Hooks = ()) -> Iterator[Model]:
        """Attach hooks for the duration of the block; they are removed even if the block raises.

        Hooks go on at a fresh context level and only that level is removed on exit, so hooks
        the caller attached outside the block (or an enclosing block) stay in place.
        """
        fwd, bwd = list(fwd_hooks), list(bwd_hooks)
        points = getattr(self.tl, "hook_dict", None)
        if bwd or points is None or not all(isinstance(n, str) and n in points for n, _ in fwd):
            # Name filters, backward hooks, other backends: TransformerLens' own context.
            with self.tl.hooks(fwd_hooks=fwd, bwd_hooks=bwd):
                yield self
            return
        # Fast path: TransformerLens' context resets every hook point of the model on exit,
        # which dominates short patched forwards; only the points used here are touched.
        self.tl.context_level += 1
        level = self.tl.context_level
        used = []
        try:
            for name, fn in fwd:
                hp = points[name]
                hp.add_hook(fn, dir="fwd", level=level)
                used.append(hp)
            yield self
        finally:
            for hp in dict.fromkeys(used):
                hp.remove_hooks("fwd", including_permanent=False, level=level)
            self.tl.context_level -= 1

    def __repr__(self) -> str:
        return (
            f"Model({self.name!r}, {self.backend}, {self.n_layers} layers x {self.n_heads} heads, "
            f"d_model={self.d_model}, source={self.source!r})"
        )


# -------------------------------------------------------------------- loading


def load_model(
    spec: Any = ORGANISM_NAME,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> Model:
    """Load a model and return the thin handle the analyses use.

    Args:
        spec: ``"organism"`` (the embedded default model), a TransformerLens model name such as
            ``"gpt2"``, a local Hugging Face model directory, or an existing ``HookedTransformer``,
            ``TransformerBridge`` or ``Model``.
        device: where to put the model; default CUDA when available, else CPU.
        dtype: parameter dtype (``torch.float32`` by default); strings like ``"bfloat16"`` work.
    """
    from transformer_lens import HookedTransformer

    tdtype = _parse_dtype(dtype)
    dev = str(device) if device is not None else None
    if isinstance(spec, Model):
        _move(spec.tl, dev, tdtype)
        return spec
    if isinstance(spec, HookedTransformer) or _is_bridge(spec):
        _move(spec, dev, tdtype)
        name = str(getattr(spec.cfg, "model_name", type(spec).__name__))
        return Model(spec, name=name, source="object")
    if isinstance(spec, Path):
        spec = str(spec)
    if not isinstance(spec, str) or not spec:
        raise InterpError(
            f"Cannot load a model from {spec!r}: pass 'organism', a TransformerLens model name, "
            "a local Hugging Face directory, or a HookedTransformer/TransformerBridge object."
        )
    dev = dev or _default_device()
    # TransformerLens prints progress to stdout; keep stdout clean for `interp info --json`.
    with contextlib.redirect_stdout(sys.stderr):
        return _load_spec(spec, dev, tdtype)


def _load_spec(spec: str, dev: str, tdtype: torch.dtype | None) -> Model:
    if spec == ORGANISM_NAME:
        path = organism_dir()
        if not (path / "config.json").exists():
            raise InterpError(
                f"The embedded organism is not available: {path} has no config.json. Train it "
                "with `interp train-organism --out data/organism`, or pass another model "
                "(a TransformerLens name or a local Hugging Face directory)."
            )
        model = _load_local(path, dev, tdtype, name=ORGANISM_NAME)
        card = path / "card.json"
        if card.exists():
            model.card = json.loads(card.read_text())
        return model
    local = Path(spec).expanduser()
    if local.exists():
        if not (local / "config.json").exists():
            raise InterpError(
                f"{local} exists but is not a Hugging Face model directory (no config.json). "
                "Point at the folder that holds config.json and the weights."
            )
        return _load_local(local, dev, tdtype, name=local.name)
    return _load_hub(spec, dev, tdtype)


def _move(tl: Any, device: str | None, dtype: torch.dtype | None) -> None:
    # HookedTransformer.to takes one positional device-or-dtype, not keywords.
    if device is not None:
        tl.to(device)
    if dtype is not None:
        tl.to(dtype)


def _is_bridge(obj: Any) -> bool:
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:  # pragma: no cover - older TransformerLens
        return False
    return isinstance(obj, TransformerBridge)


def _architectures(path: Path) -> list[str]:
    cfg = json.loads((path / "config.json").read_text())
    return list(cfg.get("architectures") or [])


def _has_lm_head(architectures: list[str]) -> bool:
    return any(a.endswith(_LM_HEAD_SUFFIXES) for a in architectures)


def _load_local(path: Path, device: str, dtype: torch.dtype | None, name: str) -> Model:
    archs = _architectures(path)
    causal = any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)
    if causal:
        try:
            tl = _hooked_from_local(path, device, dtype)
            return Model(tl, name=name, source=str(path), has_lm_head=True)
        except (ValueError, KeyError, NotImplementedError, AttributeError) as err:
            # Architectures HookedTransformer cannot convert still load through the bridge.
            warnings.warn(
                f"HookedTransformer cannot load {path} ({err}); using TransformerBridge.",
                stacklevel=2,
            )
    tl = _bridge_from(str(path), device, dtype)
    return Model(tl, name=name, source=str(path), has_lm_head=_has_lm_head(archs))


def _hooked_from_local(path: Path, device: str, dtype: torch.dtype | None) -> Any:
    """A local HF causal LM as a HookedTransformer, processed exactly as from_pretrained does."""
    raw = json.loads((path / "config.json").read_text())
    if raw.get("model_type") == "gpt2" and "n_ctx" not in raw:
        # transformers 5 no longer writes GPT-2's n_ctx, which TransformerLens' converter reads:
        # load through a view of the directory whose config.json has it.
        with tempfile.TemporaryDirectory(prefix="interp-model-") as view:
            for item in path.iterdir():
                if item.name != "config.json":
                    os.symlink(item.resolve(), Path(view) / item.name)
            raw["n_ctx"] = raw.get("n_positions", 1024)
            (Path(view) / "config.json").write_text(json.dumps(raw))
            return _hooked_from_local(Path(view), device, dtype)

    import transformer_lens.loading_from_pretrained as loading
    from transformer_lens import HookedTransformer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf_model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    cfg = loading.get_pretrained_model_config(
        str(path), fold_ln=True, device=device, dtype=dtype or torch.float32
    )
    state_dict = loading.get_pretrained_state_dict(str(path), cfg, hf_model)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(
        state_dict,
        fold_ln=True,
        center_writing_weights=True,
        center_unembed=True,
        fold_value_biases=True,
    )
    model.to(device)
    del hf_model
    return model


def _bridge_from(name_or_path: str, device: str, dtype: torch.dtype | None) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    kwargs: dict[str, Any] = {"device": device}
    if dtype is not None:
        kwargs["dtype"] = dtype
    bridge = TransformerBridge.boot_transformers(name_or_path, **kwargs)
    bridge.enable_compatibility_mode()
    return bridge


def _load_hub(name: str, device: str, dtype: torch.dtype | None) -> Model:
    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import get_official_model_name

    try:
        try:
            official = get_official_model_name(name)
        except ValueError:
            official = None
        if official is not None:
            tl = HookedTransformer.from_pretrained(official, device=device, dtype=dtype)
            return Model(tl, name=name, source=f"hub:{official}")
        tl = _bridge_from(name, device, dtype)
        return Model(tl, name=name, source=f"hub:{name}")
    except Exception as err:
        if _looks_like_network_error(err):
            raise InterpError(
                f"Could not download {name!r} from the Hugging Face hub ({type(err).__name__}). "
                f"With no network, download it elsewhere (e.g. `huggingface-cli download {name} "
                "--local-dir DIR`), copy DIR here, and pass its path: "
                "interp.load_model('DIR') or `--model DIR`."
            ) from err
        raise


def _looks_like_network_error(err: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = err
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = f"{type(cur).__name__} {cur}".lower()
        markers = (
            "connection",
            "offline",
            "resolve",
            "network",
            "timed out",
            "timeout",
            "huggingface.co",
            "localentrynotfound",
            "couldn't connect",
            "not a valid model identifier",
            "max retries",
            "repository not found",
            "cannot find the requested files",
        )
        if isinstance(cur, OSError | ConnectionError) or any(m in text for m in markers):
            return True
        cur = cur.__cause__ or cur.__context__
    return False
