"""Statistics shared by every analysis: bootstrap intervals, weighted metrics (ROC-AUC,
accuracy, F1, R²) and rank correlation.

Every bootstrap draws its resamples from `resample_counts`, so one seed means one set of
resamples everywhere; metrics take those counts as example weights (see `interp.stats.metrics`).
"""

from interp.stats.metrics import accuracy, f1, r2, roc_auc, roc_curve
from interp.stats.rank import ranks, spearman
from interp.stats.resampling import (
    bootstrap,
    bootstrap_mean,
    bootstrap_ratio,
    percentile_interval,
    resample_counts,
)

__all__ = [
    "accuracy",
    "bootstrap",
    "bootstrap_mean",
    "bootstrap_ratio",
    "f1",
    "percentile_interval",
    "r2",
    "ranks",
    "resample_counts",
    "roc_auc",
    "roc_curve",
    "spearman",
]
