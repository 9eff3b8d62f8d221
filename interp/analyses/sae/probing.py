"""Latents that read a concept: sparse probing and decoder cosines (METHODS.md sections 4, 11).

Sparse probing (Gurnee et al. 2023): on the training split, rank latents by how well they
separate the classes alone (ROC-AUC distance from 0.5), keep the top k, fit a logistic probe on
those k latents, score it on the held-out split. The same split gives a dense probe on the SAE's
input activation, so the two accuracies compare like for like; each latent's decoder cosine with
the dense probe's direction says whether the probe reads what a latent writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.probes import LogisticProbe
from interp.checks import checked
from interp.errors import InterpError
from interp.latents import decoder_directions, latent_labels
from interp.models import Model, load_model
from interp.models.saes import ensure_attached, latent_hook
from interp.results.base import Coord
from interp.results.latents import LatentProbeResult
from interp.results.meta import make_meta
from interp.stats import bootstrap_mean, roc_auc
from interp.tasks.task import Task

if TYPE_CHECKING:
    from sae_lens import SAE


def _split(y: Tensor, test_size: float, seed: int) -> tuple[Tensor, Tensor]:
    """A stratified split: every class in both halves."""
    g = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in (0, 1):
        idx = (y == c).nonzero()[:, 0]
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = max(1, round(len(idx) * test_size))
        if len(idx) - k < 1:
            raise InterpError(f"Class {c} has {len(idx)} example(s): too few to split; add more.")
        test.append(idx[:k])
        train.append(idx[k:])
    return torch.cat(train), torch.cat(test)


@torch.inference_mode()
def _features(model: Model, task: Task, site: str, batch_size: int) -> tuple[Tensor, Tensor]:
    """Latent activations and the SAE's input at each prompt's answer position."""
    acts, xs = [], []
    name = latent_hook(site)
    for start in range(0, len(task), batch_size):
        sub = task[start : start + batch_size]
        rows = torch.arange(len(sub))
        _, cache = model.run_with_cache(
            sub.clean_tokens.to(model.device), names_filter=[name, site]
        )
        pos = sub.answer_pos.to(model.device)
        acts.append(cache[name][rows, pos].float().cpu())
        xs.append(cache[site][rows, pos].flatten(1).float().cpu())
    return torch.cat(acts), torch.cat(xs)


def _auc_per_latent(f: Float[Tensor, "n latent"], y: Tensor) -> Tensor:
    return roc_auc(f.T.contiguous(), y).float()


def _accuracy(
    probe: Any, X: Tensor, y: Tensor, n_boot: int, seed: int
) -> tuple[float, float, float]:
    right = (probe.predict(X).reshape(-1).float() == y.float()).float()
    mean, lo, hi = bootstrap_mean(right[:, None], n_boot=n_boot, seed=seed)
    return float(mean[0]), float(lo[0]), float(hi[0])


@checked
def sparse_probe(
    model: Model,
    task: Task,
    sae: SAE,
    k: int = 8,
    test_size: float = 0.3,
    batch_size: int = 32,
    n_boot: int = 1000,
    seed: int = 0,
) -> LatentProbeResult:
    """Sparse probing on latent activations at each prompt's answer position.

    `task` needs binary ``labels``. Returns a `LatentProbeResult`: every latent's held-out
    ROC-AUC (``values``), the k latents chosen on the training split, the sparse and the dense
    probe's held-out accuracy with intervals, and each latent's decoder cosine with the dense
    probe direction.
    """
    model = load_model(model)
    if task.labels is None:
        raise InterpError(f"Task {task.name!r} has no labels: sparse probing needs 0/1 labels.")
    y = task.labels.detach().cpu().long()
    if not set(y.unique().tolist()) <= {0, 1} or len(y.unique()) != 2:
        raise InterpError("Sparse probing needs binary 0/1 labels with both classes present.")
    d_sae = int(sae.cfg.d_sae)
    if k > d_sae:
        raise InterpError(f"k={k} is more than the SAE's {d_sae} latents.")
    with ensure_attached(model, sae) as site:
        f, x = _features(model, task, site, batch_size)
    train, test = _split(y, test_size, seed)
    train_auc = _auc_per_latent(f[train], y[train])
    separation = (train_auc - 0.5).abs()
    chosen = torch.argsort(separation, descending=True, stable=True)[:k]
    sparse = LogisticProbe().fit(f[train][:, chosen], y[train].float())
    dense = LogisticProbe().fit(x[train], y[train].float())
    acc = _accuracy(sparse, f[test][:, chosen], y[test], n_boot, seed)
    dense_acc = _accuracy(dense, x[test], y[test], n_boot, seed)
    auc = _auc_per_latent(f[test], y[test])
    direction = dense.coef_.reshape(-1).float()
    cos = decoder_cosine(sae, direction)
    # The best latent is chosen on the training split (and oriented there), so its held-out
    # ROC-AUC is an honest estimate, not the maximum over latents of a noisy test statistic.
    best = int(chosen[0])
    return LatentProbeResult(
        values=auc,
        dims=("latent",),
        coords={"latent": list[Coord](range(d_sae))},
        labels={"latent": latent_labels(site, d_sae)},
        chosen=[int(i) for i in chosen],
        accuracy=list(acc),
        dense_accuracy=list(dense_acc),
        cosine=cos,
        best_latent=best,
        best_reads=1 if float(train_auc[best]) >= 0.5 else 0,
        meta=make_meta(
            model=model,
            task=task,
            metric="held-out ROC-AUC",
            params={"sae": site, "k": k, "test_size": test_size, "n_boot": n_boot},
            seed=seed,
            value_label="held-out ROC-AUC of the latent alone",
            n_train=len(train),
            n_test=len(test),
        ),
        title=f"Sparse probing on latents ({site})",
    )


@checked
def decoder_cosine(sae: SAE, direction: Float[Tensor, " d_in"]) -> Float[Tensor, " latent"]:
    """Cosine of every latent's decoder direction with `direction` (a probe or steering vector
    in the SAE's input space)."""
    dirs = decoder_directions(sae).float().cpu()
    v = torch.as_tensor(direction).detach().float().cpu().reshape(-1)
    if v.shape[0] != dirs.shape[1]:
        raise InterpError(
            f"The direction has width {v.shape[0]}; the SAE's decoder directions {dirs.shape[1]}."
        )
    if float(v.norm()) == 0.0:
        raise InterpError("The direction is zero: its cosine with anything is undefined.")
    return torch.nn.functional.cosine_similarity(dirs, v[None], dim=-1)
