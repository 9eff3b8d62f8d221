"""Steering: directions, steered runs, their evaluation, and a scorecard of steering targets.

    d = interp.steering.direction(model, task, at="resid_post", layer=2)
    with interp.steering.steer(model, d, alpha=8.0): ...
    res = interp.steering.evaluate(model, task, [d], alphas=[2, 4, 8], neutral=texts)
    card = interp.steering.targets(model, task, over="heads").verify(k=5)

Strengths are in sigma units (METHODS.md section 9).
"""

from interp.analyses.steering.directions import direction
from interp.analyses.steering.evaluate import evaluate
from interp.analyses.steering.generate import compare, generate
from interp.analyses.steering.objective import neutral_prompts, objective
from interp.analyses.steering.scorecard import targets, verify
from interp.analyses.steering.steer import steer
from interp.analyses.steering.vector import SITE_TARGETS, SteeringDirection
from interp.results.steering import GenerationsResult, ScorecardResult, SteeringResult

__all__ = [
    "SITE_TARGETS",
    "GenerationsResult",
    "ScorecardResult",
    "SteeringDirection",
    "SteeringResult",
    "compare",
    "direction",
    "evaluate",
    "generate",
    "neutral_prompts",
    "objective",
    "steer",
    "targets",
    "verify",
]
