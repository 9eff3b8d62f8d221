"""Attach sae-lens SAEs to a model: latents become hook points, outputs stay the model's own.

This is model surgery (swapping a hook point for a module), so it lives beside the handle;
`check_fits` refuses an SAE for another hook, width or model before anything is swapped.

While an SAE is attached at ``blocks.2.hook_resid_post``, the module there is a `LatentSite`: a
HookPoint (so hooks on ``blocks.2.hook_resid_post`` still work, and see what flows on) whose
forward runs the SAE and exposes its hook points under the site's name:

    blocks.2.hook_resid_post.hook_sae_input       the activation the SAE reads
    blocks.2.hook_resid_post.hook_sae_acts_pre    latent pre-activations
    blocks.2.hook_resid_post.hook_sae_acts_post   latent activations f(x)      <- "latents"
    blocks.2.hook_resid_post.hook_sae_recons      the reconstruction x_hat
    blocks.2.hook_resid_post.hook_sae_error       x - x_hat (error term only)
    blocks.2.hook_resid_post.hook_sae_output      what flows on

With the error term (METHODS.md section 11) what flows on is ``x + (x_hat' - x_hat) + (e' -
e)``, primes marking values after the caller's hooks: exactly ``x`` when nothing is changed
(not ``x_hat + (x - x_hat)``, which rounds), ``x_hat' + e`` when latents are patched. The SAE
reads a detached ``x`` while ``x`` itself stays in the graph: gradients upstream of the site are
the model's own (the site is the identity, as its output is), and a backward pass gives each
latent its ``dM/df_i`` (the error term held fixed). Without the error term, ``x_hat'`` is spliced
in and gradients go through the SAE, as in the spliced model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from interp.errors import InterpError

if TYPE_CHECKING:
    from sae_lens import SAE

    from interp.models import Model

# Names that refer to the same model (the handle's short name vs sae-lens's model_name).
_ALIASES = {"gpt2": "gpt2-small", "smollm2": "smollm2-135m-instruct"}


def _same_model(a: str, b: str) -> bool:
    def norm(s: str) -> str:
        s = s.lower().rsplit("/", 1)[-1]
        return _ALIASES.get(s, s)

    return norm(a) == norm(b)


# The SAE's own hook points, exposed under the site's name (sae-lens's names).
SAE_HOOKS = ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons")
LATENTS = "hook_sae_acts_post"


def latent_hook(site: str) -> str:
    """The hook name of the latent activations of the SAE attached at `site`."""
    return f"{site}.{LATENTS}"


def site_of(sae: SAE) -> str:
    """The hook name an SAE reads (sae-lens keeps it in ``cfg.metadata.hook_name``)."""
    name = getattr(sae.cfg.metadata, "hook_name", None)
    if not name:
        raise InterpError(
            "This SAE does not say which hook it reads (cfg.metadata.hook_name is empty); set "
            "sae.cfg.metadata.hook_name to the TransformerLens hook name it was trained on."
        )
    return str(name)


@contextlib.contextmanager
def _hooks_off(sae: Any) -> Iterator[None]:
    """Run the SAE's hook points bare (the unchanged reconstruction the error term needs)."""
    saved = []
    for name in SAE_HOOKS:
        hp = getattr(sae, name)
        saved.append((hp, hp._forward_hooks))
        hp._forward_hooks = type(hp._forward_hooks)()
    try:
        yield
    finally:
        for hp, hooks in saved:
            hp._forward_hooks = hooks


class LatentSite(HookPoint):
    """The module at an SAE's hook name while it is attached (see the module docstring)."""

    def __init__(self, original: HookPoint, sae: SAE, error_term: bool) -> None:
        super().__init__()
        # Kept out of the module tree: the SAE's parameters are not the model's, and its hook
        # points are registered once, under this site, below.
        self.__dict__["sae"] = sae
        self.__dict__["original"] = original
        # The model's setup() renames the SAE's hook points under the site; detach restores them.
        self.__dict__["own_names"] = {n: getattr(sae, n).name for n in SAE_HOOKS}
        for name in SAE_HOOKS:
            setattr(self, name, getattr(sae, name))
        self.hook_sae_error = HookPoint()
        self.hook_sae_output = HookPoint()
        self.error_term = error_term

    def _hooked(self) -> bool:
        return any(getattr(self, n)._forward_hooks for n in SAE_HOOKS)

    def forward(self, x: Float[Tensor, "... d"]) -> Float[Tensor, "... d"]:
        sae: Any = self.__dict__["sae"]
        if not self.error_term:
            return self.hook_sae_output(sae.decode(sae.encode(x)).to(x.dtype))
        seen = x.detach()
        x_hat = sae.decode(sae.encode(seen)).to(x.dtype)
        if self._hooked():  # some hook may have changed a latent: the unchanged x_hat
            with torch.no_grad(), _hooks_off(sae):
                plain = sae.decode(sae.encode(seen)).to(x.dtype)
        else:
            plain = x_hat.detach()
        error = seen - plain
        error_out = self.hook_sae_error(error)
        out = x + ((x_hat - plain) + (error_out - error))
        return self.hook_sae_output(out)


