"""Train an SAE with sae-lens on any model interp holds, offline.

sae-lens's `LanguageModelSAETrainingRunner` does the training; interp gives it the wrapped model
(``override_model``) and an in-memory `datasets.Dataset` of token rows (``override_dataset``;
sae-lens's local ``dataset_path`` goes through its hub validation and fails offline), checks
every setting first, and writes sae-lens's own directory format plus a card.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from interp.analyses.sae.card import card_markdown
from interp.analyses.sae.data import Data, Rows, rows_from
from interp.analyses.sae.load import INTERP_FILE, load
from interp.analyses.sae.quality import measure
from interp.checks import checked
from interp.errors import InterpError
from interp.files import atomic_write_text, normal_mode
from interp.models import load_model
from interp.models.saes import require_hook
from interp.results.meta import versions

if TYPE_CHECKING:
    from sae_lens import SAE

    from interp.models import Model

BUFFER_BATCHES = 8  # the mixing buffer holds this many training batches (shuffling)


def _site(model: Model, hook: str, layer: int | None) -> str:
    site = model.hook_name(hook, layer) if layer is not None or "." not in hook else hook
    require_hook(
        model,
        site,
        f"{model.name} has no hook {site!r}",
        "Give a full hook name or a target with layer= (hook='resid_post', layer=2).",
    )
    return site


def _check_out(out: str | os.PathLike[str] | None, overwrite: bool) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise InterpError(f"{path} exists and is not empty: choose a new out= or overwrite=True.")
    return path


@checked
def train(
    model: Model,
    hook: str,
    data: Data,
    *,
    layer: int | None = None,
    d_sae: int | None = None,
    k: int | None = 32,
    l1: float | None = None,
    training_tokens: int = 1_000_000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    exclude_special: bool = True,
    held_out: float = 0.1,
    n_batches_in_buffer: int | None = None,
    overwrite: bool = False,
    command: str | None = None,
) -> SAE:
    """Train a TopK (``k=``) or ReLU + L1 (``l1=``) SAE on `hook` with sae-lens.

    Args:
        hook: a hook name (``"blocks.2.hook_resid_post"``) or a target with `layer`.
        data: a Task, a list of Tasks, token ids ``[rows, seq]`` or a list of texts; rows are
            right-padded, and padding (and with `exclude_special` BOS/EOS) is left out.
        d_sae: number of latents (default 4 x the hook's width).
        k / l1: TopK's active latents per token, or the L1 coefficient of a ReLU SAE (give
            ``k=None`` with `l1`).
        training_tokens: activations seen in training (rows repeat when the data is smaller).
        batch_size: activations per training step (sae-lens's ``train_batch_size_tokens``).
        held_out: fraction of rows kept out of training to measure the card on.
        out: a directory for sae-lens's files, ``interp_sae.json`` and ``card.md`` (written
            whole or not at all).

    Returns the trained SAE (an sae-lens inference SAE) with its card in ``sae.interp_record``.
    """
    from sae_lens import LanguageModelSAERunnerConfig, LanguageModelSAETrainingRunner, LoggingConfig

    started = time.time()
    model = load_model(model)
    model.require("SAE training", "hooked")
    site = _site(model, hook, layer)
    if (k is None) == (l1 is None):
        raise InterpError("Give exactly one of k= (a TopK SAE) or l1= (ReLU with an L1 penalty).")
    from interp.models.saes import site_width

    width = site_width(model, site)
    if len(width) > 1 and not site.endswith("hook_z"):
        raise InterpError(
            f"{site} holds {list(width)} values per position; SAEs train on one vector per "
            "position (resid_*, attn_out, mlp_out, mlp_post) or on hook_z (heads concatenated)."
        )
    d_in = int(torch.tensor(width).prod()) if len(width) > 1 else int(width[-1])
    reshape = "hook_z" if len(width) > 1 else "none"
    d_sae = d_sae or 4 * d_in
    if k is not None and not 1 <= k <= d_sae:
        raise InterpError(f"k={k} must be between 1 and d_sae={d_sae}.")
    if l1 is not None and not l1 > 0:
        raise InterpError(f"l1={l1} must be positive.")
    if not 0 <= held_out < 1:
        raise InterpError(f"held_out={held_out} must be in [0, 1).")
    path = _check_out(out, overwrite)
    rows = rows_from(model, data, exclude_special)
    train_rows, test_rows = rows.split(held_out, seed)
    context = int(train_rows.tokens.shape[1])
    buffers = n_batches_in_buffer or -(-BUFFER_BATCHES * batch_size // context)
    if buffers * context < batch_size:
        raise InterpError(
            f"The mixing buffer holds n_batches_in_buffer x context = {buffers} x {context} = "
            f"{buffers * context} activations, less than one training batch ({batch_size}); "
            f"raise n_batches_in_buffer to at least {-(-batch_size // context)}."
        )
    if training_tokens < batch_size:
        raise InterpError(
            f"training_tokens={training_tokens} is less than one batch ({batch_size})."
        )
    sae_cfg = _sae_config(d_in, d_sae, k, l1, reshape, str(model.device))
    import datasets

    dataset = datasets.Dataset.from_dict({"input_ids": train_rows.tokens.tolist()})
    cfg = LanguageModelSAERunnerConfig(
        sae=sae_cfg,
        model_name=model.name,
        model_from_pretrained_kwargs={},  # interp loads the model; nothing to pass on
        hook_name=site,
        dataset_path="",
        is_dataset_tokenized=True,
        streaming=False,
        context_size=context,
        prepend_bos=False,  # rows are already what the model reads
        disable_concat_sequences=True,  # one row per sequence, as the model was run
        exclude_special_tokens=train_rows.skip_ids,
        training_tokens=training_tokens,
        train_batch_size_tokens=batch_size,
        store_batch_size_prompts=max(1, min(64, batch_size // context)),
        n_batches_in_buffer=buffers,
        lr=lr,
        seed=seed,
        device=str(model.device),
        logger=LoggingConfig(log_to_wandb=False),
        n_checkpoints=0,
        checkpoint_path=None,
        output_path=None,
        verbose=False,
        n_eval_batches=1,
        eval_batch_size_prompts=min(8, len(train_rows.tokens)),
    )
    # sae-lens draws the initial weights and the buffer's shuffles from torch's global RNG:
    # seeded here, on a forked RNG so the caller's random state is left as it was.
    cuda = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), warnings.catch_warnings(), _quiet_sae_lens():
        torch.manual_seed(seed)
        warnings.filterwarnings("ignore", message=".*(fewer samples|exhausted|copy construct).*")
        runner = LanguageModelSAETrainingRunner(
            cfg, override_model=model.tl, override_dataset=dataset
        )
        trained = runner.run()
    minutes = (time.time() - started) / 60
    with tempfile.TemporaryDirectory() as tmp:
        trained.save_inference_model(tmp)
        sae = load(tmp, device=str(model.device))
    record = _record(model, sae, site, test_rows or train_rows, test_rows is None, command)
    record["training"].update(
        training_tokens=training_tokens, batch_size=batch_size, lr=lr, seed=seed,
        minutes=round(minutes, 2), data=rows.source, rows=len(train_rows.tokens),
        held_out_rows=0 if test_rows is None else len(test_rows.tokens),
    )  # fmt: skip
    sae.__dict__["interp_record"] = record
    if path is not None:
        save(sae, path, overwrite=True)
    return sae


def _sae_config(
    d_in: int, d_sae: int, k: int | None, l1: float | None, reshape: str, dev: str
) -> Any:
    if k is not None:
        from sae_lens.saes.topk_sae import TopKTrainingSAEConfig

        return TopKTrainingSAEConfig(
            d_in=d_in, d_sae=d_sae, k=k, reshape_activations=reshape, device=dev
        )
    from sae_lens.saes.standard_sae import StandardTrainingSAEConfig

    return StandardTrainingSAEConfig(
        d_in=d_in, d_sae=d_sae, l1_coefficient=l1, reshape_activations=reshape, device=dev
    )


class _quiet_sae_lens:
    """sae-lens warns that an overriding model or dataset is not reproducible from its config
    alone: interp records both itself."""

    def __enter__(self) -> None:
        self.logger = logging.getLogger("sae_lens")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)


def _record(
    model: Model, sae: SAE, site: str, rows: Rows, on_training: bool, command: str | None
) -> dict[str, Any]:
    arch = sae.cfg.architecture()
    return {
        "model": model.name,
        "model_fingerprint": model.fingerprint(),
        "model_signature": model.signature(),
        "hook": site,
        "architecture": arch,
        "d_in": int(sae.cfg.d_in),
        "d_sae": int(sae.cfg.d_sae),
        "k": getattr(sae.cfg, "k", None),
        "quality": measure(model, sae, rows),
        "measured_on": "training rows" if on_training else "held-out rows",
        "training": {},
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": {**versions(), "sae-lens": _sae_lens_version()},
    }


def _sae_lens_version() -> str:
    from importlib import metadata

    return metadata.version("sae-lens")


def save(sae: SAE, path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write `sae` in sae-lens's format, plus interp's record and card, whole or not at all."""
    target = Path(path)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise InterpError(f"{target} exists and is not empty: choose another path or overwrite.")
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        sae.save_model(str(stage))
        record = getattr(sae, "interp_record", None)
        if record:
            atomic_write_text(stage / INTERP_FILE, json.dumps(record, indent=1) + "\n")
            atomic_write_text(stage / "card.md", card_markdown(record))
        normal_mode(stage, directory=True)  # mkdtemp and sae-lens write owner-only files
        for file in stage.iterdir():
            normal_mode(file)
        if target.exists():
            shutil.rmtree(target)
        stage.rename(target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return target
