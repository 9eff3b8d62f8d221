"""Load sae-lens SAEs (a local directory or a registry release) and check they fit a model.

interp writes ``interp_sae.json`` beside sae-lens's files when it trains an SAE: the model's
fingerprint and the SAE card. An SAE carrying one is refused on any other model; third-party SAEs
are matched on their recorded model name and on the hook's width.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.errors import InterpError
from interp.models.saes import check_fits

if TYPE_CHECKING:
    from sae_lens import SAE

    from interp.models import Model

INTERP_FILE = "interp_sae.json"  # interp's record beside sae-lens's cfg.json


def load(
    path_or_release: str | os.PathLike[str],
    sae_id: str | None = None,
    *,
    model: Model | None = None,
    device: str | None = None,
) -> SAE:
    """An sae-lens SAE from a local directory (sae-lens's format) or a registry release.

    Args:
        path_or_release: a directory holding ``cfg.json`` and ``sae_weights.safetensors`` (what
            `interp.sae.train` and sae-lens write), or a release name from sae-lens's registry
            (``"gpt2-small-res-jb"``), which needs `sae_id` and a network.
        sae_id: the SAE within a release (``"blocks.8.hook_resid_pre"``).
        model: when given, the SAE is checked against it (`check_fits`) and moved to its device.
        device: where to load it (default: the model's device, else CPU).
    """
    from sae_lens import SAE

    dev = device or (str(model.device) if model is not None else "cpu")
    path = Path(path_or_release)
    if path.is_dir():
        if not (path / "cfg.json").is_file():
            raise InterpError(
                f"{path} has no cfg.json: it is not an SAE directory in sae-lens's format (a "
                "directory written by interp.sae.train or SAE.save_inference_model)."
            )
        sae = SAE.load_from_disk(str(path), device=dev)
        sae.__dict__["interp_record"] = _record(path)
    else:
        sae = _from_release(str(path_or_release), sae_id, dev)
    if model is not None:
        check_fits(model, sae)
    return sae


def _record(path: Path) -> dict[str, Any]:
    file = path / INTERP_FILE
    return json.loads(file.read_text()) if file.is_file() else {}


def _from_release(release: str, sae_id: str | None, device: str) -> SAE:
    from sae_lens import SAE
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    from interp.models.loading import _looks_like_network_error

    releases = get_pretrained_saes_directory()
    if release not in releases:
        import difflib

        near = difflib.get_close_matches(release, list(releases), n=3)
        hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
        raise InterpError(
            f"{release!r} is neither an SAE directory nor a release in sae-lens's registry.{hint}"
            " Give the path of a directory with cfg.json, or a release name."
        )
    ids = list(releases[release].saes_map)
    if sae_id is None or sae_id not in ids:
        shown = ", ".join(repr(i) for i in ids[:8]) + (" ..." if len(ids) > 8 else "")
        what = "needs sae_id" if sae_id is None else f"has no SAE {sae_id!r}"
        raise InterpError(f"Release {release!r} {what}; its SAEs: {shown}.")
    try:
        return SAE.from_pretrained(release, sae_id, device=device)
    except Exception as err:
        if _looks_like_network_error(err):
            repo = releases[release].repo_id
            raise InterpError(
                f"Could not download SAE {release!r} / {sae_id!r} from the Hugging Face hub "
                f"({type(err).__name__}). With no network, download {repo} elsewhere "
                f"(`huggingface-cli download {repo} --local-dir DIR`), copy the SAE's folder "
                "here and load that directory: interp.sae.load('DIR/<folder>')."
            ) from err
        raise


def shipped_saes() -> dict[str, Path]:
    """The organism's shipped SAEs by name (``L2_resid_post`` ...): data/organism/saes."""
    from interp.models.loading import organism_dir

    root = organism_dir() / "saes"
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "cfg.json").is_file()}