def _module_at(tl: Any, name: str) -> tuple[Any, str]:
    parent_path, _, attr = name.rpartition(".")
    parent = tl.get_submodule(parent_path) if parent_path else tl
    return parent, attr


def attached_saes(model: Model) -> dict[str, SAE]:
    """Site -> SAE for every SAE attached to `model`."""
    out = {}
    for name, module in getattr(model.tl, "hook_dict", {}).items():
        if isinstance(module, LatentSite):
            out[name] = module.sae
    return out


def attached_sites(model: Model) -> dict[str, LatentSite]:
    """Site -> the LatentSite module for every SAE attached to `model`."""
    points = getattr(model.tl, "hook_dict", {})
    return {n: m for n, m in points.items() if isinstance(m, LatentSite)}


def sae_identity(site: LatentSite) -> str:
    """What distinguishes the SAE at a site: its size, weight checksums and the error term."""
    sae: Any = site.__dict__["sae"]
    sums = ",".join(f"{float(p.detach().double().sum()):.12e}" for p in sae.parameters())
    return f"{sae.cfg.architecture()}|{sae.cfg.d_sae}|{sums}|error_term={site.error_term}"


def attach(model: Model, sae: SAE, error_term: bool = True) -> str:
    """Attach `sae` at its hook (replacing one already there); returns the site name."""
    model.require("Attaching an SAE", "hooked")
    site = check_fits(model, sae)
    parent, attr = _module_at(model.tl, site)
    current: Any = getattr(parent, attr)
    original: Any = current.original if isinstance(current, LatentSite) else current
    if any(m._forward_hooks or m._backward_hooks for m in (current, original)):
        # Hooks on the site (plain, or an SAE already there) would be silently dropped by the swap.
        raise InterpError(
            f"{site} has hooks attached (steering, patching or your own); attach SAEs before "
            "adding hooks there, or remove them first (model.tl.reset_hooks())."
        )
    if next(sae.parameters()).device != model.device:
        sae.to(model.device)  # where the model's activations are
    site_module = LatentSite(original, sae, error_term)
    setattr(parent, attr, site_module)
    model.tl.setup()
    return site


def detach(model: Model, sites: Sequence[str] | None = None) -> None:
    """Put the plain hook points back (every attached SAE when `sites` is None)."""
    for site in list(attached_saes(model) if sites is None else sites):
        parent, attr = _module_at(model.tl, site)
        current = getattr(parent, attr)
        if isinstance(current, LatentSite):
            setattr(parent, attr, current.original)
            sae: Any = current.__dict__["sae"]
            for name, own in current.__dict__["own_names"].items():
                getattr(sae, name).name = own
    model.tl.setup()


class Attached:
    """SAEs attached to a model: detached by ``.detach()`` or at the end of a ``with`` block.

    ``model.with_saes([sae])`` attaches at once, so it works both as a statement (the SAEs stay
    until ``.detach()``) and as a context manager (they come off on exit, also on an error).
    SAEs that were already attached before stay attached.
    """

    def __init__(self, model: Model, saes: Sequence[SAE], error_term: bool = True) -> None:
        if not isinstance(saes, Sequence) or isinstance(saes, (str, bytes)):
            saes = [saes]  # type: ignore[list-item]
        if not saes:
            raise InterpError("with_saes got no SAEs: give a list of sae-lens SAEs.")
        self.model = model
        before = attached_saes(model)
        self.sites: list[str] = []
        self.previous: dict[str, tuple[SAE, bool]] = {}
        try:
            for sae in saes:
                site = site_of(sae)
                if site in before:
                    was = model.tl.get_submodule(site)
                    self.previous[site] = (before[site], bool(was.error_term))
                self.sites.append(attach(model, sae, error_term))
        except BaseException:
            self.detach()
            raise

    @property
    def latent_hooks(self) -> list[str]:
        return [latent_hook(s) for s in self.sites]

    def detach(self) -> None:
        detach(self.model, self.sites)
        for sae, error_term in self.previous.values():
            attach(self.model, sae, error_term)
        self.previous = {}
        self.sites = []

    def __enter__(self) -> Model:
        return self.model

    def __exit__(self, *exc: object) -> None:
        self.detach()


