"""The organism steering numbers quoted in issue 20's closing note and docs/steering.md.

Run from the repository root: python scripts/steering_numbers.py (about a minute on 2 CPUs).
Seeds are those of tests/test_steering.py.
"""

import json
import warnings

import interp

warnings.filterwarnings("ignore")
m = interp.load_model("organism")
tr = interp.tasks.facts(m, n=256, seed=1, kind="statements", split="train")
ev = interp.tasks.facts(m, n=128, seed=2, kind="statements", split="eval")
neutral = interp.steering.neutral_prompts(m, n=24, exclude="facts")
probe = interp.probes.sweep(m, tr, progress=False, n_boot=50)
best = probe.best_layer
pd_ = probe.steering_direction(best)
d = interp.steering.direction(m, tr, at=pd_.site.target, layer=pd_.site.layer)
print("best probe layer", best, probe.hooks[best], d)
kw = dict(
    alphas=[1.0, 2.0, 4.0],
    neutral=neutral,
    positions="last",
    n_random=5,
    progress=False,
    n_boot=1000,
)
for toward in ["positive", "negative"]:
    r = interp.steering.evaluate(m, ev, [d], toward=toward, **kw)
    t = r.table()
    lo, mean, hi = r.random_band("flip_rate")
    print(toward, r.objective, r.baseline)
    print(
        t[
            [
                "alpha",
                "effect",
                "target_rate",
                "flip_rate",
                "task_kl",
                "kl",
                "loss_change",
                "random_low",
                "random_high",
            ]
        ]
        .round(3)
        .to_string()
    )
    print(
        " random flip max per alpha",
        hi[0].tolist(),
        " random target_rate max",
        r.random_band("target_rate")[2][0].tolist(),
    )
    print(" CI target_rate", r.ci_low[0, :, 1].tolist(), r.ci_high[0, :, 1].tolist())
card = interp.steering.targets(m, ev, over="heads", neutral=neutral, progress=False, n_boot=200)
print(card.ranking().head(8).round(3).to_string())
v = card.verify(k=5, progress=False, n_boot=1000)
print(json.dumps(v.verify_summary, indent=0))
print(v.correlations)
print(
    v.verification[v.verification.group != "other"][
        [
            "unit",
            "group",
            "alpha",
            "effect",
            "ci_low",
            "ci_high",
            "kl",
            "effect_per_kl",
            "flip_rate",
        ]
    ]
    .round(3)
    .to_string()
)
cardl = interp.steering.targets(m, ev, over="layers", neutral=neutral, progress=False, n_boot=200)
vl = cardl.verify(k=1, progress=False)
print(vl.verification[["unit", "group", "alpha", "effect", "kl"]].round(3).to_string())
print(vl.correlations, vl.verify_summary["alpha"])
