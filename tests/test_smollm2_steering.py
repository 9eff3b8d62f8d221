"""Steering a real pretrained model: SmolLM2-135M-Instruct (the session's one model load).

A CAA direction from sentiment contrast pairs written here (positive vs negative sentences, the
residual stream averaged over each sentence's tokens; `interp.tasks.sentiment`) at layer 9 of 30 moves the next-token
probability mass from negative to positive words on neutral prompts, far beyond random
directions of the same norm, at a small KL on unrelated text; steered generations read that way.
Numbers in comments were measured with these prompts (see the issue's closing note).
"""

from __future__ import annotations

import re

import pytest
import torch

import interp
from interp.tasks import sentiment

pytestmark = pytest.mark.filterwarnings("ignore")

POSITIVE, NEGATIVE, PAIRS = sentiment.POSITIVE, sentiment.NEGATIVE, sentiment.PAIRS
NEUTRAL, OTHER = sentiment.NEUTRAL, sentiment.OTHER
GOOD_WORDS = {
    "amazing",
    "great",
    "happy",
    "glad",
    "love",
    "loved",
    "wonderful",
    "enjoy",
    "enjoyed",
    "best",
    "beautiful",
    "perfect",
    "fun",
    "excellent",
    "good",
    "fantastic",
    "delicious",
    "relax",
    "relaxation",
    "favorite",
    "exciting",
    "dream",
    "comfort",
}
BAD_WORDS = {
    "bad",
    "terrible",
    "awful",
    "hate",
    "hated",
    "boring",
    "sad",
    "worst",
    "disappointed",
    "disappointing",
    "poor",
    "horrible",
    "miserable",
    "unhappy",
    "disaster",
    "nightmare",
    "ugly",
    "dull",
    "angry",
    "worse",
    "war",
    "refugee",
}


@pytest.fixture(scope="module")
def sentiment(smollm2):
    return interp.steering.direction(smollm2, PAIRS, at="resid_post", layer=9, positions="mean")


def test_caa_sentiment_direction_moves_probability_mass_beyond_random_directions(
    smollm2, sentiment
):
    res = interp.steering.evaluate(
        smollm2,
        NEUTRAL,
        [sentiment],
        alphas=[2.0, 4.0],
        neutral=OTHER,
        answer_sets=(POSITIVE, NEGATIVE),
        n_random=5,
        progress=False,
        n_boot=200,
    )
    effect = res.metric("effect")[0]
    _, _, hi = res.random_band("effect")
    # Measured: +1.79 and +2.77 nats of log P(positive) - log P(negative) at 2 and 4 sigma;
    # the random band's maximum 0.15 and 0.14; positive mass 0.029 -> 0.086; KL on unrelated
    # text 0.04 and 0.16 nats.
    assert bool((effect > 1.0).all()) and bool((effect > hi[0] + 0.8).all())
    assert bool((res.ci_low[0, :, 0] > hi[0]).all())  # the whole interval clears the band
    assert float(res.metric("target_prob")[0, 1]) > 2 * res.baseline["target_prob"]
    assert 0 < float(res.metric("kl")[0, 0]) < 0.2 and float(res.metric("kl")[0, 1]) < 0.5
    # Subtracting the direction moves the mass the other way.
    down = interp.steering.evaluate(
        smollm2,
        NEUTRAL,
        [sentiment],
        alphas=[4.0],
        kl=False,
        toward="negative",
        answer_sets=(POSITIVE, NEGATIVE),
        n_random=0,
        progress=False,
        n_boot=50,
    )
    assert float(down.metric("effect")[0, 0]) > 1.0


def _count(texts: list[str], words: set[str]) -> int:
    return sum(w in words for t in texts for w in re.findall(r"[a-z]+", t.lower()))


def test_steered_generations_read_positive_or_negative(smollm2, sentiment):
    prompts = [
        "I watched a movie yesterday and it was",
        "The restaurant down the street is",
        "My new job is",
        "Our trip to the mountains was",
    ]
    g = interp.steering.compare(smollm2, prompts, sentiment, alphas=[-8.0, 8.0], max_new_tokens=10)
    neg_texts = [t[0] for t in g.texts]
    pos_texts = [t[1] for t in g.texts]
    # Measured on 6 prompts x 12 tokens: positive words 0 / 4 / 8 and negative words 4 / 0 / 0
    # at -8 / 0 / +8 sigma ("a nightmare", "a disaster" against "a perfect blend of comfort").
    assert _count(pos_texts, GOOD_WORDS) >= 3
    assert _count(pos_texts, GOOD_WORDS) > _count(neg_texts, GOOD_WORDS)
    assert _count(neg_texts, BAD_WORDS) > _count(pos_texts, BAD_WORDS)
    assert bool(torch.isfinite(g.values).all())


def test_ioi_scorecard_verification_on_a_real_model(smollm2):
    """On IOI, one head's mean clean-minus-corrupted direction carries little of the behaviour
    (which name is the answer changes from prompt to prompt), yet the evidence still finds the
    heads that move it: the top 5 move the logit difference ~10x more than 5 random heads."""
    ioi = interp.tasks.ioi(smollm2, n=16, seed=0)
    card = interp.steering.targets(
        smollm2, ioi, over="heads", patching="atp", progress=False, n_boot=50
    )
    assert card.values.shape == (smollm2.n_layers * smollm2.n_heads, 5)
    # DLA and both patching modes put L23H3 first (measured; exact patching agrees).
    assert card.ranking().set_index("unit").loc["L23H3", "rank_dla"] == 1.0
    ver = card.verify(k=5, progress=False, n_boot=200)
    s = ver.verify_summary
    # Measured: 16 sigma (the budget allows the largest strength), mean |effect| 0.23 against
    # 0.021 (10.6x); KL at the answer position 0.35 against 0.12.
    assert s["alpha"] == 16.0 and s["within_budget"]
    assert s["top_over_random"] > 3.0
    assert len(ver.verification) == 10  # 270 heads: only the top and random ones are steered
    assert all(-1.0 <= r <= 1.0 for r in ver.correlations.values())