@contextlib.contextmanager
def ensure_attached(model: Model, sae: SAE, error_term: bool = True) -> Iterator[str]:
    """Attach `sae` for the block unless it is already attached there; yields the site."""
    site = site_of(sae)
    current = attached_saes(model).get(site)
    if current is sae:
        module = model.tl.get_submodule(site)
        if module.error_term == error_term:
            yield site
            return
    with Attached(model, [sae], error_term):
        yield site


def site_width(model: Model, site: str) -> tuple[int, ...]:
    """The trailing shape of `site`'s activation (after batch and position)."""
    shape: list[tuple[int, ...]] = []

    def grab(x: torch.Tensor, hook: Any) -> None:
        shape.append(tuple(x.shape[2:]))

    tokens = torch.zeros((1, 1), dtype=torch.long, device=model.device)
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd_hooks=[(site, grab)])
    return shape[0]


def require_hook(model: Model, site: str, what: str, fix: str) -> None:
    """Raise `what` (with the model's hooks of the same kind) and `fix` unless `site` exists."""
    if model.has_hook(site):
        return
    near = [h for h in model.hook_names if h.endswith(site.rsplit(".", 1)[-1])][:4]
    like = f" (hooks like it: {', '.join(near)})" if near else ""
    raise InterpError(f"{what}{like}. {fix}")


def check_fits(model: Model, sae: SAE) -> str:
    """Raise a clear InterpError unless `sae` reads a hook `model` has, at the right width, and
    was trained on this model; returns the hook (site) name."""
    site = site_of(sae)
    require_hook(
        model,
        site,
        f"The SAE reads {site!r}, which {model.name} does not have",
        "Load the model it was trained on, or an SAE for one of this model's hooks.",
    )
    record = getattr(sae, "interp_record", None) or {}
    # Records since the signature field match on it (dtype-proof); older ones on the fingerprint.
    key, mine = (
        ("model_signature", model.signature())
        if record.get("model_signature")
        else ("model_fingerprint", model.fingerprint())
    )
    if record.get(key) and record[key] != mine:
        raise InterpError(
            f"This SAE was trained by interp on {record.get('model', 'another model')!r} "
            f"({key.split('_')[1]} {record[key][:12]}), not on this {model.name} ({mine[:12]}): "
            "its latents would mean nothing here. Load the model it was trained on, or train "
            "one with interp.sae.train."
        )
    trained_on = getattr(sae.cfg.metadata, "model_name", None)
    if not record and trained_on and not _same_model(str(trained_on), model.name):
        tl_name = str(getattr(model.tl.cfg, "model_name", ""))
        if not _same_model(str(trained_on), tl_name):
            raise InterpError(
                f"This SAE was trained on {trained_on!r}, not on {model.name}. Load that model, "
                f"or, if it is the same model under another name, set "
                f"sae.cfg.metadata.model_name = {model.name!r}."
            )
    width = site_width_cached(model, site)
    d_in = int(sae.cfg.d_in)
    flat = int(torch.tensor(width).prod()) if width else 1
    reshape = getattr(sae.cfg, "reshape_activations", "none")
    got = flat if reshape == "hook_z" else (width[-1] if width else 1)
    if got != d_in:
        raise InterpError(
            f"The SAE's d_in is {d_in}, but {site} of {model.name} has width {got} (shape "
            f"{list(width)} per position). It was trained on another model or hook."
        )
    return site


def site_width_cached(model: Model, site: str) -> tuple[int, ...]:
    widths: dict[str, tuple[int, ...]] = model.__dict__.setdefault("_site_widths", {})
    if site not in widths:
        widths[site] = site_width(model, site)
    return widths[site]
