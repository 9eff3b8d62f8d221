"""Models: loading, and the handle that is the one place interp reaches into TransformerLens.

handle.py   Model: config, hook names, running, final norm + unembedding, tokens
hooks.py    canonical hook names per target and layer; attaching hooks cheaply
loading.py  load_model: organism, smollm2, GGUF, local HF directory, hub name, objects
gguf.py     GGUF files and the SmolLM2 package
"""

from interp.models.handle import Model, ModelInfo
from interp.models.loading import ORGANISM_NAME, load_model, organism_dir

__all__ = ["ORGANISM_NAME", "Model", "ModelInfo", "load_model", "organism_dir"]
