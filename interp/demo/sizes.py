"""How much work each section of the demo does, by model size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# Models above this many parameters get the demo's small sizes (SmolLM2-135M has 163M with its
# untied unembedding; the organism and test models are far below).
LARGE_PARAMS = 50_000_000


@dataclass(frozen=True)
class Sizes:
    """How much work each demo section does. `full` is the organism's demo, unchanged; `large`
    keeps a 100M+ parameter model (SmolLM2: 30 layers x 9 heads) within minutes on two cores:
    fewer prompts, shorter sequences, position sweeps over the last few positions only, a
    few patched head sets, path patching from the top heads only, shorter generation."""

    n: int | None = None  # prompts for caching, detectors, attribution, patching (None: n)
    detector_len: int = 16
    exact_heads: int | None = None  # None: exact patching of every head; m: AtP's top m only
    resid_positions: int | None = None  # None: every position; k: the last k of 5 layers
    head_sets: int | None = None  # None: a tenth of the heads
    path_senders: int | None = None  # None: every earlier head
    probe_n: int = 256
    traj_n: int = 32
    traj_samples: int = 6
    traj_tokens: int = 48
    # The organism answers its trained "347 + 589 =" format; a real chat model gets easy
    # one-step questions asking for a number ("What is 7 - 1? Answer with a number only."),
    # which SmolLM2-135M answers right about 30% of the time at T=0.7 (2% asked in words).
    traj_task: str = "arithmetic"
    traj_task_options: tuple[tuple[str, Any], ...] = ()
    traj_temperature: float = 1.0
    steer_n: int = 64  # held-out facts statements steered (and ranked by the scorecard)
    steer_neutral: int = 32  # neutral texts for side effects
    # The scorecard's patching evidence: exact, or AtP's estimate on large models.
    steer_patching: Literal["exact", "atp"] = "exact"
    steer_tokens: int = 4  # generated tokens per steered statement

    @classmethod
    def for_model(cls, model: Any) -> Sizes:
        if model.info().n_params < LARGE_PARAMS:
            return cls()
        return cls(
            n=8,
            detector_len=8,
            exact_heads=10,
            resid_positions=3,
            head_sets=4,
            path_senders=6,
            probe_n=64,
            traj_n=8,
            traj_samples=4,
            traj_tokens=16,
            traj_task="word_arithmetic",
            traj_task_options=(
                ("steps", 1),
                ("max_operand", 9),
                ("ops", ("plus", "minus")),
                ("style", "digits"),
                ("instruction", " Answer with a number only."),
            ),
            traj_temperature=0.7,
            steer_n=16,
            steer_neutral=8,
            steer_patching="atp",
            steer_tokens=8,
        )
