"""Sequential acceptance: read a prompt's samples one by one and stop at the first one whose
signal clears a threshold, calibrated on held-out prompts.

Protocol. Prompts are split at random into a calibration part and a test part. For a signal
(oriented so that higher predicts a right answer) and a threshold ``tau``, each prompt's samples
are read in the order they were drawn; the first with value >= tau is accepted (its answer is
the prompt's answer, and the tokens spent are the lengths of the samples read so far). When no
sample clears ``tau``, all were generated and majority vote answers. ``tau`` is chosen on the
calibration prompts: the highest accuracy, then the fewest tokens, then the highest ``tau``;
``tau = +inf`` (never accept,
i.e. plain majority vote) is always a candidate, so calibration can only fall back to the vote.
The test prompts then give the accuracy and tokens reported, next to majority vote and the
first sample alone on the same prompts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from interp.analyses.trajectories.scoring import majority_vote, orientation
from interp.checks import checked
from interp.errors import InterpError

MAX_THRESHOLDS = 512


def _prompt_arrays(
    df: pd.DataFrame, signal: str, prompts: Sequence[int], vote: pd.Series
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per prompt, samples in draw order, padded: values (-inf where undefined or absent),
    lengths, correct; and the majority-vote verdict per prompt."""
    groups = {p: g.sort_values("sample") for p, g in df.groupby("prompt")}
    n = max(len(g) for g in groups.values())
    P = len(prompts)
    vals = np.full((P, n), -np.inf)
    lengths = np.zeros((P, n))
    right = np.zeros((P, n), dtype=bool)
    sign = orientation(signal)
    for i, p in enumerate(prompts):
        g = groups[p]
        v = g[signal].to_numpy(dtype=float) * sign
        vals[i, : len(g)] = np.where(np.isnan(v), -np.inf, v)
        lengths[i, : len(g)] = g["n_tokens"].to_numpy()
        right[i, : len(g)] = g["correct"].to_numpy(dtype=bool)
    return vals, lengths, right, vote.loc[list(prompts)].to_numpy(dtype=bool)


def _outcomes(
    vals: np.ndarray, lengths: np.ndarray, right: np.ndarray, vote: np.ndarray, taus: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accuracy, tokens per prompt and acceptance rate for each threshold: [len(taus)] each."""
    hit = vals[None] >= taus[:, None, None]  # [tau, prompt, sample]
    accepted = hit.any(-1)
    first = hit.argmax(-1)
    spent = np.cumsum(lengths, -1)  # tokens after reading samples 0..j
    P = vals.shape[0]
    rows = np.arange(P)[None]
    ok = np.where(accepted, right[rows, first], vote[None])
    tokens = np.where(accepted, spent[rows, first], spent[:, -1][None])
    return ok.mean(-1), tokens.mean(-1), accepted.mean(-1)


@checked
def sequential_acceptance(
    df: pd.DataFrame,
    signals: Sequence[str],
    calibration: float = 0.5,
    seed: int = 0,
) -> pd.DataFrame:
    """Calibrate a threshold per signal on a random part of the prompts and report on the rest.

    Args:
        df: the per-trace table with ``prompt``, ``sample``, ``correct``, ``n_tokens``, the
            signals and ``answer`` (see ``scoring.with_answers``).
        signals: the columns to try.
        calibration: fraction of prompts used to choose thresholds.

    Returns one row per method on the test prompts: ``majority_vote``, ``first_sample`` and each
    signal, with accuracy, tokens per prompt, the fraction of prompts where a sample was accepted,
    the threshold (oriented; inf = never accept) and the calibration accuracy.
    """
    if not 0 < calibration < 1:
        raise InterpError(f"calibration must be a fraction in (0, 1), got {calibration}.")
    prompts = np.array(sorted(df["prompt"].unique()))
    n_cal = round(calibration * len(prompts))
    if n_cal < 1 or n_cal >= len(prompts):
        raise InterpError(
            f"{len(prompts)} prompts cannot be split {calibration:.0%} / {1 - calibration:.0%} "
            "into calibration and test prompts: sample more prompts."
        )
    order = np.random.default_rng(seed).permutation(len(prompts))
    cal, test = sorted(prompts[order[:n_cal]]), sorted(prompts[order[n_cal:]])
    rows = []
    vote = majority_vote(df)
    _, base_len, base_right, base_vote = _prompt_arrays(df, "n_tokens", test, vote)
    rows.append(
        {
            "method": "majority_vote",
            "accuracy": float(base_vote.mean()),
            "tokens_per_prompt": float(base_len.sum(-1).mean()),
            "accepted": 0.0,
            "threshold": float("inf"),
            "calibration_accuracy": float("nan"),
        }
    )
    rows.append(
        {
            "method": "first_sample",
            "accuracy": float(base_right[:, 0].mean()),
            "tokens_per_prompt": float(base_len[:, 0].mean()),
            "accepted": 1.0,
            "threshold": float("-inf"),
            "calibration_accuracy": float("nan"),
        }
    )
    for signal in signals:
        if signal not in df.columns or df[signal].isna().all():
            continue
        c_vals, c_len, c_right, c_vote = _prompt_arrays(df, signal, cal, vote)
        finite = np.unique(c_vals[np.isfinite(c_vals)])
        if len(finite) > MAX_THRESHOLDS:  # quantiles keep the search small on big samples
            finite = np.unique(np.quantile(finite, np.linspace(0, 1, MAX_THRESHOLDS)))
        taus = np.concatenate([finite, [np.inf]])
        acc, tok, _ = _outcomes(c_vals, c_len, c_right, c_vote, taus)
        # Best calibration accuracy, then fewest tokens, then the strictest threshold (a
        # threshold that accepts nothing on the calibration prompts is reported as inf).
        best = np.lexsort((-taus, tok, -acc))[0]
        tau = taus[best]
        t_vals, t_len, t_right, t_vote = _prompt_arrays(df, signal, test, vote)
        t_acc, t_tok, t_rate = _outcomes(t_vals, t_len, t_right, t_vote, np.array([tau]))
        rows.append(
            {
                "method": signal,
                "accuracy": float(t_acc[0]),
                "tokens_per_prompt": float(t_tok[0]),
                "accepted": float(t_rate[0]),
                "threshold": float(tau),
                "calibration_accuracy": float(acc[best]),
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["calibration_prompts"] = [int(p) for p in cal]
    out.attrs["test_prompts"] = [int(p) for p in test]
    return out
